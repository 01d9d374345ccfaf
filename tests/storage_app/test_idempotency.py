"""Idempotency-Key on POST /keywords: a retried text is counted once, across restarts."""

from __future__ import annotations

from typing import Any

from storage_app.node import Node
from tests.conftest import PortClient, restart_node


def post(client: PortClient, text: str, key: str | None = None) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post("/keywords", text, content_type="text/plain", **headers)


def test_a_retry_with_the_same_key_counts_nothing_and_gets_the_first_reply(public_client: PortClient) -> None:
    first = post(public_client, "retry me retry", "key-1")
    assert first.status_code == 200 and first.json() == {"tokens": 3, "keywords": 2}
    assert "Idempotent-Replayed" not in first
    again = post(public_client, "retry me retry", "key-1")
    assert again.status_code == 200 and again.json() == {"tokens": 3, "keywords": 2}
    assert again["Idempotent-Replayed"] == "true"
    assert public_client.get("/keywords/retry").json()["count"] == 2


def test_the_same_key_with_another_text_is_409_and_counts_nothing(public_client: PortClient) -> None:
    assert post(public_client, "original", "key-2").status_code == 200
    response = post(public_client, "different", "key-2")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    assert "different text" in response.json()["detail"]
    assert public_client.get("/keywords/different").json()["count"] == 0


def test_an_empty_text_or_a_text_without_keywords_is_remembered_too(public_client: PortClient) -> None:
    assert post(public_client, "!!!", "key-3").json() == {"tokens": 0, "keywords": 0}
    assert post(public_client, "!!!", "key-3")["Idempotent-Replayed"] == "true"
    assert post(public_client, "now words", "key-3").status_code == 409


def test_a_bad_key_is_400(public_client: PortClient) -> None:
    for key in ("", "k" * 256, "with space", "caf\u00e9"):
        response = post(public_client, "never counted", key)
        assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"
    assert post(public_client, "counted", "k" * 255).status_code == 200
    assert public_client.get("/keywords/never").json()["count"] == 0


def test_keys_survive_a_crash_and_a_snapshot_that_cut_the_log(node: Node) -> None:
    client = PortClient(node.config.public_port)
    assert post(client, "before crash", "crash-key").status_code == 200
    # Crash: no dump, the key is only in the log.
    client = PortClient(restart_node().config.public_port)
    assert post(client, "before crash", "crash-key")["Idempotent-Replayed"] == "true"
    # A snapshot; then the log is gone, as once the snapshot has let it be cut: the key file keeps the key.
    restarted = restart_node()
    assert restarted.dump(force=True).written
    assert restarted.config.idempotency_path.exists()
    for segment in restarted.config.wal_dir.iterdir():
        segment.unlink()
    client = PortClient(restart_node().config.public_port)
    assert post(client, "before crash", "crash-key")["Idempotent-Replayed"] == "true"
    assert client.get("/keywords/crash").json()["count"] == 1


def test_keys_expire_after_the_ttl_and_past_the_bound_the_oldest_goes(node: Node) -> None:
    client = PortClient(restart_node(idempotency_ttl=0.001).config.public_port)
    assert post(client, "short lived", "ttl-key").status_code == 200
    assert "Idempotent-Replayed" not in post(client, "short lived", "ttl-key")
    assert client.get("/keywords/lived").json()["count"] == 2
    bounded = restart_node(max_idempotency_keys=2, idempotency_ttl=86400.0)
    client = PortClient(bounded.config.public_port)
    for key in ("a", "b", "c"):
        post(client, "bounded", key)
    # "ttl-key" from the log, valid again under a day's TTL, went first; then "a".
    assert len(bounded.idempotency) == 2 and bounded.idempotency.evicted == 2
    assert "Idempotent-Replayed" not in post(client, "bounded", "a")  # forgotten: counted again
    assert post(client, "bounded", "c")["Idempotent-Replayed"] == "true"
