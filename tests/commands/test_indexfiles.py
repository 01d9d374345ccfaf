"""indexfiles against a real node: exact counts, binaries skipped, and a killed run started again counts once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.cluster.nodes import PROJECT_DIR, Node, manage, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("indexfiles")]


def write_corpus(root: Path, files: int, words_per_file: int) -> Counter[str]:
    """Text files in nested directories, a binary file and a Latin-1 file; the expected counts."""
    expected: Counter[str] = Counter()
    for number in range(files):
        directory = root / f"part{number % 3}" / "deeper"
        directory.mkdir(parents=True, exist_ok=True)
        words = [f"w{(number * 7 + index) % 50}" for index in range(words_per_file)]
        (directory / f"file{number}.txt").write_text(" ".join(words) + "\n")
        expected.update(words)
    (root / "same-content-twice.txt").write_text("twice\n")
    (root / "part0" / "same-content-twice.txt").write_text("twice\n")  # two files, two texts
    expected.update(["twice", "twice"])
    (root / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary w1 w2")
    (root / "latin1.txt").write_bytes("caf\xe9 w1".encode("latin-1"))
    return expected


def counts(node: Node, expected: Counter[str]) -> dict[str, int]:
    return node.counts(sorted(expected))


def test_a_directory_is_counted_exactly_and_a_second_run_counts_nothing(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    node = make_node(0).start()
    expected = write_corpus(tmp_path / "corpus", files=12, words_per_file=300)
    run = manage(
        "indexfiles",
        str(tmp_path / "corpus"),
        "--node",
        node.public_url,
        "--chunk-size",
        "256",
        "--jobs",
        "3",
        env=node.env,
        cwd=node.workdir,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert counts(node, expected) == dict(expected)
    assert "skipped" in run.stderr and "image.bin" in run.stderr and "latin1.txt" in run.stderr
    assert "indexed 14 files (2 skipped)" in run.stdout and "0 already counted" in run.stdout
    # The same run again: every chunk is replayed, nothing counted twice.
    again = manage(
        "indexfiles",
        str(tmp_path / "corpus"),
        "--node",
        node.public_url,
        "--chunk-size",
        "256",
        env=node.env,
        cwd=node.workdir,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert counts(node, expected) == dict(expected)
    chunks = int(again.stdout.split(" chunks")[0].rsplit(" ", 1)[1])
    assert f"({chunks} already counted)" in again.stdout
    # Standard input is a text too.
    piped = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), "indexfiles", "-", "--node", node.public_url],
        input=b"from stdin w1",
        capture_output=True,
        timeout=60,
        cwd=node.workdir,
        env={**os.environ, **node.env},
    )
    assert piped.returncode == 0, piped.stderr
    assert node.counts(["stdin", "w1"]) == {"stdin": 1, "w1": expected["w1"] + 1}


def test_a_run_killed_halfway_and_started_again_gives_the_exact_counts(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    node = make_node(0).start()
    expected = write_corpus(tmp_path / "corpus", files=80, words_per_file=2000)
    command = [
        sys.executable,
        str(PROJECT_DIR / "manage.py"),
        "indexfiles",
        str(tmp_path / "corpus"),
        "--node",
        node.public_url,
        "--chunk-size",
        "4096",
        "--jobs",
        "2",
    ]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("COUNTER_")}
    environment.update(node.env)
    first = subprocess.Popen(command, cwd=node.workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        total = sum(expected.values())
        wait_until(lambda: texts_counted(node) > 0, 60, "the first run to count some chunks")
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    partial = sum(counts(node, expected).values())
    assert 0 < partial < total, "the kill landed halfway"
    second = subprocess.run(command, cwd=node.workdir, env=environment, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert counts(node, expected) == dict(expected)
    assert "already counted)" in second.stdout and "(0 already counted)" not in second.stdout


def texts_counted(node: Node) -> int:
    metrics = requests.get(node.public_url + "/metrics", timeout=5).text
    line = next(line for line in metrics.splitlines() if line.startswith("counter_texts_indexed_total "))
    return int(float(line.split()[1]))
