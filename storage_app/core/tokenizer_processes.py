"""Tokenizing large texts in helper processes, so a node uses more than one core.

The node's store lives in one process, and Python runs one thread at a time
in a process, so tokenizing in the request threads would leave every other core
idle. ``TokenizerProcesses`` keeps a few child processes
(``python -m storage_app.core.tokenizer_child TOKENIZER``), each counting one
text at a time; a request thread hands a text to an idle child over a pipe and
waits for its keys and counts without holding the interpreter lock.

Tokenizing is a pure function, so a child that dies costs nothing: the request
counts in its own thread instead and a new child takes the dead one's place.

Wire format, both directions little-endian:

* request: ``u64 length`` then the text's bytes;
* reply: ``u8 0, u64 tokens, u64 n``, then n ``u64`` keys, n ``u64`` counts and
  the keys' texts: ``u64 size`` and a ``TextColumn`` of n rows in ``size`` bytes;
  or ``u8 1, u64 start, u64 end, u64 length`` and a UTF-8 reason, for a text
  that is not UTF-8 (the ``UnicodeDecodeError`` the request thread then raises).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np

from storage_app.core.keywords import TOKENIZERS, Keywords
from storage_app.core.store import KeyArray
from storage_app.core.texts import TextColumn, TextsCorrupt

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("<Q")
_PROJECT_DIR = Path(__file__).resolve().parents[2]


class Counted(NamedTuple):
    """A tokenized text: its token count, its distinct keys, their counts and their texts."""

    tokens: int
    keys: KeyArray
    counts: KeyArray
    texts: TextColumn


def count_as_arrays(keywords: Keywords, data: bytes) -> Counted:
    """Tokenize UTF-8 ``data`` into arrays (the keys distinct). ``UnicodeDecodeError`` if not UTF-8."""
    tokens, per_key, texts = keywords.count_with_texts(data)
    keys = np.fromiter(per_key.keys(), dtype=np.uint64, count=len(per_key))
    counts = np.fromiter(per_key.values(), dtype=np.uint64, count=len(per_key))
    return Counted(tokens, keys, counts, TextColumn.from_texts(texts))


class ChildGone(Exception):
    """A tokenizer child stopped answering (it died, or its pipe broke)."""


class _Child:
    """One tokenizer child process and its two pipes."""

    def __init__(self, tokenizer: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "storage_app.core.tokenizer_child", tokenizer],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_PROJECT_DIR,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._requests: IO[bytes] = self.process.stdin
        self._replies: IO[bytes] = self.process.stdout

    def count(self, data: bytes) -> Counted:
        try:
            self._requests.write(_LENGTH.pack(len(data)))
            self._requests.write(data)
            self._requests.flush()
            status = self._read_exactly(1)
            if status == b"\x01":
                start, end, length = struct.unpack("<QQQ", self._read_exactly(24))
                reason = self._read_exactly(length).decode("utf-8")
                raise UnicodeDecodeError("utf-8", data, start, end, reason)
            tokens, distinct = struct.unpack("<QQ", self._read_exactly(16))
            keys = np.frombuffer(self._read_exactly(8 * distinct), dtype="<u8").astype(np.uint64, copy=False)
            counts = np.frombuffer(self._read_exactly(8 * distinct), dtype="<u8").astype(np.uint64, copy=False)
            (size,) = _LENGTH.unpack(self._read_exactly(_LENGTH.size))
            texts, _end = TextColumn.decode(self._read_exactly(size), 0, distinct)
        except (OSError, ValueError, TextsCorrupt) as error:
            raise ChildGone(str(error)) from error
        return Counted(tokens, keys, counts, texts)

    def _read_exactly(self, size: int) -> bytes:
        data = self._replies.read(size)
        if len(data) != size:
            raise ChildGone(f"tokenizer process {self.process.pid} exited (status {self.process.poll()})")
        return data

    def stop(self) -> None:
        """Close the request pipe (the child exits on end of input) and reap it."""
        for stream in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class TokenizerProcesses:
    """``processes`` tokenizer children shared by the request threads of one node.

    ``count`` blocks while every child is busy: more threads than children
    would only queue texts in pipes.
    """

    def __init__(self, tokenizer: str, processes: int) -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}")
        if processes < 1:
            raise ValueError("at least one tokenizer process is needed")
        self.tokenizer = tokenizer
        self._keywords = Keywords(tokenizer)
        self._idle: queue.Queue[_Child | None] = queue.Queue()
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(processes):
            child = _Child(tokenizer)
            self._children.append(child)
            self._idle.put(child)

    @property
    def pids(self) -> list[int]:
        """Process ids of the current children."""
        with self._lock:
            return [child.process.pid for child in self._children]

    def count(self, data: bytes) -> Counted:
        """``count_as_arrays`` in a child; in this thread if the child died (and a new child is started)."""
        child = self._idle.get()
        if child is None:  # closed: let the next waiter see it too
            self._idle.put(None)
            return count_as_arrays(self._keywords, data)
        try:
            return child.count(data)
        except ChildGone as error:
            logger.warning("tokenizer process failed (%s); starting a new one", error)
            child = self._replace(child)
            return count_as_arrays(self._keywords, data)
        finally:
            self._idle.put(child)

    def _replace(self, dead: _Child) -> _Child:
        dead.stop()
        with self._lock:
            child = _Child(self.tokenizer)
            self._children[self._children.index(dead)] = child
        return child

    def close(self) -> None:
        """Stop every child once it is idle; later ``count`` calls tokenize in the calling thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            children = list(self._children)
        for _ in children:
            self._idle.get().stop()  # type: ignore[union-attr]
        self._idle.put(None)
