"""Many small texts: NDJSON batches against Redis pipelining the same texts, and one text per request for both.

    .venv/bin/python -m bench.batch_bench --texts 20000 --rounds 3

The texts are the first 1 KB pieces of the benchmark corpus (cut at
whitespace). Four client processes, each on one keep-alive connection, in
four ways that take turns within each round: Counter with 100 texts per
`POST /keywords` (`Content-Type: application/x-ndjson`); Redis with the
texts tokenized by the client (the node's own tokenizer) and one pipelined
`HINCRBY` per distinct word of 100 texts; and both with one text per round
trip. Every way must count the same tokens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.corpus import build_corpus, iter_chunks
from bench.perf import NODE_ENV, PROJECT_DIR, REDIS_HASH, _post_chunks, _redis_chunks, parallel_load, redis_server
from storage_app.core.keywords import Keywords
from tests.cluster.nodes import Node

BATCH = 100


def _post_batches(port: int, texts: list[bytes], barrier: Any, results: Any) -> None:
    """Client process: BATCH texts per NDJSON POST on one keep-alive connection; report the tokens counted."""
    bodies = [
        "".join(json.dumps(text.decode()) + "\n" for text in texts[start : start + BATCH]).encode()
        for start in range(0, len(texts), BATCH)
    ]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.connect()
    barrier.wait()
    tokens = 0
    for body in bodies:
        connection.request("POST", "/keywords", body=body, headers={"Content-Type": "application/x-ndjson"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"POST /keywords answered {response.status}: {answer[:300]!r}")
        tokens += sum(json.loads(line)["tokens"] for line in answer.splitlines())
    results.put(tokens)


def _redis_pipelined(port: int, texts: list[bytes], barrier: Any, results: Any) -> None:
    """Client process: tokenize here; one pipeline of HINCRBY per distinct word for every BATCH texts."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    client.ping()
    keywords = Keywords("words")
    barrier.wait()
    tokens = 0
    for start in range(0, len(texts), BATCH):
        merged: Counter[bytes] = Counter()
        for text in texts[start : start + BATCH]:
            count, occurrences = keywords.count_keywords(text)
            tokens += count
            merged.update(occurrences)
        pipeline = client.pipeline(transaction=False)
        for word, times in merged.items():
            pipeline.hincrby(REDIS_HASH, word, times)
        pipeline.execute()
    results.put(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus-dir", type=Path, default=PROJECT_DIR / ".bench" / "corpus")
    options = parser.parse_args()
    corpus = build_corpus(options.corpus_dir).read_bytes()
    texts = []
    for text in iter_chunks(corpus, 1024):
        texts.append(text)
        if len(texts) == options.texts:
            break
    ways: dict[str, list[float]] = {
        "Counter, NDJSON batches of 100": [],
        "Redis, pipelined HINCRBY per 100 texts": [],
        "Counter, one text per request": [],
        "Redis, one pipeline per text": [],
    }
    with tempfile.TemporaryDirectory() as workdir:
        node = Node(Path(workdir) / "node", 0, dict(NODE_ENV)).start()
        try:
            with redis_server(Path(workdir) / "redis") as redis_port:
                for round_number in range(options.rounds):
                    measured = [
                        parallel_load(_post_batches, node.public_port, texts),
                        parallel_load(_redis_pipelined, redis_port, texts),
                        parallel_load(_post_chunks, node.public_port, texts),
                        parallel_load(_redis_chunks, redis_port, texts),
                    ]
                    if len({tokens for tokens, _ in measured}) != 1:
                        raise RuntimeError(f"the ways counted different tokens: {[t for t, _ in measured]}")
                    for (_, seconds), figures in zip(measured, ways.values(), strict=True):
                        figures.append(len(texts) / seconds)
                    print(
                        f"round {round_number + 1}: "
                        + ", ".join(f"{name} {figures[-1]:,.0f} texts/s" for name, figures in ways.items()),
                        flush=True,
                    )
        finally:
            node.stop()
    names = list(ways)
    print(f"{len(texts):,} texts of about 1 KB, {measured[0][0]:,} tokens per way, 4 client processes")
    for name in names:
        figures = ways[name]
        print(f"{name}: median {statistics.median(figures):,.0f} texts/s ({min(figures):,.0f}..{max(figures):,.0f})")
    for ours, theirs in ((0, 1), (2, 3)):
        per_round = [a / b for a, b in zip(ways[names[ours]], ways[names[theirs]], strict=True)]
        print(
            f"{names[ours]} / {names[theirs]}: median {statistics.median(per_round):.2f} "
            f"(per round: {', '.join(f'{ratio:.2f}' for ratio in per_round)})"
        )


if __name__ == "__main__":
    main()
