"""Replication costs on a three-node loopback cluster with a large store.

    .venv/bin/python -m bench.sync_bench --keys 1000000 --changes-per-second 1000

1. Starts three nodes (runnode, default intervals), loads --keys keys with 3
   slots into node 0 through its sync port, and times until all three hold them.
2. Steady state: a writer makes about --changes-per-second changed keys per
   second on node 0; over --windows windows of --window seconds it measures, per
   exchange with one peer, the bytes on the wire and the CPU time of all three
   nodes' runsync and gunicorn processes.
3. In the same run, counter-app's way: one full-state push (fetch the state,
   encode counter-app's JSON, POST it to a peer), its bytes and CPU time.
4. Convergence latency: --samples writes of a new keyword on a node, each
   timed from the write's acknowledgement until both other nodes return it.
5. A new, empty node with node 0 as its only seed: time until it holds every key.

Prints a Markdown table: median (min..max) across windows, p50/p99 of latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from storage_app.core.snapshot import decode_snapshot  # noqa: E402
from storage_app.core.store import StoreChunk  # noqa: E402
from sync_app.core.legacy_protocol import encode_legacy_sync  # noqa: E402
from sync_app.core.protocol import CONTENT_TYPE, Hello, Kind, Message, Rows, encode  # noqa: E402
from tests.cluster.nodes import Node, connect, start_all, wait_until  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) of ``root_pid``'s descendants, not counting the root itself."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(entry.name), int(fields[1])
        children.setdefault(parent, []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, stack = 0.0, list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def cluster(node: Node) -> dict[str, Any]:
    response = requests.get(node.public_url + "/cluster", timeout=30)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def preload(node: Node, keys: int, batch: int = 100_000) -> None:
    """Send ``keys`` synthetic keys with 3 slots to ``node`` as a peer would (node id 250)."""
    rng = np.random.default_rng(7)
    all_keys = np.unique(rng.integers(1, 2**64 - 1, keys + keys // 100, dtype=np.uint64))[:keys]
    rng.shuffle(all_keys)
    hello = Hello(node_id=250, incarnation=1, sequence=1, width=3, tokenizer="words")
    for start in range(0, keys, batch):
        part = all_keys[start : start + batch]
        slots = rng.integers(1, 1000, (len(part), 3), dtype=np.uint64)
        body = encode(Message(Kind.EXCHANGE_REQUEST, hello, rows=Rows(part, slots)))
        response = requests.post(
            node.sync_url + "/v1/sync", data=body, headers={"Content-Type": CONTENT_TYPE}, timeout=120
        )
        response.raise_for_status()


class Writer(threading.Thread):
    """Posts texts of new words to a node, about ``rate`` distinct keywords per second."""

    def __init__(self, node: Node, rate: int) -> None:
        super().__init__(daemon=True)
        self.node, self.rate = node, rate
        self.stop_event = threading.Event()
        self.counter = 0

    def run(self) -> None:
        per_post = 100
        period = per_post / self.rate
        with requests.Session() as session:
            while not self.stop_event.is_set():
                started = time.monotonic()
                words = " ".join(f"steady{self.counter + n}" for n in range(per_post))
                self.counter += per_post
                session.post(self.node.public_url + "/keywords", data=words, timeout=30)
                self.stop_event.wait(max(0.0, period - (time.monotonic() - started)))


def totals(nodes: list[Node]) -> tuple[int, int, float]:
    """(exchanges, bytes sent and received, CPU seconds) summed over the nodes."""
    exchanges = wire = 0
    for node in nodes:
        for peer in cluster(node)["peers"]:
            exchanges += peer["rounds"]
            wire += peer["bytes_sent"] + peer["bytes_received"]
    cpu = sum(process_tree_cpu(node.process.pid) for node in nodes if node.process)
    return exchanges, wire, cpu


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}..{max(values):,.1f})"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--changes-per-second", type=int, default=1000)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--full-pushes", type=int, default=3)
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="counter-sync-bench-"))
    nodes = [
        Node(workdir / f"node{index}", index, {"COUNTER_SYNC_INTERVAL": "1", "COUNTER_DUMP_INTERVAL": "3600"})
        for index in range(3)
    ]
    connect(nodes)
    newcomer: Node | None = None
    try:
        start_all(nodes)
        print(f"loading {options.keys:,} keys into node 0 ...", file=sys.stderr)
        started = time.monotonic()
        preload(nodes[0], options.keys)
        loaded = time.monotonic() - started
        wait_until(
            lambda: all(cluster(node)["node"]["keys"] >= options.keys for node in nodes),
            600,
            "every node to hold the preloaded keys",
            interval=0.2,
        )
        replicated = time.monotonic() - started
        print(f"loaded in {loaded:.1f} s, on all three nodes after {replicated:.1f} s", file=sys.stderr)

        writer = Writer(nodes[0], options.changes_per_second)
        writer.start()
        time.sleep(options.window)  # settle
        bytes_per_second: list[float] = []
        per_exchange_bytes: list[float] = []
        per_exchange_cpu_ms: list[float] = []
        exchanges_per_second: list[float] = []
        for _ in range(options.windows):
            first = totals(nodes)
            time.sleep(options.window)
            last = totals(nodes)
            exchanges = max(1, last[0] - first[0])
            per_exchange_bytes.append((last[1] - first[1]) / exchanges)
            per_exchange_cpu_ms.append((last[2] - first[2]) * 1000 / exchanges)
            exchanges_per_second.append(exchanges / options.window)
            bytes_per_second.append((last[1] - first[1]) / options.window)
        writer.stop_event.set()
        writer.join()

        # counter-app's way, in the same run: node 0's whole state pushed to node 1.
        token = (nodes[0].workdir / "data" / "node-0.internal-token").read_text().strip()
        full_bytes: list[float] = []
        full_cpu_ms: list[float] = []
        assert nodes[0].process is not None and nodes[1].process is not None
        for _ in range(options.full_pushes):
            cpu_before = (
                time.process_time() + process_tree_cpu(nodes[0].process.pid) + process_tree_cpu(nodes[1].process.pid)
            )
            state = requests.get(
                nodes[0].sync_url + "/internal/state", headers={"X-Counter-Internal-Token": token}, timeout=120
            )
            snapshot = decode_snapshot(state.content)
            body = encode_legacy_sync([StoreChunk(snapshot.keys, snapshot.slots)], 3)
            requests.post(nodes[1].sync_url + "/sync", data=body, timeout=300).raise_for_status()
            cpu_after = (
                time.process_time() + process_tree_cpu(nodes[0].process.pid) + process_tree_cpu(nodes[1].process.pid)
            )
            full_bytes.append(len(body))
            full_cpu_ms.append((cpu_after - cpu_before) * 1000)

        latencies: list[float] = []
        with requests.Session() as session:
            for sample in range(options.samples):
                source = nodes[sample % 3]
                word = f"latency{sample}"
                session.post(source.public_url + "/keywords", data=word, timeout=30).raise_for_status()
                acknowledged = time.monotonic()
                for other in nodes:
                    if other is source:
                        continue
                    while session.get(other.public_url + f"/keywords/{word}", timeout=30).json()["count"] != 1:
                        pass
                    latencies.append(time.monotonic() - acknowledged)

        total_keys = cluster(nodes[0])["node"]["keys"]
        newcomer = Node(workdir / "node3", 3, {"COUNTER_SEEDS": nodes[0].sync_url, "COUNTER_DUMP_INTERVAL": "3600"})
        started = time.monotonic()
        newcomer.start()
        wait_until(lambda: cluster(newcomer)["node"]["keys"] >= total_keys, 600, "the new node", interval=0.1)
        new_node_seconds = time.monotonic() - started
    finally:
        for node in [*nodes, *([newcomer] if newcomer else [])]:
            if node.process and node.process.poll() is None:
                node.stop()

    ratio = statistics.median(full_bytes) / statistics.median(per_exchange_bytes)
    print(f"\nSync benchmark: {options.keys:,} keys x 3 slots, ~{options.changes_per_second} changed keys/s on node 0")
    print("| figure | value: median (min..max) |")
    print("|---|---|")
    print(f"| delta exchange with one peer: bytes | {summary(per_exchange_bytes)} |")
    print(f"| delta exchange with one peer: CPU ms (both nodes) | {summary(per_exchange_cpu_ms)} |")
    print(f"| exchanges per second (whole cluster) | {summary(exchanges_per_second)} |")
    print(f"| counter-app full-state push to one peer: bytes | {summary(full_bytes)} |")
    print(f"| counter-app full-state push to one peer: CPU ms | {summary(full_cpu_ms)} |")
    print(f"| full push bytes / delta exchange bytes | {ratio:,.0f}x |")
    print(f"| replication traffic, whole cluster (bytes/s) | {summary(bytes_per_second)} |")
    full_per_second = 6 * statistics.median(full_bytes)  # 3 nodes x 2 seeds, once a second
    print(f"| counter-app-style traffic at one full push per seed per second (bytes/s) | {full_per_second:,.0f} |")
    print(
        f"| convergence after acknowledgement: p50 / p99 (ms), {len(latencies)} samples | "
        f"{percentile(latencies, 0.5) * 1000:.1f} / {percentile(latencies, 0.99) * 1000:.1f} |"
    )
    print(f"| {options.keys:,} keys loaded on node 0 until on all three (s) | {replicated:.1f} |")
    print(f"| new empty node, start until it holds all {total_keys:,} keys (s) | {new_node_seconds:.1f} |")


if __name__ == "__main__":
    main()
