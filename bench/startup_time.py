"""Start time of a node with a large snapshot: from `runnode` to its first 200 on /readyz, after a clean stop.

    .venv/bin/python -m bench.startup_time --keys 1000000 --runs 3

Run it in two checkouts one after the other to compare them on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from storage_app.core.snapshot import encode_snapshot, write_snapshot_file
from storage_app.core.store import GCounterStore
from tests.cluster.nodes import Node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        node = Node(Path(workdir) / "node0", 0, {"COUNTER_DUMP_INTERVAL": "1", "COUNTER_SYNC_INTERVAL": "1"})
        data = Path(workdir) / "node0" / "data"
        data.mkdir(parents=True, exist_ok=True)
        store = GCounterStore()
        keys = np.random.default_rng(1).integers(1, 1 << 63, options.keys, dtype=np.uint64)
        store.merge(keys, np.ones((len(keys), 3), dtype=np.uint64))
        write_snapshot_file(data / "node-0.snapshot", encode_snapshot(store.export_chunks(), 0))
        node.start()  # the first start records a clean stop at its end
        assert node.stop() == 0, node.log()
        times = []
        for _ in range(options.runs):
            started = time.monotonic()
            node.start(settled=False)
            times.append(time.monotonic() - started)
            assert node.stop() == 0, node.log()
    print(
        f"start to /readyz after a clean stop, {options.keys} keys: median {statistics.median(times):.2f} s "
        f"(runs: {', '.join(f'{seconds:.2f}' for seconds in times)})"
    )


if __name__ == "__main__":
    main()
