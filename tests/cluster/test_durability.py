"""kill -9 in the middle of a stream of writes: every acknowledged increment survives, nothing more appears."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.cluster.nodes import Node, crash, descendants, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("durability")]

CLIENTS = 4


class Client(threading.Thread):
    """Posts "client<i> shared" over and over; counts requests sent and acknowledged (200).

    It stops at its first failure (the node was killed), so ``sent`` exceeds
    ``acknowledged`` by at most the one request that was in flight.
    """

    def __init__(self, node: Node, index: int) -> None:
        super().__init__(daemon=True)
        self.node, self.index = node, index
        self.sent = self.acknowledged = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop_event.is_set():
                self.sent += 1
                try:
                    response = session.post(
                        self.node.public_url + "/keywords", data=f"client{self.index} shared", timeout=5
                    )
                except requests.RequestException:
                    return
                if response.status_code != 200:
                    return
                self.acknowledged += 1


def snapshot_write_in_progress(data_dir: Path) -> bool:
    return any(data_dir.glob(".node-0.snapshot*.tmp"))


def test_kill_9_during_writes_and_snapshots_loses_no_acknowledged_increment(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(0, env={"COUNTER_DUMP_INTERVAL": "0.05"})
    node.start()
    # A bigger store makes each snapshot write last long enough to be killed in the middle of.
    node.post(" ".join(f"filler{n}" for n in range(60_000)))
    data_dir = node.workdir / "data"
    rng = random.Random(20261126)
    sent = [0] * CLIENTS
    acknowledged = [0] * CLIENTS
    kills_during_snapshot = 0
    kill = 0
    # Six kills at random moments, and more (at most ten) until one has landed in a snapshot write.
    while kill < 6 or (kills_during_snapshot == 0 and kill < 16):
        clients = [Client(node, index) for index in range(CLIENTS)]
        for client in clients:
            client.start()
        assert node.process is not None
        victims = [node.process.pid, *descendants(node.process.pid)]
        if kill >= 5:
            # Aim at a snapshot write: wait for its temporary file.
            wait_until(lambda: snapshot_write_in_progress(data_dir), 30, "a snapshot write", interval=0.0005)
        else:
            time.sleep(rng.uniform(0.2, 1.5))
        crash(node, victims)
        # The write was cut off exactly when its temporary file outlives the kill (recovery removes it).
        during_snapshot = snapshot_write_in_progress(data_dir)
        kills_during_snapshot += during_snapshot
        for client in clients:
            client.stop_event.set()
        for client in clients:
            client.join()
            sent[client.index] += client.sent
            acknowledged[client.index] += client.acknowledged
        node.start()
        found = node.counts([f"client{index}" for index in range(CLIENTS)] + ["shared", "filler7"])
        print(
            f"kill {kill + 1}{' (during a snapshot write)' if during_snapshot else ''}: "
            f"sent {sum(sent)}, acknowledged {sum(acknowledged)}, found {found['shared']}"
        )
        for index in range(CLIENTS):
            assert acknowledged[index] <= found[f"client{index}"] <= sent[index], (index, found, node.log()[-3000:])
        assert sum(acknowledged) <= found["shared"] <= sum(sent)
        assert sum(sent) - sum(acknowledged) <= CLIENTS * (kill + 1), "at most one request in flight per client"
        assert found["filler7"] == 1
        kill += 1
    assert kills_during_snapshot >= 1
    assert sum(acknowledged) > 100, "the clients were too slow to make the test meaningful"
    assert node.stop() == 0
