"""Memory and speed of the in-process store at a given number of keys.

    .venv/bin/python -m bench.store_memory --keys 1000000 --runs 5

Prints the median (with min and max) over --runs fresh stores of: bytes per
key the arrays hold, the process's resident growth per key (after returning
freed memory to the system with malloc_trim), and the cost of a 100-keyword
increment and read.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import time

import numpy as np

from storage_app.core.store import GCounterStore


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def one_run(keys: int, slots: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    all_keys = rng.integers(0, 2**63, keys, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    rows = np.ones((keys, slots), dtype=np.uint64)
    libc = ctypes.CDLL("libc.so.6")
    gc.collect()
    libc.malloc_trim(0)
    before = resident_bytes()
    store = GCounterStore()
    started = time.perf_counter()
    store.merge(all_keys, rows)
    merge_seconds = time.perf_counter() - started
    gc.collect()
    libc.malloc_trim(0)
    growth = resident_bytes() - before
    batch = {int(key): 1 for key in all_keys[:100]}
    started = time.perf_counter()
    for _ in range(500):
        store.increment(0, batch)
    increment_us = (time.perf_counter() - started) / 500 * 1e6
    query = list(batch)
    started = time.perf_counter()
    for _ in range(500):
        store.read(query)
    read_us = (time.perf_counter() - started) / 500 * 1e6
    return {
        "array bytes/key": store.memory_bytes() / keys,
        "resident growth bytes/key": growth / keys,
        "bulk merge s": merge_seconds,
        "increment 100 keys us": increment_us,
        "read 100 keys us": read_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    results = [one_run(options.keys, options.slots, seed) for seed in range(options.runs)]
    print(f"store at {options.keys} keys x {options.slots} slots, {options.runs} runs: median (min..max)")
    for name in results[0]:
        values = [result[name] for result in results]
        print(f"  {name:28} {statistics.median(values):10.2f}  ({min(values):.2f}..{max(values):.2f})")


if __name__ == "__main__":
    main()
