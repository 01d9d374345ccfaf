"""indexfiles: post files, directories (recursively) or standard input to a node, each text counted once.

Every file is cut into chunks of at most ``--chunk-size`` bytes that never
split a word (storage_app/core/chunking.py), and each chunk is posted with an
Idempotency-Key made of the file's path, a digest of its content and the
chunk's position: a run that was interrupted and is started again counts
nothing twice, and two files with the same content are two texts. Several
chunks are in flight at once (``--jobs``); a chunk that fails for a reason a
retry can fix (no connection, 5xx, 408, 429) is retried with backoff.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from argparse import ArgumentParser
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from storage_app.core.chunking import Chunk, chunk_key, chunks, content_digest

_RETRYABLE = {408, 429, 500, 502, 503, 504, 507}
_ATTEMPTS = 8


@dataclass
class Source:
    """One text to index: a file, or standard input (``-``)."""

    name: str
    data: bytes


@dataclass
class Totals:
    files: int = 0
    skipped: int = 0
    bytes: int = 0
    chunks: int = 0
    replayed: int = 0
    tokens: int = 0
    keywords: int = 0
    failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChunkFailed(Exception):
    pass


class Command(BaseCommand):
    help = "Post files, directories (recursively) or - (standard input) to a node; each chunk is counted once."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", help="Files, directories, or - for standard input.")
        parser.add_argument("--node", required=True, help="The node's public URL, like http://127.0.0.1:3000.")
        parser.add_argument("--jobs", type=int, default=4, help="Chunks in flight at once (default 4).")
        parser.add_argument(
            "--chunk-size", type=int, default=256 * 1024, help="Largest chunk in bytes (default 262144)."
        )
        parser.add_argument(
            "--token",
            default=os.environ.get("COUNTER_PUBLIC_TOKEN", ""),
            help="Bearer token for a node with COUNTER_PUBLIC_TOKEN (default: that variable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        jobs, chunk_size = options["jobs"], options["chunk_size"]
        if jobs < 1:
            raise CommandError("--jobs must be at least 1")
        if chunk_size < 4:
            raise CommandError("--chunk-size must be at least 4 bytes")
        url = options["node"].rstrip("/") + "/keywords"
        totals = Totals()
        sources = list(self._sources(options["paths"], totals))
        total_bytes = sum(len(source.data) for source in sources)
        started = time.monotonic()
        progress = Progress(total_bytes, self.stderr)
        local = threading.local()

        def post(source: Source, digest: str, chunk: Chunk) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
            headers = {"Idempotency-Key": chunk_key(source.name, digest, chunk), "Content-Type": "text/plain"}
            if options["token"]:
                headers["Authorization"] = f"Bearer {options['token']}"
            reply = _post_with_retries(session, url, chunk.data, headers)
            with totals.lock:
                totals.chunks += 1
                totals.tokens += reply["tokens"]
                totals.keywords += reply["keywords"]
                totals.replayed += reply["replayed"]
            progress.advance(len(chunk.data))

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            in_flight: dict[Future[None], str] = {}
            for source in sources:
                digest = content_digest(source.data)
                for chunk in chunks(source.data, chunk_size):
                    if chunk.splits_a_word:
                        self.stderr.write(f"{source.name}: a word longer than --chunk-size is cut at {chunk.offset}")
                    while len(in_flight) >= jobs * 2:  # a bounded queue: files are read, not all held twice
                        self._collect(wait(in_flight, return_when=FIRST_COMPLETED).done, in_flight, totals)
                    in_flight[pool.submit(post, source, digest, chunk)] = f"{source.name}@{chunk.offset}"
            self._collect(wait(in_flight).done, in_flight, totals)
        progress.close()
        seconds = time.monotonic() - started
        rate = totals.bytes / seconds / 1e6 if seconds > 0 else 0.0
        self.stdout.write(
            f"indexed {totals.files} files ({totals.skipped} skipped), {totals.bytes} bytes in {totals.chunks} chunks "
            f"({totals.replayed} already counted), {totals.tokens} tokens, {totals.keywords} keywords "
            f"(distinct per chunk, summed) in {seconds:.1f} s ({rate:.2f} MB/s)"
        )
        if totals.failed:
            raise CommandError(
                f"{len(totals.failed)} chunks were not counted (first: {totals.failed[0]}); run the same command "
                "again: what was counted is not counted twice"
            )

    def _collect(self, done: set[Future[None]], in_flight: dict[Future[None], str], totals: Totals) -> None:
        for future in done:
            where = in_flight.pop(future)
            error = future.exception()
            if error is not None:
                totals.failed.append(f"{where}: {error}")
                self.stderr.write(f"not counted: {where}: {error}")

    def _sources(self, paths: list[str], totals: Totals) -> Iterator[Source]:
        for given in paths:
            if given == "-":
                data = sys.stdin.buffer.read()
                if self._readable("-", data, totals):
                    yield Source("-", data)
                continue
            path = Path(given)
            if not path.exists():
                raise CommandError(f"{given}: no such file or directory")
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                try:
                    data = file.read_bytes()
                except OSError as error:
                    self.stderr.write(f"skipped {file}: {error}")
                    totals.skipped += 1
                    continue
                if self._readable(str(file), data, totals):
                    yield Source(str(file), data)

    def _readable(self, name: str, data: bytes, totals: Totals) -> bool:
        """Text to index: UTF-8 without NUL bytes; anything else is skipped with a warning."""
        try:
            if b"\0" in data[:8192]:
                raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "a NUL byte: a binary file")
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            self.stderr.write(f"skipped {name}: not UTF-8 text ({error.reason})")
            totals.skipped += 1
            return False
        totals.files += 1
        totals.bytes += len(data)
        return True


def _post_with_retries(session: requests.Session, url: str, data: bytes, headers: dict[str, str]) -> dict[str, int]:
    """The node's reply (with ``replayed`` 0 or 1); ``ChunkFailed`` when retrying cannot help or ran out."""
    delay = 0.25
    for attempt in range(_ATTEMPTS):
        try:
            response = session.post(url, data=data, headers=headers, timeout=60)
        except requests.RequestException as error:
            problem = f"no answer ({error})"
        else:
            if response.status_code == 200:
                body = response.json()
                return {
                    "tokens": int(body["tokens"]),
                    "keywords": int(body["keywords"]),
                    "replayed": int(response.headers.get("Idempotent-Replayed") == "true"),
                }
            problem = f"{response.status_code}: {response.text[:200]}"
            if response.status_code not in _RETRYABLE:
                raise ChunkFailed(problem)
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = max(delay, float(retry_after))
        if attempt + 1 < _ATTEMPTS:
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise ChunkFailed(f"gave up after {_ATTEMPTS} attempts: {problem}")


class Progress:
    """A tqdm bar (bytes, rate, ETA) on a terminal; a plain line every 5 s otherwise."""

    def __init__(self, total_bytes: int, stream: Any) -> None:
        self.total = total_bytes
        self.done = 0
        self.started = time.monotonic()
        self.last_line = self.started
        self.stream = stream
        self.lock = threading.Lock()
        self.bar: tqdm[Any] | None = None
        if sys.stderr.isatty():
            self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc="indexing")

    def advance(self, count: int) -> None:
        with self.lock:
            self.done += count
            if self.bar is not None:
                self.bar.update(count)
                return
            now = time.monotonic()
            if now - self.last_line >= 5.0:
                self.last_line = now
                percent = 100 * self.done / self.total if self.total else 100.0
                rate = self.done / (now - self.started) / 1e6
                self.stream.write(f"indexed {self.done} of {self.total} bytes ({percent:.0f}%), {rate:.2f} MB/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
