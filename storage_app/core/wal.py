"""The write-ahead log: every accepted increment batch is on disk before it counts.

Records are numbered by a log sequence number (LSN) and stored in segment
files ``<lsn of first record, 20 digits>.wal`` in one directory:

    segment header  8 bytes magic b"CNTRWAL1", u64 LSN of its first record
    record          u32 payload length, u32 CRC-32 of the payload, payload:
                    u64 LSN, u32 slot | kind << 16, u32 count, count x u64 keys,
                    count x u64 amounts, then, if the kind has TEXTS set, the
                    keys' texts (a TextColumn of count rows: count x u32
                    lengths, then the texts; only keys new to the store have
                    one), then, if the kind has TAGGED set, a tag (the rest of
                    the payload: idempotency keys, see idempotency.py)

A record's kind says what its increments are (``RecordKind``): added to the
slot, held as pending increments, or the pending increments folded into the
slot. Kind 0 is the only kind older logs hold, so they read unchanged.

Group commit: callers queue their record; whichever caller finds no flush in
progress writes every queued record with one write (and, with
``fsync="always"`` or when a record of the batch asks for it, one fsync), then applies them to the store in LSN order,
then wakes the others. A record is applied only after it was written, so a
failed write applies nothing and every caller of that batch gets the error.
With ``fsync="interval"`` a background thread fsyncs at least once a second.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from .errors import CounterError
from .files import fsync_directory
from .store import KeyArray
from .texts import TextColumn, TextsCorrupt

logger = logging.getLogger(__name__)

SEGMENT_MAGIC = b"CNTRWAL1"
_SEGMENT_HEADER = struct.Struct("<8sQ")
_FRAME = struct.Struct("<II")
_RECORD_HEAD = struct.Struct("<QII")
_SEGMENT_NAME = re.compile(r"^(\d{20})\.wal$")
_LE_U64 = np.dtype("<u8")
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
MAX_RECORD_KEYS = 1 << 24
# Keys and amounts of MAX_RECORD_KEYS keys, and texts besides: a longer length is damage.
MAX_RECORD_BYTES = 1 << 31


class LogCorrupt(CounterError):
    """A damaged record in the middle of the log: the node must not start on it."""

    code = "log_corrupt"


class LogWriteFailed(CounterError):
    """The log could not be written (disk full, I/O error): nothing of the batch was counted."""

    code = "log_write_failed"


class RecordKind(IntEnum):
    """What a record's increments are; see docs/durability.md."""

    INCREMENT = 0  # added to the slot
    PENDING = 1  # held beside the slot until the node has learned its slot from every seed
    FOLD = 2  # every pending increment so far (the record's amounts), now added to the slot


_SLOT_BITS = 0xFFFF
# Set in a record's kind when a tag follows its amounts (and texts).
_TAGGED = 0x80
# Set in a record's kind when its keys' texts follow its amounts.
_TEXTS = 0x40


@dataclass(frozen=True)
class LogRecord:
    lsn: int
    slot: int
    keys: KeyArray
    amounts: KeyArray
    kind: RecordKind = RecordKind.INCREMENT
    tag: bytes = b""
    texts: TextColumn | None = None  # aligned with keys


def encode_record(
    lsn: int,
    slot: int,
    keys: KeyArray,
    amounts: KeyArray,
    kind: RecordKind = RecordKind.INCREMENT,
    tag: bytes = b"",
    texts: TextColumn | None = None,
) -> bytes:
    with_texts = texts is not None and texts.any()
    flags = (_TAGGED if tag else 0) | (_TEXTS if with_texts else 0)
    payload = (
        _RECORD_HEAD.pack(lsn, slot | (kind | flags) << 16, len(keys))
        + keys.astype(_LE_U64, copy=False).tobytes()
        + amounts.astype(_LE_U64, copy=False).tobytes()
        + (texts.encode() if texts is not None and with_texts else b"")
        + tag
    )
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _segment_path(directory: Path, first_lsn: int) -> Path:
    return directory / f"{first_lsn:020d}.wal"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first LSN, path) of every segment, oldest first."""
    if not directory.exists():
        return []
    found = []
    for entry in directory.iterdir():
        match = _SEGMENT_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def read_log(directory: Path, repair_torn_tail: bool = True) -> Iterator[LogRecord]:
    """Every record of every segment in order. A torn last record is cut off (and
    logged); a damaged record with more log after it raises ``LogCorrupt``."""
    segments = list_segments(directory)
    for index, (first_lsn, path) in enumerate(segments):
        data = path.read_bytes()
        is_last = index == len(segments) - 1
        if len(data) < _SEGMENT_HEADER.size or data[:8] != SEGMENT_MAGIC:
            if is_last and len(data) < _SEGMENT_HEADER.size:
                _cut(path, 0, "segment header", repair_torn_tail)
                return
            raise LogCorrupt(f"{path}: not a Counter log segment (offset 0)")
        offset = _SEGMENT_HEADER.size
        # LSNs strictly increase; a batch whose write failed leaves a gap.
        previous_lsn = first_lsn - 1
        while offset < len(data):
            problem = _check_frame(data, offset)
            if problem is not None:
                length = _FRAME.unpack_from(data, offset)[0] if offset + _FRAME.size <= len(data) else 0
                record_end = offset + _FRAME.size + length
                if is_last and (record_end >= len(data) or not any(data[record_end:])):
                    _cut(path, offset, problem, repair_torn_tail)
                    return
                raise LogCorrupt(f"{path}: {problem} at offset {offset}; the log after it cannot be trusted")
            length = _FRAME.unpack_from(data, offset)[0]
            payload = memoryview(data)[offset + _FRAME.size : offset + _FRAME.size + length]
            lsn, slot_and_kind, count = _RECORD_HEAD.unpack_from(payload)
            tagged = bool(slot_and_kind >> 16 & _TAGGED)
            with_texts = bool(slot_and_kind >> 16 & _TEXTS)
            body_end = _RECORD_HEAD.size + 16 * count
            if (
                lsn <= previous_lsn
                or len(payload) < body_end
                or (len(payload) != body_end and not (tagged or with_texts))
            ):
                raise LogCorrupt(f"{path}: record at offset {offset} is out of sequence (LSN {lsn})")
            try:
                kind = RecordKind(slot_and_kind >> 16 & ~(_TAGGED | _TEXTS))
            except ValueError:
                raise LogCorrupt(
                    f"{path}: record at offset {offset} has an unknown kind {slot_and_kind >> 16}"
                ) from None
            keys = np.frombuffer(payload, dtype=_LE_U64, count=count, offset=_RECORD_HEAD.size).astype(np.uint64)
            amounts = np.frombuffer(payload, dtype=_LE_U64, count=count, offset=_RECORD_HEAD.size + 8 * count)
            texts = None
            if with_texts:
                try:
                    texts, body_end = TextColumn.decode(payload, body_end, count)
                except TextsCorrupt as error:
                    raise LogCorrupt(f"{path}: record at offset {offset}: {error}") from None
            if body_end != len(payload) and not tagged:
                raise LogCorrupt(f"{path}: record at offset {offset} has bytes after its texts")
            tag = bytes(payload[body_end:])
            yield LogRecord(lsn, slot_and_kind & _SLOT_BITS, keys, amounts.astype(np.uint64), kind, tag, texts)
            previous_lsn = lsn
            offset += _FRAME.size + length


def _check_frame(data: bytes, offset: int) -> str | None:
    if offset + _FRAME.size > len(data):
        return "truncated record header"
    length, crc = _FRAME.unpack_from(data, offset)
    if length < _RECORD_HEAD.size or length > MAX_RECORD_BYTES:
        return f"impossible record length {length}"
    if offset + _FRAME.size + length > len(data):
        return "truncated record"
    if zlib.crc32(memoryview(data)[offset + _FRAME.size : offset + _FRAME.size + length]) != crc:
        return "record checksum mismatch"
    return None


def _cut(path: Path, offset: int, problem: str, repair: bool) -> None:
    logger.warning("%s: %s at offset %d: a crash cut the last record short; cutting it off", path, problem, offset)
    if repair:
        with open(path, "r+b") as handle:
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())


class DurationHistogram:
    """Counts of durations by upper bound (cumulative, like Prometheus buckets), their sum and count."""

    BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(self) -> None:
        self._counts = [0] * (len(self.BOUNDS) + 1)  # the last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = next((i for i, bound in enumerate(self.BOUNDS) if seconds <= bound), len(self.BOUNDS))
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]:
        """``([(bound, count at or below it), ..., (inf, count)], sum, count)``."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, count in zip((*self.BOUNDS, float("inf")), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, total, running


class WriteAheadLog:
    """Appends records with group commit; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        next_lsn: int,
        fsync: str = "interval",
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        if fsync not in ("always", "interval"):
            raise ValueError(f"fsync must be always or interval, not {fsync!r}")
        self.directory = directory
        self.fsync_mode = fsync
        self.segment_bytes = segment_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._queue: list[tuple[LogRecord, bool]] = []  # (record, fsync before it counts)
        self._next_lsn = next_lsn
        self._finished_lsn = next_lsn - 1  # every record up to here is written and applied (or failed)
        self._failed: dict[int, BaseException] = {}
        self._flushing = False
        self._closed = False
        self._broken: BaseException | None = None  # set when the store may no longer match the log
        # Unbuffered: a failed write must leave nothing behind to be written later.
        self._fd = self._open_segment(next_lsn)
        self._unsynced = False
        self.fsync_times = DurationHistogram()  # for /metrics
        self._last_sync = time.monotonic()
        # Bytes of records written since the log was opened: what a checkpoint by log size watches.
        self.bytes_appended = 0
        self._syncer: threading.Thread | None = None

    def _open_segment(self, first_lsn: int) -> int:
        segments = list_segments(self.directory)
        if segments and _SEGMENT_HEADER.size <= segments[-1][1].stat().st_size < self.segment_bytes:
            # Keep appending to the newest segment (its records end just before first_lsn).
            return os.open(segments[-1][1], os.O_WRONLY | os.O_APPEND)
        if segments and segments[-1][1].stat().st_size < _SEGMENT_HEADER.size:
            # A segment whose header a crash cut short holds no record: start it again.
            first_lsn = segments[-1][0]
            segments[-1][1].unlink()
        return self._new_segment(first_lsn)

    def _new_segment(self, first_lsn: int) -> int:
        path = _segment_path(self.directory, first_lsn)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _write_all(fd, _SEGMENT_HEADER.pack(SEGMENT_MAGIC, first_lsn))
            os.fsync(fd)
            fsync_directory(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return fd

    def append(
        self,
        slot: int,
        keys: KeyArray,
        amounts: KeyArray,
        apply: Callable[[LogRecord], None],
        kind: RecordKind = RecordKind.INCREMENT,
        sync: bool = False,
        tag: bytes = b"",
        texts: TextColumn | None = None,
    ) -> int:
        """Log one increment batch as a record of ``kind``, then ``apply(record)`` it; return its LSN.

        Returns only once the record is written (fsynced too with fsync=always or
        ``sync``) and applied. Raises ``LogWriteFailed`` if it could not be
        written: then it was not applied either.
        """
        with self._lock:
            if self._closed or self._broken is not None:
                raise LogWriteFailed(f"the log is {'closed' if self._closed else 'broken'}; nothing was counted")
            lsn = self._next_lsn
            self._next_lsn += 1
            self._queue.append((LogRecord(lsn, slot, keys, amounts, kind, tag, texts), sync))
            while self._finished_lsn < lsn:
                if self._flushing:
                    self._done.wait()
                    continue
                batch, self._queue = self._queue, []
                if not batch:
                    # Cannot happen (a leader that took our record holds _flushing until it is
                    # finished), but never acknowledge a record nobody wrote.
                    self._failed[lsn] = RuntimeError("the record left the queue unwritten")
                    break
                self._flushing = True
                self._lock.release()
                error: BaseException | None = None
                try:
                    error = self._write_and_apply(batch, apply)
                except Exception as unexpected:  # noqa: BLE001 - apply failed: the store and the log disagree now
                    error = unexpected
                    self._broken = unexpected
                    logger.critical("applying logged increments failed; the log takes no more writes: %r", unexpected)
                finally:
                    self._lock.acquire()
                    self._flushing = False
                    if error is not None:
                        for record, _sync in batch:
                            self._failed[record.lsn] = error
                    self._finished_lsn = max(self._finished_lsn, batch[-1][0].lsn)
                    self._done.notify_all()
            error = self._failed.pop(lsn, None)
        if error is not None:
            raise LogWriteFailed(f"could not write the log ({error}); nothing of this request was counted") from error
        return lsn

    def _write_and_apply(
        self, batch: list[tuple[LogRecord, bool]], apply: Callable[[LogRecord], None]
    ) -> OSError | None:
        data = b"".join(
            encode_record(record.lsn, record.slot, record.keys, record.amounts, record.kind, record.tag, record.texts)
            for record, _ in batch
        )
        position = os.fstat(self._fd).st_size
        try:
            _write_all(self._fd, data)
            self.bytes_appended += len(data)
            must_sync = self.fsync_mode == "always" or any(sync for _, sync in batch)
            if must_sync or time.monotonic() - self._last_sync >= 1.0:
                # In interval mode the writer itself syncs under steady load (the syncer thread when idle).
                self._fsync()
                self._last_sync = time.monotonic()
            else:
                self._unsynced = True
                self._ensure_syncer()
        except OSError as error:
            logger.error("write-ahead log write failed: %s", error)
            try:
                os.ftruncate(self._fd, position)  # no partial record may stay behind
            except OSError as truncate_error:
                logger.critical("cannot cut a failed write off the log: %s", truncate_error)
                self._broken = truncate_error
            return error
        for record, _sync in batch:
            apply(record)
        if position + len(data) >= self.segment_bytes:
            self._roll(batch[-1][0].lsn + 1)
        return None

    def _roll(self, first_lsn: int) -> None:
        """Continue in a new segment; if it cannot be made, keep writing to the current one."""
        try:
            new_fd = self._new_segment(first_lsn)
        except OSError as error:
            logger.warning("cannot start a new log segment (%s); the current one grows meanwhile", error)
            return
        old_fd, self._fd = self._fd, new_fd
        try:
            os.fsync(old_fd)
        finally:
            os.close(old_fd)

    def _ensure_syncer(self) -> None:
        if self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_every_second, name="wal-fsync", daemon=True)
            self._syncer.start()

    def _sync_every_second(self) -> None:
        # Twice a second, so that nothing written stays unsynced for more than a second.
        while not self._closed:
            time.sleep(0.5)
            self.sync()

    def sync(self) -> None:
        """fsync what was written, unless a writer is busy (it syncs itself once a second)."""
        with self._lock:
            if self._closed or not self._unsynced or self._flushing:
                return
            self._unsynced = False
            try:
                self._fsync()
                self._last_sync = time.monotonic()
            except OSError as error:
                logger.error("write-ahead log fsync failed: %s", error)

    def _fsync(self) -> None:
        started = time.perf_counter()
        os.fsync(self._fd)
        self.fsync_times.observe(time.perf_counter() - started)

    def remove_segments_before(self, lsn: int) -> int:
        """Delete segments whose records all have LSNs below ``lsn``; return how many."""
        segments = list_segments(self.directory)
        removed = 0
        for (_first, path), (next_first, _next_path) in itertools.pairwise(segments):
            if next_first <= lsn:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            fsync_directory(self.directory)
        return removed

    def close(self) -> None:
        """Wait for a write in progress, fsync, and refuse appends from now on."""
        with self._lock:
            while self._flushing:
                self._done.wait()
            if self._closed:
                return
            self._closed = True
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
