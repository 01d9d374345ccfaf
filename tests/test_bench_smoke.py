"""The benchmark scripts still run (tiny sizes; no figure is checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def run_benchmark(module: str, *arguments: str) -> str:
    """Run ``python -m bench.<module> ARGUMENTS``; return its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *arguments],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
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
