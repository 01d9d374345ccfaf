"""A plain POST /keywords answered below Django answers as the DRF view does; everything else is the view's."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.handlers.wsgi import WSGIHandler

from counter_site.fast_writes import FastKeywordWrites
from counter_site.metrics import REGISTRY
from storage_app.node import Node


def environ_for(node: Node, body: bytes, **extra: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/keywords",
        "SERVER_PORT": str(node.config.public_port),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "text/plain",
        "wsgi.input": io.BytesIO(body),
        **extra,
    }
    setup_testing_defaults(environ)
    return environ


def call(application: Any, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Run a WSGI application; (status, headers, body)."""
    started: list[Any] = []
    body = b"".join(application(environ, lambda status, headers, exc_info=None: started.extend([status, headers])))
    return int(started[0].split()[0]), dict(started[1]), body


def posts_answered(code: str) -> float:
    value = REGISTRY.get_sample_value(
        "counter_http_requests_total", {"route": "keywords", "method": "POST", "status": code}
    )
    return value or 0.0


@pytest.fixture
def application(node: Node, settings: Any) -> FastKeywordWrites:
    settings.COUNTER = node.config
    return FastKeywordWrites(WSGIHandler())


def test_a_plain_write_is_counted_and_answered_as_the_view_answers(node: Node, application: FastKeywordWrites) -> None:
    answered = posts_answered("200")
    fast = call(application, environ_for(node, b"The quick fox, the fox"))
    assert posts_answered("200") == answered + 1  # /metrics counts it like the view's answers
    slow = call(application.django_application, environ_for(node, b"the lazy dog"))
    assert fast[0] == slow[0] == 200
    assert json.loads(fast[2]) == {"tokens": 5, "keywords": 3}
    assert json.loads(slow[2]) == {"tokens": 3, "keywords": 3}
    assert fast[1]["Content-Length"] == str(len(fast[2]))
    del fast[1]["Content-Length"]
    slow[1].pop("Content-Length", None)
    assert fast[1] == slow[1]
    assert dict(node.lookup(["fox", "the", "dog"])) == {"fox": 2, "the": 3, "dog": 1}


def test_a_retry_under_the_same_key_is_answered_from_memory(node: Node, application: FastKeywordWrites) -> None:
    first = call(application, environ_for(node, b"hello world", HTTP_IDEMPOTENCY_KEY="k-1"))
    again = call(application, environ_for(node, b"hello world", HTTP_IDEMPOTENCY_KEY="k-1"))
    assert first[0] == again[0] == 200 and first[2] == again[2]
    assert "Idempotent-Replayed" not in first[1] and again[1]["Idempotent-Replayed"] == "true"
    assert dict(node.lookup(["hello"])) == {"hello": 1}


@pytest.mark.parametrize(
    ("body", "extra", "status", "code"),
    [
        (b"caf\xe9", {}, 400, "invalid_utf8"),
        (b"hello", {"HTTP_IDEMPOTENCY_KEY": "has spaces"}, 400, "invalid_idempotency_key"),
        (b"other text", {"HTTP_IDEMPOTENCY_KEY": "used"}, 409, "idempotency_key_reused"),
        (b"hello", {"CONTENT_LENGTH": "9"}, 400, "incomplete_body"),
    ],
)
def test_a_refused_text_gets_the_views_error_and_counts_nothing(
    node: Node, application: FastKeywordWrites, body: bytes, extra: dict[str, str], status: int, code: str
) -> None:
    call(application, environ_for(node, b"first text", HTTP_IDEMPOTENCY_KEY="used"))
    keys = len(node.store)
    answer = call(application, environ_for(node, body, **extra))
    assert answer[0] == status, answer
    assert json.loads(answer[2])["code"] == code
    assert answer[1]["Content-Type"] == "application/json"
    assert len(node.store) == keys and dict(node.lookup(["hello", "other"])) == {"hello": 0, "other": 0}


@pytest.mark.parametrize(
    "extra",
    [
        {"QUERY_STRING": "format=api"},
        {"HTTP_ACCEPT": "text/html"},
        {"CONTENT_TYPE": "application/x-ndjson"},
        {"HTTP_TRANSFER_ENCODING": "chunked"},
        {"CONTENT_LENGTH": "oops"},
        {"REQUEST_METHOD": "PUT"},
        {"PATH_INFO": "/keywords/"},
    ],
)
def test_other_requests_take_djangos_path(node: Node, application: FastKeywordWrites, extra: dict[str, str]) -> None:
    assert application.plain_write_length(environ_for(node, b"hello", **extra)) is None


def test_the_sync_port_and_an_oversized_body_take_djangos_path(node: Node, application: FastKeywordWrites) -> None:
    assert application.plain_write_length(environ_for(node, b"hello")) == 5
    assert application.plain_write_length(environ_for(node, b"hello", SERVER_PORT=str(node.config.sync_port))) is None
    too_large = str(node.config.max_body_bytes + 1)
    assert application.plain_write_length(environ_for(node, b"hello", CONTENT_LENGTH=too_large)) is None


def test_under_a_write_token_only_a_request_that_carries_it_is_taken(node: Node, settings: Any) -> None:
    settings.COUNTER = dataclasses.replace(node.config, public_token="s3cret")
    application = FastKeywordWrites(WSGIHandler())
    assert application.plain_write_length(environ_for(node, b"hi", HTTP_AUTHORIZATION="Bearer s3cret")) == 2
    for header in ("Bearer wrong", "Basic s3cret", ""):
        assert application.plain_write_length(environ_for(node, b"hi", HTTP_AUTHORIZATION=header)) is None


def test_with_a_rate_limit_every_request_takes_djangos_path(node: Node, settings: Any) -> None:
    settings.COUNTER = dataclasses.replace(node.config, rate_limit=100.0)
    application = FastKeywordWrites(WSGIHandler())
    assert application.plain_write_length(environ_for(node, b"hello")) is None


class TimingOut(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        raise TimeoutError("timed out")


def test_a_body_that_does_not_arrive_in_time_gets_the_views_error(node: Node, application: FastKeywordWrites) -> None:
    environ = environ_for(node, b"hello world")
    environ["wsgi.input"] = TimingOut()
    status, _, body = call(application, environ)
    assert (status, json.loads(body)["code"]) == (400, "incomplete_body")
    assert len(node.store) == 0
