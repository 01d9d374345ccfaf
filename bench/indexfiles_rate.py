"""`manage.py indexfiles` on the benchmark corpus: its rate, its re-run, and raw posting beside it.

    .venv/bin/python -m bench.indexfiles_rate --runs 3

Each run starts a fresh node with a real deployment's defaults and times, in
this order: `indexfiles` of the corpus file (256 KiB chunks, `--jobs 4`, every
chunk under an idempotency key), the same command again on the same node (a
run started again: every chunk is a replay and counts nothing), and on a
second fresh node the same 256 KiB chunks posted raw by 4 keep-alive client
processes (no keys, no retries, no progress bar): the ceiling the command is
measured against. The node's own `counter_tokens_indexed_total` must equal
the tokens the command reports, and must not move during the re-run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.corpus import build_corpus, iter_chunks
from bench.perf import NODE_ENV, PROJECT_DIR, _post_chunks, parallel_load
from tests.cluster.nodes import Node

CHUNK_BYTES = 256 * 1024
JOBS = 4
SUMMARY = re.compile(r"indexed (\d+) files .*? (\d+) bytes in (\d+) chunks \((\d+) already counted\), (\d+) tokens")


def tokens_indexed(node: Node) -> int:
    """The node's counter_tokens_indexed_total, from /metrics."""
    text = requests.get(node.public_url + "/metrics", timeout=10).text
    match = re.search(r"^counter_tokens_indexed_total (\S+)$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no counter_tokens_indexed_total in /metrics")
    return int(float(match.group(1)))


def index_file(node: Node, path: Path) -> tuple[float, int, int]:
    """Run indexfiles on ``path``; return (seconds, tokens it reports, chunks it found already counted)."""
    started = time.perf_counter()
    command = [sys.executable, str(PROJECT_DIR / "manage.py"), "indexfiles", str(path), "--node", node.public_url]
    result = subprocess.run(
        [*command, "--jobs", str(JOBS), "--chunk-size", str(CHUNK_BYTES)],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"indexfiles failed ({result.returncode}): {result.stderr[-2000:]}")
    match = SUMMARY.search(result.stdout)
    if match is None:
        raise RuntimeError(f"no summary in indexfiles' output: {result.stdout[-2000:]}")
    return seconds, int(match.group(5)), int(match.group(4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus-dir", type=Path, default=PROJECT_DIR / ".bench" / "corpus")
    options = parser.parse_args()
    corpus_path = build_corpus(options.corpus_dir)
    corpus = corpus_path.read_bytes()
    chunks = list(iter_chunks(corpus, CHUNK_BYTES))
    megabytes = len(corpus) / 1e6
    first, again, raw = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for run in range(options.runs):
            node = Node(Path(workdir) / f"run{run}", 0, dict(NODE_ENV)).start()
            try:
                seconds, tokens, _ = index_file(node, corpus_path)
                if tokens_indexed(node) != tokens:
                    raise RuntimeError(f"the node counted {tokens_indexed(node)} tokens, indexfiles reports {tokens}")
                first.append(seconds)
                seconds_again, _, replayed = index_file(node, corpus_path)
                if replayed != len(chunks) or tokens_indexed(node) != tokens:
                    raise RuntimeError(f"the re-run counted something: {replayed} of {len(chunks)} chunks replayed")
                again.append(seconds_again)
            finally:
                node.stop()
            node = Node(Path(workdir) / f"raw{run}", 0, dict(NODE_ENV)).start()
            try:
                raw_tokens, raw_seconds = parallel_load(_post_chunks, node.public_port, chunks)
                if raw_tokens != tokens:
                    raise RuntimeError(f"raw posting counted {raw_tokens} tokens, indexfiles {tokens}")
                raw.append(raw_seconds)
            finally:
                node.stop()
            print(
                f"run {run + 1}: indexfiles {megabytes / seconds:.2f} MB/s, re-run {megabytes / seconds_again:.2f} "
                f"MB/s, raw posting {megabytes / raw_seconds:.2f} MB/s",
                flush=True,
            )
    median_first, median_again, median_raw = (statistics.median(times) for times in (first, again, raw))
    print(
        f"corpus: {megabytes:.1f} MB, {len(chunks)} chunks of at most {CHUNK_BYTES} bytes, {tokens:,} tokens\n"
        f"indexfiles --jobs {JOBS}: median {median_first:.1f} s = {megabytes / median_first:.2f} MB/s, "
        f"{tokens / median_first:,.0f} tokens/s\n"
        f"the same command again (every chunk replayed): median {median_again:.1f} s = "
        f"{megabytes / median_again:.2f} MB/s\n"
        f"raw POST of the same chunks, 4 client processes: median {median_raw:.1f} s = "
        f"{megabytes / median_raw:.2f} MB/s; indexfiles reaches {median_raw / median_first:.2f} of it"
    )


if __name__ == "__main__":
    main()
