"""Three real nodes on loopback ports: writes on each, all converge to the exact totals."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import requests

from storage_app.core.keywords import tokenize_words
from tests.cluster.nodes import Node, start_cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

TEXTS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the FOX runs!",
    "the fox and the hound, the end",
    "Ünïcödé straße — the café's naïve fox",
]


def test_three_nodes_converge_to_the_exact_totals(make_node: Callable[..., Node]) -> None:
    nodes = start_cluster(make_node)

    expected: Counter[str] = Counter()
    started = time.monotonic()
    for node, text in zip(nodes, TEXTS, strict=True):
        for _ in range(3):
            node.post(text)
            expected.update(tokenize_words(text) * 1)
    keywords = sorted(expected)
    wait_until(
        lambda: all(node.counts(keywords) == dict(expected) for node in nodes),
        timeout=30,
        what="all three nodes to report the exact totals",
    )
    converged = time.monotonic() - started
    print(f"three-node convergence took {converged:.2f} s")

    for node in nodes:
        assert node.stop() == 0, node.log()
        assert "stopped cleanly" in node.log()


def test_a_restarted_node_has_its_counts_back(make_node: Callable[..., Node]) -> None:
    node = make_node(0).start()
    node.post("alpha beta beta")
    assert node.stop() == 0, node.log()
    assert (node.workdir / "data" / "node-0.snapshot").exists()
    node.start()
    assert node.counts(["alpha", "beta", "gamma"]) == {"alpha": 1, "beta": 2, "gamma": 0}
    node.post("alpha")
    assert node.counts(["alpha"]) == {"alpha": 2}
    assert node.stop() == 0


def seed_failures(node: Node) -> int:
    """Failed rounds in a row with the node's only seed, as /cluster shows them."""
    (peer,) = requests.get(node.public_url + "/cluster", timeout=5).json()["peers"]
    return int(peer["consecutive_failures"])


def test_a_down_seed_is_logged_and_never_stops_the_node(make_node: Callable[..., Node]) -> None:
    lonely = make_node(0)
    absent = make_node(1)  # never started: its sync port refuses connections
    # A first run without seeds gives lonely a state on disk, so that it counts in its own
    # slot at once (a node with a new, empty disk keeps its writes pending until it has
    # learned its slot from every seed).
    lonely.start()
    assert lonely.stop() == 0
    lonely.env["COUNTER_SEEDS"] = absent.sync_url
    lonely.start()
    wait_until(lambda: "unreachable" in lonely.log(), 20, "a log line about the down seed")
    lonely.post("still serving")
    assert lonely.counts(["serving"]) == {"serving": 1}
    # Logged once when it went down, not at every one of the rounds that failed since.
    wait_until(lambda: seed_failures(lonely) >= 4, 30, "four failed rounds with the down seed")
    assert lonely.log().count("is unreachable") == 1
    absent.env["COUNTER_SEEDS"] = lonely.sync_url
    absent.start()
    wait_until(lambda: absent.counts(["serving"]) == {"serving": 1}, 20, "the late seed to receive the state")
    # Retries back off exponentially (at most 30 s apart), so the return is noticed within that.
    wait_until(lambda: "reachable again" in lonely.log(), 35, "the down seed's return to be logged")
    assert lonely.stop() == 0 and absent.stop() == 0


def test_real_http_bodies_chunked_oversize_and_invalid(make_node: Callable[..., Node]) -> None:
    import requests

    node = make_node(0, env={"COUNTER_MAX_BODY_BYTES": "1000"}).start()
    url = node.public_url + "/keywords"

    def chunks():
        yield b"chunked "
        yield b"body chunked"

    chunked = requests.post(url, data=chunks(), timeout=10)
    assert chunked.json() == {"tokens": 3, "keywords": 2}
    with requests.Session() as session:
        too_big = session.post(url, data=b"word " * 300, timeout=10)
        assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
        too_big_chunked = session.post(url, data=iter([b"word " * 150, b"word " * 150]), timeout=10)
        assert too_big_chunked.status_code == 413
        invalid = session.post(url, data=b"\xc3\x28", timeout=10)
        assert invalid.status_code == 400 and invalid.json()["code"] == "invalid_utf8"
        assert session.post(url, data="after errors", timeout=10).status_code == 200
    # A body shorter than its Content-Length (the client went away) counts nothing.
    import socket

    with socket.create_connection(("127.0.0.1", node.public_port)) as raw:
        raw.sendall(b"POST /keywords HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\ncut off text")
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(10)
        answer = b""
        # Headers and body may come in separate segments; the node closes after answering.
        while part := raw.recv(4096):
            answer += part
    assert answer.startswith(b"HTTP/1.1 400") and b"incomplete_body" in answer
    assert node.counts(["chunked", "word", "after", "cut"]) == {"chunked": 2, "word": 0, "after": 1, "cut": 0}
    assert node.stop() == 0
