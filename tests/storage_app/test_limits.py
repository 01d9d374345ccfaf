"""Every limit answers with a JSON error a person can act on, and changes nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

from storage_app.core.rate_limit import RateLimiter
from storage_app.node import Node
from tests.conftest import PortClient, restart_node


def test_a_lookup_of_too_many_keywords_is_refused(node: Node) -> None:
    restart_node(max_lookup_keywords=3)
    client = PortClient(node.config.public_port)
    assert client.get("/keywords?keywords=a&keywords=b&keywords=c").status_code == 200
    response = client.get("/keywords?keywords=a&keywords=b&keywords=c&keywords=d")
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_keywords"
    assert "4 keywords" in response.json()["detail"] and "COUNTER_MAX_LOOKUP_KEYWORDS" in response.json()["detail"]


def test_a_keyword_too_long_is_refused(node: Node) -> None:
    restart_node(max_keyword_length=5)
    client = PortClient(node.config.public_port)
    assert client.get("/keywords/fives").status_code == 200
    for path in ("/keywords/sixsix", "/keywords?keywords=a&keywords=sixsix"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert response.json()["code"] == "keyword_too_long"
        assert "COUNTER_MAX_KEYWORD_LENGTH" in response.json()["detail"]


def test_the_rate_limit_answers_429_with_retry_after(node: Node, settings: Any) -> None:
    settings.COUNTER = dataclasses.replace(settings.COUNTER, rate_limit=0.5, rate_burst=2)
    client = PortClient(node.config.public_port)
    assert client.post("/keywords", "limited", content_type="text/plain").status_code == 200
    assert client.get("/keywords?keywords=limited").status_code == 200
    response = client.post("/keywords", "limited", content_type="text/plain")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert "COUNTER_RATE_LIMIT" in response.json()["detail"]
    assert response["Retry-After"] == "2"
    assert client.get("/healthz").status_code == 200  # probes are never limited
    sync = PortClient(node.config.sync_port)
    assert sync.get("/swagger").status_code == 200  # nor the sync port
    assert node.lookup(["limited"]) == [("limited", 1)]


def test_buckets_refill_at_the_rate_and_forget_the_least_recent_client() -> None:
    limiter = RateLimiter(rate=2.0, burst=2, max_clients=2)
    assert [limiter.wait_for("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert limiter.wait_for("a", 0.5) == 0.0  # refilled one request in half a second
    assert limiter.wait_for("b", 0.5) == 0.0
    assert limiter.wait_for("c", 0.5) == 0.0  # "a" is forgotten: the least recently seen
    assert [limiter.wait_for("a", 0.5) for _ in range(2)] == [0.0, 0.0]
