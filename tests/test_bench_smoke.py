"""The benchmark scripts still run (tiny sizes; no figure is checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]


def run_benchmark(module: str, *arguments: str, timeout: float = 300) -> str:
    """Run ``python -m bench.<module> ARGUMENTS``; return its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *arguments],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_store_benchmark_runs() -> None:
    assert "array bytes/key" in run_benchmark("store_memory", "--keys", "2000", "--runs", "1")


def test_sync_benchmark_runs() -> None:
    output = run_benchmark(
        "sync_bench", "--keys", "2000", "--windows", "1", "--window", "1", "--samples", "3", "--full-pushes", "1"
    )
    assert "delta exchange with one peer: bytes" in output


def test_durability_benchmark_runs() -> None:
    output = run_benchmark(
        "durability_bench",
        "--rounds",
        "1",
        "--seconds",
        "1",
        "--restart-keys",
        "2000",
        "--log-mb",
        "1",
        "--restarts",
        "1",
    )
    assert "fsync always" in output and "restart until /readyz" in output


@pytest.mark.timeout(900)
def test_performance_suite_runs_end_to_end(tmp_path: Path) -> None:
    report, picture = tmp_path / "BENCHMARKS.md", tmp_path / "scaling.png"
    report.write_text("# Benchmarks\n\nOlder sections stay.\n")
    output = run_benchmark("perf", "--smoke", "--skip-go", "--output", str(report), "--plot", str(picture), timeout=600)
    text = report.read_text()
    for heading in (
        "### 1. Indexing",
        "### 2. Reads",
        "### 3. Memory",
        "### 4. Snapshot and start-up",
        "### 5. Scaling",
        "### 6. Replication traffic per link",
        "### 7. Top keywords",
    ):
        assert heading in text and heading in output
    assert "Older sections stay." in text
    # Counter's and Redis's counts were compared (the run stops if they differ), against the new anchors.
    assert "the same total of all counts" in text and "non-ASCII letters" in text
    assert "all-core ceiling" in text and "one Lua script call" in text and "`HMGET` of the same 100" in text
    assert "`Content-Type: application/x-ndjson`" in text
    assert "merging through the sync port" in text and "indexing new keywords" in text
    # /top's answers were checked against the same texts counted in process (the run stops if they differ).
    assert "`GET /top?n=100&prefix=co`" in text and "checked against the same texts counted in process" in text
    assert picture.read_bytes().startswith(b"\x89PNG")
