"""COUNTER_ADVERTISE_URL and the other membership settings, read as a node reads them."""

from __future__ import annotations

import socket

import pytest

from storage_app.core.config import ConfigError, load_config


def test_the_advertised_url_defaults_to_loopback_or_the_host_name() -> None:
    assert load_config({"COUNTER_SYNC_PORT": "4001"}).advertise_url == "http://127.0.0.1:4001"
    beyond = load_config({"COUNTER_HOST": "0.0.0.0", "COUNTER_SYNC_TOKEN": "t"})
    assert beyond.advertise_url == f"http://{socket.gethostname()}:3001"
    given = load_config({"COUNTER_ADVERTISE_URL": " http://counter-2.counter-sync:3001/ "})
    assert given.advertise_url == "http://counter-2.counter-sync:3001"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("COUNTER_ADVERTISE_URL", "http://a:1,http://b:1", r"http\(s\) base URL"),
        ("COUNTER_ADVERTISE_URL", "counter-0:3001", r"http\(s\) base URL"),
        ("COUNTER_ADVERTISE_URL", "http://" + "x" * 1100 + ":1", r"http\(s\) base URL"),
        ("COUNTER_MEMBER_TIMEOUT", "0", "COUNTER_MEMBER_TIMEOUT='0'"),
        ("COUNTER_REUSE_ID", "maybe", "must be true or false"),
    ],
)
def test_a_bad_membership_setting_is_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({variable: value})
    assert load_config({"COUNTER_REUSE_ID": "true", "COUNTER_MEMBER_TIMEOUT": "5"}).member_timeout == 5.0
