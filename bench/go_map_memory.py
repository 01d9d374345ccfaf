"""Memory per key of the old Go program's store, a ``map[uint64][]uint64``.

    .venv/bin/python -m bench.go_map_memory --keys 1000000 --slots 3

Builds and runs ``bench/go_map_memory.go`` with a local Go toolchain (installing
Debian's ``golang-go`` when running as root and Go is missing) and prints its
JSON result, plus the layout estimate below for comparison. Everything Go
writes (build cache, GOPATH, HOME) goes to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GO_SOURCE = Path(__file__).with_name("go_map_memory.go")
DEBIAN_GO = "/usr/lib/go/bin/go"

# Go's classic map (Go <= 1.23; Debian bookworm ships 1.19): a bucket holds 8
# entries as 8 tophash bytes, then the 8 keys, then the 8 values, then an
# overflow pointer. The value is a slice header (pointer, len, cap).
BUCKET_ENTRIES = 8
SLICE_HEADER = 24
BUCKET_BYTES = BUCKET_ENTRIES * (1 + 8 + SLICE_HEADER) + 8  # 272
LOAD_FACTOR = 6.5  # the map doubles its buckets once the average passes 6.5 entries per bucket
PAGE = 8192  # Go's runtime page; allocations above 32 KiB round up to it
# Go's malloc size classes up to 32 KiB (runtime/sizeclasses.go, unchanged since Go 1.16).
SIZE_CLASSES = (
    *(8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256),
    *(288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280),
    *(1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528),
    *(6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432),
    *(19072, 20480, 21760, 24576, 27264, 28672, 32768),
)


def go_alloc_size(size: int) -> int:
    """Bytes Go's allocator really hands out for a request of ``size`` bytes."""
    for size_class in SIZE_CLASSES:
        if size <= size_class:
            return size_class
    return -(-size // PAGE) * PAGE


def estimate_go_map_bytes_per_key(slots: int, keys: int | None = None) -> float:
    """Heap bytes per key of a ``map[uint64][]uint64`` with ``slots`` counts per key.

    Without ``keys``: a full map, 272-byte buckets at the load factor of 6.5
    (272 / 6.5 = 41.8 bytes), plus the slice's backing array rounded up to a
    size class (3 slots: 24 bytes), so 65.8 bytes per key for 3 slots. That is
    the best case, just before the map doubles; just after, it is twice that
    for the buckets.

    With ``keys``: the bucket array a map grown one insert at a time has after
    ``keys`` inserts (2**B buckets plus the 2**(B-4) overflow buckets Go
    preallocates for B >= 4), plus the overflow buckets needed beyond those
    (288 bytes each, allocated one by one) when keys land in buckets at random
    (Poisson), spread over those keys. Assumes no doubling is half done: just
    past one, Go still holds the old array until the inserts have moved it.
    """
    backing = go_alloc_size(8 * slots)
    if keys is None:
        return BUCKET_BYTES / LOAD_FACTOR + backing
    b = 0
    while keys > BUCKET_ENTRIES and keys > LOAD_FACTOR * 2**b:
        b += 1
    preallocated = 2 ** (b - 4) if b >= 4 else 0
    array = go_alloc_size((2**b + preallocated) * BUCKET_BYTES)
    mean = keys / 2**b
    p_n, overflows = math.exp(-mean), 0.0  # P(a bucket gets n keys), expected overflow buckets per bucket
    for n in range(1, 10 * BUCKET_ENTRIES):
        p_n *= mean / n
        overflows += p_n * max(0, -(-(n - BUCKET_ENTRIES) // BUCKET_ENTRIES))
    extra = max(0.0, overflows * 2**b - preallocated) * go_alloc_size(BUCKET_BYTES)
    return (array + extra) / keys + backing


def _find_go() -> str | None:
    """Path of a ``go`` command on PATH or Debian's, or None."""
    found = shutil.which("go")
    if found:
        return found
    return DEBIAN_GO if os.access(DEBIAN_GO, os.X_OK) else None


def _install_go() -> bool:
    """Install Debian's golang-go with apt-get when root; True on success."""
    if os.geteuid() != 0:
        print("warning: Go is not installed and we are not root to install golang-go", file=sys.stderr)
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "golang-go"]
    print("Installing Debian's golang-go...", file=sys.stderr)
    try:
        if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=900)
            subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"warning: could not install golang-go: {error}", file=sys.stderr)
        return False
    return True


def measure_go_map(keys: int = 1_000_000, slots: int = 3) -> dict[str, object] | None:
    """Build and run the Go program for one map; its JSON result, or None if Go cannot be had.

    Adds ``install_seconds`` (0.0 when Go was already there) and ``build_seconds``.
    """
    results = measure_go_maps([(keys, slots)])
    return None if results is None else results[(keys, slots)]


def measure_go_maps(cases: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, object]] | None:
    """Build the Go program once and run it for each ``(keys, slots)``, one process per case; None without Go."""
    started = time.perf_counter()
    go = _find_go()
    if go is None and _install_go():
        go = _find_go()
    if go is None:
        print("warning: no Go toolchain; fall back to estimate_go_map_bytes_per_key()", file=sys.stderr)
        return None
    install_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="go-map-memory-") as tmp:
        scratch = Path(tmp)
        env = {
            **os.environ,
            "HOME": str(scratch / "home"),
            "XDG_CONFIG_HOME": str(scratch / "home" / ".config"),
            "GOCACHE": str(scratch / "cache"),
            "GOPATH": str(scratch / "gopath"),
            "GOTOOLCHAIN": "local",  # never download a newer toolchain
            "GOPROXY": "off",  # the program has no dependencies to fetch
            "GOTELEMETRY": "off",
        }
        binary = scratch / "go_map_memory"
        started = time.perf_counter()
        results: dict[tuple[int, int], dict[str, object]] = {}
        try:
            subprocess.run([go, "build", "-o", str(binary), str(GO_SOURCE)], env=env, cwd=tmp, check=True, timeout=600)
            build_seconds = time.perf_counter() - started
            for keys, slots in cases:
                run = subprocess.run(
                    [str(binary), "-keys", str(keys), "-slots", str(slots)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                )
                result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
                result["install_seconds"] = round(install_seconds, 2)
                result["build_seconds"] = round(build_seconds, 2)
                results[(keys, slots)] = result
        except (OSError, subprocess.SubprocessError) as error:
            print(f"warning: building or running the Go program failed: {error}", file=sys.stderr)
            return None
    return results


def main() -> int:
    """Print the measurement (or only the estimates, exiting 1, without Go) as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--slots", type=int, default=3)
    args = parser.parse_args()
    result = measure_go_map(args.keys, args.slots) or {}
    result["estimate_full_map_bytes_per_key"] = round(estimate_go_map_bytes_per_key(args.slots), 2)
    result["estimate_at_keys_bytes_per_key"] = round(estimate_go_map_bytes_per_key(args.slots, args.keys), 2)
    print(json.dumps(result))
    return 0 if "heap_alloc_bytes_per_key" in result else 1


if __name__ == "__main__":
    sys.exit(main())
