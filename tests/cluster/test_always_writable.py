"""Every node takes writes from its first 200 on /readyz: new clusters, wiped disks, frozen peers, counter-app seeds."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests

from storage_app.core.keywords import Keywords
from tests.cluster.nodes import (
    PROJECT_DIR,
    Node,
    connect,
    crash,
    free_port,
    signal_all,
    start_cluster,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("always-writable")]

FAST_FAILURES = {"COUNTER_SYNC_TIMEOUT": "1"}


def post_all(node: Node, text: str, times: int) -> list[int]:
    """POST ``text`` ``times`` times; the status of each reply."""
    with requests.Session() as session:
        return [session.post(node.public_url + "/keywords", data=text, timeout=10).status_code for _ in range(times)]


def converged(nodes: list[Node], expected: dict[str, int]) -> bool:
    return all(node.counts(list(expected)) == expected for node in nodes)


def test_a_brand_new_cluster_takes_every_write_from_its_first_ready(make_node: Callable[..., Node]) -> None:
    nodes = [make_node(node_id) for node_id in range(3)]
    connect(nodes)
    statuses: dict[int, list[int]] = {}
    pending_seen: dict[int, str | None] = {}

    def write_from_first_ready(node: Node) -> None:
        node.wait_ready()  # polls /readyz until its first 200
        pending_seen[node.node_id] = node.pending()["reason"]
        statuses[node.node_id] = post_all(node, f"node{node.node_id} common", 100)

    for node in nodes:
        node.start(wait=False)
    writers = [threading.Thread(target=write_from_first_ready, args=(node,)) for node in nodes]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    print(f"pending at the first ready: {pending_seen}")
    for node in nodes:
        assert statuses[node.node_id] == [200] * 100, (node.node_id, sorted(set(statuses[node.node_id])), node.log())
    expected = {"node0": 100, "node1": 100, "node2": 100, "common": 300}
    wait_until(lambda: converged(nodes, expected), 30, f"every node to count {expected}")
    for node in nodes:
        assert node.pending()["reason"] is None
        assert node.stop() == 0, node.log()


@contextmanager
def frozen(*processes: subprocess.Popen[bytes] | None) -> Iterator[None]:
    """The processes and all under them stopped with SIGSTOP (alive, sockets open, answering nothing)."""
    pids = [process.pid for process in processes if process is not None]
    for pid in pids:
        signal_all(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            signal_all(pid, signal.SIGCONT)


def test_a_wiped_node_takes_writes_while_its_peers_are_frozen_and_nothing_is_lost_or_doubled(
    make_node: Callable[..., Node],
) -> None:
    nodes = start_cluster(lambda node_id: make_node(node_id, env=FAST_FAILURES))
    for node in nodes:
        assert post_all(node, "apple banana", 20) == [200] * 20
    before = {"apple": 60, "banana": 60, "cherry": 0}
    wait_until(lambda: converged(nodes, before), 30, "first convergence")

    wiped = nodes[0]
    crash(wiped)
    shutil.rmtree(wiped.workdir / "data")  # the disk is gone; nodes 1 and 2 hold its slot at 20
    with frozen(nodes[1].process, nodes[2].process):
        wiped.start(settled=False)
        first = post_all(wiped, "apple cherry", 30)
        assert first == [200] * 30
        # Its own reads include the pending increments at once (it knows nothing else yet).
        assert wiped.counts(["apple", "cherry"]) == {"apple": 30, "cherry": 30}
        pending = wiped.pending()
        assert pending["reason"] == "no state on disk (a new or wiped data directory)"
        assert pending["keys"] == 2 and pending["increments"] == 60 and pending["since"] > 0

        crash(wiped)  # kill -9 while pending: the increments are in the log
        wiped.start(settled=False)
        assert wiped.counts(["apple", "cherry"]) == {"apple": 30, "cherry": 30}
        assert wiped.pending()["reason"] == "it stopped before it had learned its slot from every seed"
        second = post_all(wiped, "apple cherry", 10)
        assert second == [200] * 10
    sent = len(first) + len(second)
    acknowledged = first.count(200) + second.count(200)
    after = {"apple": 60 + acknowledged, "banana": 60, "cherry": acknowledged}
    wait_until(lambda: converged(nodes, after), 60, f"every node to count {after}")
    found = {node.node_id: node.counts(list(after)) for node in nodes}
    print(f"wiped disk: sent {sent}, acknowledged {acknowledged}; expected {after}; found {found}")
    assert wiped.pending() == {"reason": None, "since": None, "keys": 0, "increments": 0}
    for node in nodes:
        assert node.stop() == 0, node.log()


@pytest.fixture
def counter_app() -> Iterator[Callable[[str], tuple[str, subprocess.Popen[bytes]]]]:
    """Starts fake counter-app processes (tests/cluster/fake_counter_app.py) pushing to a given seed."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(seed: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.fake_counter_app", str(port), seed], cwd=PROJECT_DIR
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url + "/state", timeout=2).status_code == 200, 20, "the fake counter-app")
        return url, process

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_a_wiped_node_with_a_counter_app_seed_learns_its_slot_from_a_push(
    make_node: Callable[..., Node], counter_app: Callable[[str], tuple[str, subprocess.Popen[bytes]]]
) -> None:
    node = make_node(0, env={"COUNTER_TOKENIZER": "fields", **FAST_FAILURES})
    fake_url, fake = counter_app(node.sync_url)
    node.env["COUNTER_SEEDS"] = fake_url
    node.start()
    assert post_all(node, "apple banana", 20) == [200] * 20
    apple = str(Keywords("fields").key_of("apple"))
    cherry = str(Keywords("fields").key_of("cherry"))

    def fake_holds(key: str, value: int) -> bool:
        row = requests.get(fake_url + "/state", timeout=2).json().get(key, [0])
        return bool(row[0] == value)

    wait_until(lambda: fake_holds(apple, 20), 30, "counter-app to hold node 0's slot")

    crash(node)
    shutil.rmtree(node.workdir / "data")
    with frozen(fake):
        node.start(settled=False)
        first = post_all(node, "apple cherry", 15)
        crash(node)
        node.start(settled=False)
        second = post_all(node, "apple cherry", 5)
        assert first + second == [200] * 20
        assert node.counts(["apple", "cherry"]) == {"apple": 20, "cherry": 20}
        assert node.pending()["keys"] == 2
    after = {"apple": 40, "banana": 20, "cherry": 20}
    wait_until(lambda: converged([node], after), 60, f"node 0 to count {after}")
    wait_until(lambda: fake_holds(apple, 40) and fake_holds(cherry, 20), 30, "counter-app to take the new counts")
    assert node.pending()["reason"] is None
    assert node.stop() == 0, node.log()


def test_a_node_listing_its_own_address_skips_it_and_counts_in_its_slot(make_node: Callable[..., Node]) -> None:
    node = make_node(0)
    node.env["COUNTER_SEEDS"] = node.sync_url  # a StatefulSet's pod 0 has itself among its seeds
    node.start(settled=False)
    assert post_all(node, "first", 5) == [200] * 5
    node.wait_settled()
    peers = requests.get(node.public_url + "/cluster", timeout=5).json()["peers"]
    assert [(peer["url"], peer["mode"]) for peer in peers] == [(node.sync_url, "self")]
    assert node.counts(["first"]) == {"first": 5}
    assert "is this node itself" in node.log()
    assert node.stop() == 0, node.log()
