"""Native replication between real nodes: concurrent writes, partitions, restarts, new nodes, bad input."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
import requests

from storage_app.core.keywords import Keywords
from sync_app.core.protocol import CONTENT_TYPE, Cursor, Hello, Kind, Message, Rows, encode
from tests.cluster.nodes import Node, start_all, start_cluster, wait_until
from tests.cluster.proxy import FaultProxy

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("replication")]

VOCABULARY = [f"word{n}" for n in range(150)]


def write_concurrently(
    nodes: list[Node], posts_per_thread: int, vocabulary: list[str], threads: int = 3
) -> Counter[str]:
    """Several client threads per node post random texts; returns what was acknowledged."""
    acknowledged: Counter[str] = Counter()
    lock = threading.Lock()
    failures: list[str] = []

    def writer(node: Node, seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as session:
            for _ in range(posts_per_thread):
                words = rng.choices(vocabulary, k=15)
                response = session.post(node.public_url + "/keywords", data=" ".join(words), timeout=10)
                if response.status_code != 200:
                    failures.append(f"node {node.node_id}: {response.status_code} {response.text}")
                    continue
                with lock:
                    acknowledged.update(words)

    workers = [
        threading.Thread(target=writer, args=(node, node.node_id * 100 + index))
        for node in nodes
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures, failures
    return acknowledged


def all_report(nodes: list[Node], expected: Counter[str], vocabulary: list[str]) -> bool:
    wanted = {word: expected.get(word, 0) for word in vocabulary}
    return all(node.counts(vocabulary) == wanted for node in nodes)


def cluster_status(node: Node) -> dict[str, Any]:
    response = requests.get(node.public_url + "/cluster", timeout=10)
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


def test_concurrent_writes_on_three_nodes_converge_exactly(make_node: Callable[..., Node]) -> None:
    nodes = start_cluster(make_node)
    expected = write_concurrently(nodes, posts_per_thread=25, vocabulary=VOCABULARY)
    wait_until(lambda: all_report(nodes, expected, VOCABULARY), 30, "three nodes to agree on the exact totals")

    def caught_up() -> bool:
        peers = [peer for node in nodes for peer in cluster_status(node)["peers"]]
        return len(peers) == 6 and all(p["mode"] == "native" and p["reachable"] and p["lag"] == 0 for p in peers)

    wait_until(caught_up, 20, "every peer native, reachable, with no lag")
    for node in nodes:
        assert node.stop() == 0, node.log()


def test_a_partitioned_node_keeps_serving_and_everything_converges_after_healing(
    make_node: Callable[..., Node], proxies: list[FaultProxy]
) -> None:
    nodes = [make_node(node_id) for node_id in range(3)]
    links: dict[tuple[int, int], FaultProxy] = {}
    for source in nodes:
        for target in nodes:
            if source is not target:
                links[source.node_id, target.node_id] = proxy = FaultProxy(target.sync_port)
                proxies.append(proxy)
        source.env["COUNTER_SEEDS"] = ",".join(
            links[source.node_id, target.node_id].url for target in nodes if target is not source
        )
    start_all(nodes)

    before = write_concurrently(nodes, posts_per_thread=5, vocabulary=VOCABULARY)
    wait_until(lambda: all_report(nodes, before, VOCABULARY), 30, "convergence before the partition")

    for (source_id, target_id), proxy in links.items():
        if 2 in (source_id, target_id):
            proxy.cut()
    majority_words = [f"major{n}" for n in range(40)]
    minority_words = [f"minor{n}" for n in range(40)]
    majority = write_concurrently(nodes[:2], posts_per_thread=10, vocabulary=majority_words)
    minority = write_concurrently(nodes[2:], posts_per_thread=10, vocabulary=minority_words)
    wait_until(
        lambda: all_report(nodes[:2], majority, majority_words), 30, "the majority side to converge during the cut"
    )
    # The cut is real: nothing written on node 2 reached the others, nor the reverse.
    assert nodes[0].counts(minority_words) == dict.fromkeys(minority_words, 0)
    assert nodes[2].counts(majority_words) == dict.fromkeys(majority_words, 0)
    assert all_report(nodes[2:], minority, minority_words)

    for proxy in links.values():
        proxy.heal()
    everything = before + majority + minority
    vocabulary = VOCABULARY + majority_words + minority_words
    wait_until(lambda: all_report(nodes, everything, vocabulary), 60, "all nodes to converge after healing")
    for node in nodes:
        assert node.stop() == 0, node.log()


def test_a_restarted_node_catches_up_and_a_new_empty_node_gets_everything(make_node: Callable[..., Node]) -> None:
    nodes = start_cluster(make_node)
    first = write_concurrently(nodes, posts_per_thread=5, vocabulary=VOCABULARY)
    wait_until(lambda: all_report(nodes, first, VOCABULARY), 30, "initial convergence")

    assert nodes[2].stop() == 0
    many_words = [f"bulk{n}" for n in range(3000)]
    nodes[0].post(" ".join(many_words))
    second = write_concurrently(nodes[:2], posts_per_thread=5, vocabulary=VOCABULARY)
    nodes[2].start()
    everything = first + second + Counter(many_words)
    wait_until(lambda: all_report(nodes, everything, VOCABULARY), 30, "the restarted node to catch up")
    assert all_report([nodes[2]], everything, many_words)

    newcomer = make_node(3, env={"COUNTER_SEEDS": nodes[1].sync_url})
    newcomer.start()
    wait_until(lambda: all_report([newcomer], everything, VOCABULARY + many_words), 30, "the new node to get all")

    def repaired_by_anti_entropy() -> bool:
        peers = cluster_status(newcomer)["peers"]
        return bool(peers) and peers[0]["last_anti_entropy"] is not None and peers[0]["keys_received"] >= 3000

    wait_until(repaired_by_anti_entropy, 10, "/cluster to show the anti-entropy transfer")
    for node in [*nodes, newcomer]:
        assert node.stop() == 0, node.log()


def test_bad_sync_input_gets_a_4xx_and_changes_nothing(make_node: Callable[..., Node]) -> None:
    token = "s3cret-token"
    node = make_node(0, env={"COUNTER_SYNC_TOKEN": token, "COUNTER_MAX_SYNC_BODY_BYTES": "100000"}).start()
    url = node.sync_url + "/v1/sync"
    good_auth = {"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE}
    peer = Hello(node_id=5, incarnation=7, sequence=1, width=6, tokenizer="words")
    rows = Rows(np.array([42], dtype=np.uint64), np.array([[0, 0, 0, 0, 0, 9]], dtype=np.uint64))
    valid = encode(Message(Kind.EXCHANGE_REQUEST, peer, cursor=Cursor(0, 0), rows=rows))

    def post(body: bytes, headers: dict[str, str], path: str = "/v1/sync") -> requests.Response:
        return requests.post(node.sync_url + path, data=body, headers=headers, timeout=10)

    assert post(valid, {"Content-Type": CONTENT_TYPE}).status_code == 401
    assert post(valid, {**good_auth, "Authorization": "Bearer wrong"}).status_code == 401
    assert (
        post(b'[{"hash_keyword": 1, "totals": [1]}]', {"Content-Type": "application/json"}, "/sync").status_code == 401
    )
    cases = {
        "garbage": b"\x00garbage" * 10,
        "truncated": valid[: len(valid) // 2],
        "flipped byte": valid[:20] + bytes([valid[20] ^ 1]) + valid[21:],
        "unknown version": valid[:4] + struct.pack("<H", 99) + valid[6:],
        "absurd row count": encode(Message(Kind.EXCHANGE_REQUEST, peer, rows=rows)).replace(
            struct.pack("<IHH", 1, 6, 0), struct.pack("<IHH", 0xFFFFFFFF, 6, 0)
        ),
        "other tokenizer": encode(Message(Kind.EXCHANGE_REQUEST, Hello(5, 7, 1, 6, "fields"), rows=rows)),
        "too large": b"x" * 200_000,
    }
    expected_status = {"other tokenizer": 409, "too large": 413}
    for name, body in cases.items():
        response = post(body, good_auth)
        assert response.status_code == expected_status.get(name, 400), (name, response.status_code, response.text)
        assert response.json()["detail"], name
    assert "version 99" in post(cases["unknown version"], good_auth).json()["detail"]
    assert cluster_status(node)["node"]["keys"] == 0
    accepted = requests.post(url, data=valid, headers=good_auth, timeout=10)
    assert accepted.status_code == 200 and accepted.headers["Content-Type"] == CONTENT_TYPE
    assert cluster_status(node)["node"]["keys"] == 1
    assert node.stop() == 0


class FakeCounterAppNode:
    """counter-app's sync behaviour: merges POST /sync by max, 404 elsewhere, pushes its full state."""

    def __init__(self, node_id: int, push_to: str) -> None:
        self.node_id = node_id
        self.push_to = push_to
        self.state: dict[int, list[int]] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/sync":
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b"404 page not found\n")
                    return
                fake.merge(json.loads(body) or [])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self.push_loop, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def merge(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            for item in items:
                row = self.state.setdefault(item["hash_keyword"], [])
                row.extend([0] * (len(item["totals"]) - len(row)))
                for index, value in enumerate(item["totals"]):
                    row[index] = max(row[index], value)

    def increment(self, key: int) -> None:
        with self.lock:
            row = self.state.setdefault(key, [])
            row.extend([0] * (self.node_id + 1 - len(row)))
            row[self.node_id] += 1

    def total(self, key: int) -> int:
        with self.lock:
            return sum(self.state.get(key, []))

    def push_loop(self) -> None:
        while not self.stopping.wait(0.2):
            with self.lock:
                body = json.dumps([{"hash_keyword": key, "totals": row} for key, row in self.state.items()])
            with contextlib.suppress(requests.RequestException):
                requests.post(self.push_to + "/sync", data=body, timeout=5)

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_mixed_cluster_with_a_counter_app_peer_converges(make_node: Callable[..., Node]) -> None:
    node = make_node(0, env={"COUNTER_TOKENIZER": "fields"})
    fake = FakeCounterAppNode(node_id=1, push_to=node.sync_url)
    try:
        node.env["COUNTER_SEEDS"] = fake.url
        node.start()
        fields = Keywords("fields")
        ours = "The fox, the dog. THE END"
        theirs = "the fox and the hound, the end"
        node.post(ours)
        for token in fields.tokenize(theirs):
            fake.increment(fields.key_of(token))
        expected = Counter(fields.tokenize(ours) + fields.tokenize(theirs))

        def converged() -> bool:
            if node.counts(list(expected)) != dict(expected):
                return False
            return all(fake.total(fields.key_of(word)) == count for word, count in expected.items())

        wait_until(converged, 30, "our node and the counter-app peer to agree")
        wait_until(
            lambda: [(p["mode"], p["reachable"]) for p in cluster_status(node)["peers"]] == [("legacy", True)],
            10,
            "/cluster to show the counter-app peer as legacy and reachable",
        )
        # Our rows reach counter-app padded to the cluster's width, so it can increment any key safely.
        assert all(len(row) >= 2 for row in fake.state.values())
        assert node.stop() == 0, node.log()
    finally:
        fake.stop()


def test_a_seed_that_never_answers_holds_up_no_other_seed(make_node: Callable[..., Node]) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except TimeoutError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        a = make_node(0, env={"COUNTER_SYNC_TIMEOUT": "30"})
        b = make_node(1)
        a.start()  # a state on disk first, so that a's writes are not held for the silent seed
        assert a.stop() == 0
        a.env["COUNTER_SEEDS"] = f"http://127.0.0.1:{silent.getsockname()[1]},{b.sync_url}"
        b.env["COUNTER_SEEDS"] = a.sync_url
        a.start()
        b.start()
        for round_number in range(3):
            word = f"prompt{round_number}"
            a.post(word)
            started = time.monotonic()
            wait_until(lambda w=word: b.counts([w]) == {w: 1}, 5, "the healthy seed to get the write")  # type: ignore[misc]
            assert time.monotonic() - started < 5
        assert b.stop() == 0
        assert a.stop() == 0, a.log()
    finally:
        stop.set()
        acceptor.join(5)
        for connection in held:
            connection.close()
        silent.close()
