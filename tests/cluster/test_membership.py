"""Live membership with real nodes: a fourth node joins through one seed and every node syncs with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import pytest
import requests

from tests.cluster.nodes import Node, crash, manage, start_cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("membership")]


class Writer(threading.Thread):
    """Posts "common <name>" to one node about 20 times a second until stopped; counts acknowledged posts."""

    def __init__(self, node: Node, name: str) -> None:
        super().__init__(daemon=True)
        self.node, self.name = node, name
        self.acknowledged = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop_event.is_set():
                response = session.post(self.node.public_url + "/keywords", data=f"common {self.name}", timeout=10)
                assert response.status_code == 200, response.text
                self.acknowledged += 1
                time.sleep(0.05)  # about 20 writes a second per writer: load, and room for the nodes to work

    def finish(self) -> int:
        self.stop_event.set()
        self.join()
        return self.acknowledged


def peers_of(node: Node) -> dict[int, dict[str, object]]:
    response = requests.get(node.public_url + "/cluster", timeout=5)
    response.raise_for_status()
    return {int(peer["node_id"]): peer for peer in response.json()["peers"] if peer["node_id"] is not None}


def peer_is(node: Node, peer: int, field: str, value: object) -> bool:
    return peers_of(node).get(peer, {}).get(field) == value


def rounds_reach(node: Node, peer: int, rounds: int) -> bool:
    return int(str(peers_of(node)[peer]["rounds"])) >= rounds


def last_success(node: Node, peer: int) -> object:
    return peers_of(node).get(peer, {}).get("last_success")


def test_a_fourth_node_joins_through_one_seed_under_writes(make_node: Callable[..., Node]) -> None:
    nodes = start_cluster(make_node)
    writers = [Writer(node, f"w{node.node_id}") for node in nodes]
    for writer in writers:
        writer.start()
    wait_until(lambda: all(writer.acknowledged >= 20 for writer in writers), 30, "writes before the join")
    newcomer = make_node(3)
    newcomer.env["COUNTER_SEEDS"] = nodes[0].sync_url  # one live member, nothing else
    acknowledged_before = sum(writer.acknowledged for writer in writers)
    started = time.monotonic()
    newcomer.start(wait=False)
    newcomer.wait_ready()
    ready = time.monotonic() - started
    wait_until(
        lambda: newcomer.counts(["common"])["common"] >= acknowledged_before, 60, "node 3 to hold the earlier writes"
    )
    caught_up = time.monotonic() - started
    everyone = [*nodes, newcomer]

    def every_node_sees_the_others_up() -> bool:
        for node in everyone:
            peers = peers_of(node)
            others = {other.node_id for other in everyone if other is not node}
            if not all(peers.get(other, {}).get("state") == "up" for other in others):
                return False
        return True

    wait_until(every_node_sees_the_others_up, 60, "every node to list every other as up")
    # Nodes 1 and 2 were told of node 3 by gossip and sync with it directly.
    for node in nodes[1:]:
        wait_until(partial(last_success, node, 3), 30, f"node {node.node_id} to sync with node 3")
    acknowledged = {writer.name: writer.finish() for writer in writers}
    expected = {"common": sum(acknowledged.values()), **acknowledged}
    wait_until(lambda: newcomer.counts(list(expected)) == expected, 60, f"node 3 to count {expected}")
    joined = time.monotonic() - started
    wait_until(lambda: all(node.counts(list(expected)) == expected for node in everyone), 60, "exact totals")
    print(
        f"join: node 3 started with one seed served after {ready:.2f} s and "
        f"held all {acknowledged_before} writes acknowledged before its start "
        f"{caught_up:.2f} s later; every count exact on it {joined:.2f} s after its start "
        f"(the writers ran until every node listed every other as up); totals {expected}"
    )
    assert newcomer.post("from the newcomer") == {"tokens": 3, "keywords": 3}
    wait_until(lambda: all(node.counts(["newcomer"]) == {"newcomer": 1} for node in everyone), 30, "its own write")

    # Membership is kept on disk: node 1, restarted, still syncs with node 3, which is not among its seeds.
    assert nodes[1].stop() == 0
    nodes[1].start()
    assert peers_of(nodes[1])[3]["url"] == newcomer.sync_url
    wait_until(lambda: last_success(nodes[1], 3), 30, "restarted node 1 to sync with node 3")
    for node in everyone:
        assert node.stop() == 0, node.log()


def test_a_decommissioned_node_leaves_under_writes_and_its_counts_stay(make_node: Callable[..., Node]) -> None:
    nodes = start_cluster(make_node)
    leaving = nodes[2]
    assert [leaving.post("leaving words") for _ in range(25)][-1] == {"tokens": 2, "keywords": 2}
    writers = [Writer(node, f"w{node.node_id}") for node in nodes[:2]]
    for writer in writers:
        writer.start()
    wait_until(lambda: all(writer.acknowledged >= 20 for writer in writers), 30, "writes before the decommission")
    result = manage("decommission", env=leaving.env, cwd=leaving.workdir, timeout=120)
    assert result.returncode == 0, result.stderr + leaving.log()[-3000:]
    assert "has left the cluster and stopped" in result.stdout
    assert leaving.process is not None and leaving.process.wait(30) == 0, leaving.log()[-3000:]
    for node in nodes[:2]:
        wait_until(partial(peer_is, node, 2, "state", "left"), 10, f"node {node.node_id} to show node 2 as left")
        assert peers_of(node)[2]["mode"] == "left"
    # No more rounds with it: its failure count stands still while rounds with the other member go on.
    for node in nodes[:2]:
        other = 1 - node.node_id
        errors_then = peers_of(node)[2]["errors"]
        five_more = int(str(peers_of(node)[other]["rounds"])) + 5
        wait_until(partial(rounds_reach, node, other, five_more), 30, "five more rounds between the remaining nodes")
        assert peers_of(node)[2]["errors"] == errors_then
    acknowledged = {writer.name: writer.finish() for writer in writers}
    expected = {"leaving": 25, "words": 25, "common": sum(acknowledged.values()), **acknowledged}
    wait_until(lambda: all(node.counts(list(expected)) == expected for node in nodes[:2]), 30, f"totals {expected}")

    # Its id is not reused by accident: a new node with id 2 is refused, until the operator says so.
    successor = make_node(2, env={"COUNTER_SEEDS": nodes[0].sync_url})
    successor.start(settled=False)
    wait_until(lambda: "node 2 was decommissioned" in successor.log(), 30, "the new node 2 to be refused")
    assert peers_of(nodes[0])[2]["state"] == "left"
    assert successor.stop() == 0
    successor.env["COUNTER_REUSE_ID"] = "true"  # what `runnode --reuse-id` sets
    successor.start()  # learns slot 2 from its seed, then counts on in it
    wait_until(partial(peer_is, nodes[0], 2, "state", "up"), 30, "node 0 to take node 2 back")
    successor.post("leaving")
    expected["leaving"] += 1
    wait_until(
        lambda: all(node.counts(list(expected)) == expected for node in nodes[:2]), 30, "the reused slot counted"
    )
    for node in [*nodes[:2], successor]:
        assert node.stop() == 0, node.log()


def test_a_dead_member_goes_down_and_is_dropped_only_by_forget(make_node: Callable[..., Node]) -> None:
    nodes = start_cluster(lambda node_id: make_node(node_id, env={"COUNTER_MEMBER_TIMEOUT": "2"}))
    wait_until(lambda: all(peer_is(node, 2, "state", "up") for node in nodes[:2]), 30, "node 2 up everywhere")
    refused = manage("forget", "2", env=nodes[0].env, cwd=nodes[0].workdir)
    assert refused.returncode != 0 and "node 2 is up: decommission it instead" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    crash(nodes[2])
    for node in nodes[:2]:
        wait_until(partial(peer_is, node, 2, "state", "down"), 30, f"node {node.node_id} to show node 2 as down")
    result = manage("forget", "2", env=nodes[0].env, cwd=nodes[0].workdir)
    assert result.returncode == 0, result.stderr
    assert "node 2 (down) is forgotten" in result.stdout
    for node in nodes[:2]:  # node 1 hears of it from node 0
        wait_until(partial(lambda node: 2 not in peers_of(node), node), 30, f"node {node.node_id} to drop node 2")
    nodes[0].post("still counting")
    wait_until(lambda: nodes[1].counts(["counting"]) == {"counting": 1}, 30, "the remaining nodes to sync")
    assert nodes[0].stop() == 0
    nodes[0].start()
    assert 2 not in peers_of(nodes[0]), "forgetting survives a restart"
    for node in nodes[:2]:
        assert node.stop() == 0, node.log()


def test_a_second_process_with_a_live_nodes_id_is_refused_and_takes_no_writes(
    make_node: Callable[..., Node],
) -> None:
    first = make_node(0).start()
    first.post("before the copy")
    copy = make_node(0)  # the same COUNTER_NODE_ID, by a copy-paste error
    copy.env["COUNTER_SEEDS"] = first.sync_url
    copy.start(settled=False)
    wait_until(lambda: node_field(copy, "clash"), 30, "the newcomer to notice the clash")
    refused = requests.post(copy.public_url + "/keywords", data="written twice", timeout=10)
    assert refused.status_code == 503 and refused.json()["code"] == "duplicate_node_id", refused.text
    node = requests.get(copy.public_url + "/cluster", timeout=5).json()["node"]
    assert "two live processes run as node 0" in node["clash"]
    assert "NODE ID CLASH" in copy.log()
    assert "runs with this node's id and started first" in copy.log()
    # The node that was there first keeps counting, and nothing of the copy reached it.
    assert first.post("still counting") == {"tokens": 2, "keywords": 2}
    assert requests.get(first.public_url + "/cluster", timeout=5).json()["node"]["clash"] is None
    assert first.counts(["written", "counting"]) == {"written": 0, "counting": 1}
    assert "refused a sync request: two live processes run as node 0" in first.log()
    for process in (first, copy):
        assert process.stop() == 0, process.log()


def node_field(node: Node, field: str) -> object:
    """A field of the node's own status in /cluster."""
    return requests.get(node.public_url + "/cluster", timeout=5).json()["node"][field]
