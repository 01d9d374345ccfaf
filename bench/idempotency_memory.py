"""Memory per remembered Idempotency-Key: ``python -m bench.idempotency_memory [--keys N]``.

Counts every allocation made to build and remember N entries with UUID keys
(36 bytes), as tracemalloc sees it, and prints bytes per key.
"""

from __future__ import annotations

import argparse
import os
import tracemalloc
import uuid

from storage_app.core.idempotency import IdempotencyTable, Remembered


def bytes_per_key(count: int) -> float:
    table = IdempotencyTable(ttl_seconds=86400, max_keys=count)
    keys = [str(uuid.uuid4()) for _ in range(count)]
    now_ms = 1_800_000_000_000
    tracemalloc.start()
    table.remember(
        (Remembered(key.encode(), os.urandom(16), 100, 50, 0, now_ms + index) for index, key in enumerate(keys)),
        now_ms,
    )
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(table) == count
    return current / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=100_000)
    arguments = parser.parse_args()
    print(f"{bytes_per_key(arguments.keys):.0f} bytes per remembered key ({arguments.keys} UUID keys)")


if __name__ == "__main__":
    main()
