"""Retries with an Idempotency-Key against real nodes: counted once, on the same node and on another.

What is promised (README, "Retries and Idempotency-Key"): a retry is counted once
when it reaches the node that counted the text, or any node that the first
node's increment has reached (the key travels with it). A retry that reaches
another node *before* the increment does is counted there again; the second
test shows that side of the line too.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests

from tests.cluster.nodes import Node, crash, start_all, start_cluster, wait_until
from tests.cluster.proxy import FaultProxy

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("idempotency")]

TEXTS = [(f"key-{n}", f"retry{n} common retry{n}") for n in range(20)]


def post(node: Node, text: str, key: str) -> requests.Response:
    response = requests.post(node.public_url + "/keywords", data=text, headers={"Idempotency-Key": key}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"tokens": 3, "keywords": 2}
    return response


def exact(node: Node) -> bool:
    expected = {"common": len(TEXTS), **{f"retry{n}": 2 for n in range(len(TEXTS))}}
    return node.counts(list(expected)) == expected


def test_every_text_sent_twice_is_counted_once_on_the_same_node_and_on_another(
    make_node: Callable[..., Node],
) -> None:
    a, b, c = start_cluster(make_node, 3)
    for key, text in TEXTS:
        assert "Idempotent-Replayed" not in post(a, text, key).headers
        assert post(a, text, key).headers["Idempotent-Replayed"] == "true"
    wait_until(lambda: exact(b) and exact(c), 30, "the increments to reach b and c")
    for key, text in TEXTS:
        assert post(b, text, key).headers["Idempotent-Replayed"] == "true"
        assert post(c, text, key).headers["Idempotent-Replayed"] == "true"
    assert exact(a) and exact(b) and exact(c)
    # The same key with another text is refused on every node, first node or not.
    for node in (a, b):
        refused = requests.post(node.public_url + "/keywords", data="other", headers={"Idempotency-Key": "key-0"})
        assert refused.status_code == 409 and refused.json()["code"] == "idempotency_key_reused"


def test_a_kill_9_between_the_two_sends_changes_nothing(make_node: Callable[..., Node]) -> None:
    a, b = start_cluster(make_node, 2)
    half = len(TEXTS) // 2
    for key, text in TEXTS[:half]:
        post(a, text, key)
    # The node that counted dies and comes back: the keys come back from its log.
    crash(a)
    a.start()
    for key, text in TEXTS[:half]:
        assert post(a, text, key).headers["Idempotent-Replayed"] == "true"
    for key, text in TEXTS[half:]:
        post(a, text, key)
    wait_until(lambda: exact(b), 30, "the increments to reach b")
    # The node the retries go to dies after the increments reached it: it logged the keys it received.
    crash(b)
    b.start()
    for key, text in TEXTS:
        assert post(b, text, key).headers["Idempotent-Replayed"] == "true"
    wait_until(lambda: exact(a) and exact(b), 30, "both nodes to agree")


def post_batch(node: Node, key: str) -> list[bool]:
    """All of TEXTS in one NDJSON request under ``key``; whether each line was a replay."""
    body = "".join(json.dumps(text) + "\n" for _, text in TEXTS)
    response = requests.post(
        node.public_url + "/keywords",
        data=body.encode(),
        headers={"Content-Type": "application/x-ndjson", "Idempotency-Key": key},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert all(line["tokens"] == 3 and line["keywords"] == 2 for line in lines)
    return [line["replayed"] for line in lines]


def test_a_batch_sent_again_after_a_kill_9_and_to_another_node_counts_once(make_node: Callable[..., Node]) -> None:
    a, b = start_cluster(make_node, 2)
    assert post_batch(a, "batch-key") == [False] * len(TEXTS)
    crash(a)
    a.start()
    assert post_batch(a, "batch-key") == [True] * len(TEXTS)
    wait_until(lambda: exact(b), 30, "the batch to reach b")
    assert post_batch(b, "batch-key") == [True] * len(TEXTS)
    assert exact(a) and exact(b)


def test_a_retry_that_overtakes_replication_is_counted_again(
    make_node: Callable[..., Node], proxies: list[FaultProxy]
) -> None:
    a, b = make_node(0), make_node(1)
    a_to_b, b_to_a = FaultProxy(b.sync_port), FaultProxy(a.sync_port)
    proxies.extend([a_to_b, b_to_a])
    a.env["COUNTER_SEEDS"], b.env["COUNTER_SEEDS"] = a_to_b.url, b_to_a.url
    start_all([a, b])
    a_to_b.cut()
    b_to_a.cut()
    # The first send reaches a; its increment cannot reach b, and the retry goes to b.
    post_any(a, "overtaken once", "race-key")
    assert "Idempotent-Replayed" not in post_any(b, "overtaken once", "race-key").headers
    a_to_b.heal()
    b_to_a.heal()
    # Counted on both: the documented limit. After that, every node replays the key.
    wait_until(lambda: both_count(a, b, 2), 30, "the two counts to converge")
    assert post_any(a, "overtaken once", "race-key").headers["Idempotent-Replayed"] == "true"
    assert post_any(b, "overtaken once", "race-key").headers["Idempotent-Replayed"] == "true"
    assert both_count(a, b, 2)


def post_any(node: Node, text: str, key: str) -> requests.Response:
    response = requests.post(node.public_url + "/keywords", data=text, headers={"Idempotency-Key": key}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def both_count(a: Node, b: Node, expected: int) -> bool:
    return all(node.counts(["overtaken"]) == {"overtaken": expected} for node in (a, b))
