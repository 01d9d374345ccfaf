"""What the write-ahead log costs, and how long a restart takes.

    .venv/bin/python -m bench.durability_bench --rounds 5 --seconds 5

1. Throughput: acknowledged POST /keywords per second with 1 KB bodies of real
   English text, --clients keep-alive clients, against one node with the log
   off, with COUNTER_FSYNC=interval and with COUNTER_FSYNC=always. The three
   modes take turns, --rounds times, so that all see the same machine; the
   table gives median (min..max) per mode and each mode's ratio to "log off".
2. Restart: a data directory with a --restart-keys key snapshot and about
   --log-mb MB of log after it (written with the node's own codecs), then the
   time from starting runnode until /readyz answers 200.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from storage_app.core.snapshot import encode_snapshot, write_snapshot_file  # noqa: E402
from storage_app.core.store import GCounterStore  # noqa: E402
from storage_app.core.wal import WriteAheadLog  # noqa: E402
from tests.cluster.nodes import Node, crash  # noqa: E402

TEXT_SOURCES = [Path("/usr/share/common-licenses/GPL-3"), Path("/usr/share/common-licenses/Apache-2.0")]


def one_kb_bodies(count: int) -> list[bytes]:
    text = " ".join(path.read_text() for path in TEXT_SOURCES if path.exists()).split()
    if not text:
        text = [f"word{n}" for n in range(5000)]
    bodies, position = [], 0
    for _ in range(count):
        words: list[str] = []
        while sum(len(word) + 1 for word in words) < 1024:
            words.append(text[position % len(text)])
            position += 1
        bodies.append(" ".join(words).encode()[:1024])
    return bodies


def throughput(node: Node, bodies: list[bytes], clients: int, seconds: float) -> float:
    """Acknowledged requests per second over ``seconds``."""
    acknowledged = [0] * clients
    stop = threading.Event()

    def client(index: int) -> None:
        with requests.Session() as session:
            position = index
            while not stop.is_set():
                response = session.post(node.public_url + "/keywords", data=bodies[position % len(bodies)], timeout=30)
                if response.status_code == 200:
                    acknowledged[index] += 1
                position += clients

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(acknowledged) / seconds


def prepare_restart_dir(data_dir: Path, keys: int, log_mb: int) -> int:
    """A snapshot of ``keys`` keys and ~``log_mb`` MB of log after it; returns the log's record count."""
    rng = np.random.default_rng(3)
    all_keys = np.unique(rng.integers(1, 2**64 - 1, keys + keys // 100, dtype=np.uint64))[:keys]
    store = GCounterStore()
    store.merge(all_keys, rng.integers(1, 1000, (len(all_keys), 3), dtype=np.uint64))
    write_snapshot_file(data_dir / "node-0.snapshot", encode_snapshot(store.export_chunks(), node_id=0))
    log = WriteAheadLog(data_dir / "node-0.wal", next_lsn=1)
    records = 0
    batch_keys = 100
    record_bytes = 8 + 16 + 16 * batch_keys
    for _ in range(log_mb * 1024 * 1024 // record_bytes):
        chosen = all_keys[rng.integers(0, len(all_keys), batch_keys)]
        log.append(0, np.unique(chosen), np.ones(len(np.unique(chosen)), dtype=np.uint64), apply=lambda *_: None)
        records += 1
    log.close()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--restart-keys", type=int, default=1_000_000)
    parser.add_argument("--log-mb", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=3)
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="counter-durability-bench-"))
    bodies = one_kb_bodies(2000)
    modes = {
        "log off": {"COUNTER_WAL": "false"},
        "log, fsync interval": {"COUNTER_FSYNC": "interval"},
        "log, fsync always": {"COUNTER_FSYNC": "always"},
    }
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_number in range(options.rounds):
        for mode, env in modes.items():
            node = Node(workdir / f"{mode.replace(' ', '-').replace(',', '')}-{round_number}", 0, {**env})
            node.start()
            try:
                throughput(node, bodies, options.clients, 1.0)  # warm up
                results[mode].append(throughput(node, bodies, options.clients, options.seconds))
            finally:
                node.stop()
        print(
            f"round {round_number + 1}: " + ", ".join(f"{m} {v[-1]:.0f}/s" for m, v in results.items()), file=sys.stderr
        )

    restart_dir = workdir / "restart"
    (restart_dir / "data").mkdir(parents=True)
    records = prepare_restart_dir(restart_dir / "data", options.restart_keys, options.log_mb)
    log_bytes = sum(path.stat().st_size for path in (restart_dir / "data" / "node-0.wal").glob("*.wal"))
    snapshot_bytes = (restart_dir / "data" / "node-0.snapshot").stat().st_size
    restarts: list[float] = []
    for _ in range(options.restarts):
        node = Node(restart_dir, 0, {"COUNTER_DUMP_INTERVAL": "3600"})
        started = time.monotonic()
        node.start(wait=False)
        node.wait_ready(timeout=600)
        restarts.append(time.monotonic() - started)
        crash(node)  # no final dump: the next start replays the same log again
    baseline = statistics.median(results["log off"])
    print("\n| figure | median (min..max) | ratio to log off |")
    print("|---|---|---|")
    for mode, values in results.items():
        median = statistics.median(values)
        print(
            f"| 1 KB POSTs per second, {options.clients} clients, {mode} | "
            f"{median:,.0f} ({min(values):,.0f}..{max(values):,.0f}) | {median / baseline:.2f} |"
        )
    print(
        f"| restart until /readyz: {options.restart_keys:,}-key snapshot ({snapshot_bytes / 1e6:.0f} MB) + "
        f"{log_bytes / 1e6:.0f} MB of log ({records:,} records), s | "
        f"{statistics.median(restarts):.1f} ({min(restarts):.1f}..{max(restarts):.1f}) | |"
    )


if __name__ == "__main__":
    main()
