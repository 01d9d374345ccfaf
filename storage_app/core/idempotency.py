"""Idempotency keys: a text posted again under the same key is counted once.

Each remembered key holds a fingerprint of the body it came with and the
reply it got (tokens, keywords), the node that counted it and when. The key
travels in the same log record as the increments it belongs to (so a kill -9
can never keep one without the other), is written beside each snapshot (so
log truncation does not forget it), and is sent to peers with the increments.

Memory is bounded by ``max_keys``: past it the oldest key is forgotten before
its time is up, and a retry under it would be counted again (``evicted``
counts those). Keys older than ``ttl`` seconds are forgotten too.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import CounterError
from .files import write_file_atomically

MAX_KEY_BYTES = 255
FINGERPRINT_BYTES = 16
_ENTRY = struct.Struct("<16sIIHQ")  # fingerprint, tokens, keywords, origin node, first counted (ms since epoch)
_FILE_MAGIC = b"CNTRIDK1"
_FILE_HEAD = struct.Struct("<8sI")  # magic, entry count
_FILE_TAIL = struct.Struct("<I")  # CRC-32 of everything before it


class IdempotencyKeyReused(CounterError):
    """The key was first used with a different body."""

    code = "idempotency_key_reused"


class BadIdempotencyKey(CounterError):
    """The Idempotency-Key header is empty or longer than MAX_KEY_BYTES."""

    code = "invalid_idempotency_key"


class IdempotencyFileCorrupt(CounterError):
    code = "idempotency_file_corrupt"


def fingerprint(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=FINGERPRINT_BYTES).digest()


def check_key(header: str) -> bytes:
    """The key as bytes; ``BadIdempotencyKey`` unless it is 1 to MAX_KEY_BYTES visible ASCII characters.

    Visible ASCII (``!`` to ``~``, no spaces) is what survives every HTTP client
    and proxy unchanged: UUIDs, hex, base64 and the like.
    """
    if not 1 <= len(header) <= MAX_KEY_BYTES or not all("!" <= char <= "~" for char in header):
        raise BadIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters without spaces (a UUID "
            f"works); this one has {len(header)} characters. Send one unique key per text, the same on every "
            "retry of it."
        )
    return header.encode("ascii")


@dataclass(frozen=True, slots=True)
class Remembered:
    """What a key was first used for, and the reply that got."""

    key: bytes
    fingerprint: bytes
    tokens: int
    keywords: int
    origin: int
    at_ms: int

    def encode(self) -> bytes:
        return (
            bytes([len(self.key)])
            + self.key
            + _ENTRY.pack(self.fingerprint, self.tokens, self.keywords, self.origin, self.at_ms)
        )

    @classmethod
    def decode_from(cls, data: bytes | memoryview, offset: int) -> tuple[Remembered, int]:
        """One entry at ``offset`` and the offset after it; ``ValueError`` if cut short."""
        length = data[offset]
        key_end = offset + 1 + length
        if not length or key_end + _ENTRY.size > len(data):
            raise ValueError("idempotency entry cut short")
        fingerprint_, tokens, keywords, origin, at_ms = _ENTRY.unpack_from(data, key_end)
        return cls(bytes(data[offset + 1 : key_end]), fingerprint_, tokens, keywords, origin, at_ms), (
            key_end + _ENTRY.size
        )


def decode_entries(data: bytes | memoryview) -> list[Remembered]:
    """Entries packed back to back; ``ValueError`` if the bytes are not that."""
    entries, offset = [], 0
    try:
        while offset < len(data):
            entry, offset = Remembered.decode_from(data, offset)
            entries.append(entry)
    except (IndexError, struct.error) as error:
        raise ValueError(f"idempotency entries cut short: {error}") from None
    return entries


class IdempotencyTable:
    """Remembered keys, oldest first; thread-safe. ``sequence`` numbers them for replication."""

    def __init__(self, ttl_seconds: float, max_keys: int) -> None:
        self.ttl_ms = int(ttl_seconds * 1000)
        self.max_keys = max_keys
        self._entries: OrderedDict[bytes, tuple[Remembered, int]] = OrderedDict()  # key -> (entry, sequence)
        self._lock = threading.Lock()
        self.sequence = 0
        self.evicted = 0  # keys forgotten before their time, to stay within max_keys

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now_ms: int) -> Remembered | None:
        with self._lock:
            found = self._entries.get(key)
        if found is None or found[0].at_ms + self.ttl_ms <= now_ms:
            return None
        return found[0]

    def remember(self, entries: Iterable[Remembered], now_ms: int) -> None:
        """Add entries (a known key keeps its first entry), then forget expired and surplus ones."""
        with self._lock:
            for entry in entries:
                if entry.key in self._entries or entry.at_ms + self.ttl_ms <= now_ms:
                    continue
                self.sequence += 1
                self._entries[entry.key] = (entry, self.sequence)
            self._expire(now_ms)

    def _expire(self, now_ms: int) -> None:
        entries = self._entries
        # Entries are kept in arrival order, which follows their time closely enough:
        # the oldest is found first, and expiry stops at the first one still valid.
        while entries:
            oldest, _sequence = next(iter(entries.values()))
            if oldest.at_ms + self.ttl_ms > now_ms and len(entries) <= self.max_keys:
                break
            if oldest.at_ms + self.ttl_ms > now_ms:
                self.evicted += 1
            entries.popitem(last=False)

    def since(self, sequence: int, limit: int) -> tuple[list[Remembered], int]:
        """Up to ``limit`` entries remembered after ``sequence``, and the sequence reached."""
        with self._lock:
            if sequence >= self.sequence:
                return [], self.sequence
            found: list[Remembered] = []
            reached = sequence
            # Newest last: walk from the end until older than ``sequence``.
            for entry, number in reversed(self._entries.values()):
                if number <= sequence:
                    break
                found.append(entry)
            found.reverse()
            if len(found) > limit:
                found = found[:limit]
                reached = sequence if not found else self._entries[found[-1].key][1]
            else:
                reached = self.sequence
            return found, reached

    def entries(self) -> Iterator[Remembered]:
        with self._lock:
            return iter([entry for entry, _sequence in self._entries.values()])

    # -- the file beside the snapshot -----------------------------------------

    def write_file(self, path: Path) -> int:
        """Write every entry to ``path`` atomically; return the bytes written."""
        entries = list(self.entries())
        body = _FILE_HEAD.pack(_FILE_MAGIC, len(entries)) + b"".join(entry.encode() for entry in entries)
        data = body + _FILE_TAIL.pack(zlib.crc32(body))
        write_file_atomically(path, data)
        return len(data)

    @staticmethod
    def read_file(path: Path) -> list[Remembered]:
        """The entries of ``path`` (none if it does not exist); ``IdempotencyFileCorrupt`` if damaged."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        problem = None
        if len(data) < _FILE_HEAD.size + _FILE_TAIL.size or data[:8] != _FILE_MAGIC:
            problem = "not an idempotency key file"
        elif zlib.crc32(data[: -_FILE_TAIL.size]) != _FILE_TAIL.unpack_from(data, len(data) - _FILE_TAIL.size)[0]:
            problem = "checksum mismatch"
        if problem is None:
            try:
                entries = decode_entries(memoryview(data)[_FILE_HEAD.size : -_FILE_TAIL.size])
            except ValueError as error:
                problem = str(error)
            else:
                if len(entries) == _FILE_HEAD.unpack_from(data)[1]:
                    return entries
                problem = "entry count mismatch"
        raise IdempotencyFileCorrupt(f"{path}: {problem}")
