"""The benchmark scripts still run (tiny sizes; no figure is checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def test_store_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.store_memory", "--keys", "2000", "--runs", "1"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "array bytes/key" in result.stdout


def test_sync_benchmark_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.sync_bench",
            "--keys",
            "2000",
            "--windows",
            "1",
            "--window",
            "1",
            "--samples",
            "3",
            "--full-pushes",
            "1",
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "delta exchange with one peer: bytes" in result.stdout


def test_durability_benchmark_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.durability_bench",
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
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fsync always" in result.stdout and "restart until /readyz" in result.stdout
