"""The snapshot file: a versioned, checksummed binary image of a store.

Layout (all integers little-endian; the full description is docs/snapshot-format.md):

    header   32 bytes  magic b"CNTRSNAP", u16 version (3), u16 header length (32),
                       u32 node id, u64 log position (the lowest chunk LSN),
                       u32 flags (0), u32 CRC-32 of the 28 bytes before it
    chunk    repeated  u32 rows, u32 width, u64 LSN, u64 last key of the chunk's
                       key range, rows x u64 keys (strictly ascending, inside the
                       range), rows x width x u64 slot values, row after row,
                       then (version 3) the keys' texts: rows x u32 lengths (0:
                       not known), then the texts one after the other
    end      20 bytes  u32 0xFFFFFFFF, u32 0, u64 total keys, u32 CRC-32 of every
                       byte of the file before it

The chunks' key ranges are contiguous and cover every key from 0 to 2**64 - 1.
Version 2 (no texts) still loads. A chunk's LSN is the last write-ahead log record whose increments its rows
hold (for every key of its range), so recovery replays, key by key, exactly the
records after it: no increment is lost or counted twice.

The encoder is a generator of byte strings, so a snapshot is streamed to a file
or over HTTP one chunk at a time. ``write_snapshot_file`` replaces the file
atomically: temporary file in the same directory, fsync, rename, fsync of the
directory. A reader checks the whole-file checksum before it believes anything,
so a torn or foreign file is reported, never half-loaded.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .errors import SnapshotCorrupt, SnapshotForeign
from .files import fsync_directory
from .store import DEFAULT_MAX_SLOTS, KeyArray, SlotArray, StoreChunk, stack_rows
from .texts import TextColumn, TextsCorrupt, concat_columns

MAGIC = b"CNTRSNAP"
VERSION = 3
READABLE_VERSIONS = (2, 3)  # version 2 has no texts
_HEADER = struct.Struct("<8sHHIQI")  # everything before the header checksum
_HEADER_SIZE = _HEADER.size + 4
_CHUNK = struct.Struct("<IIQQ")
_END_MARK = 0xFFFFFFFF
_LAST_KEY = (1 << 64) - 1
_END_TOTAL = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_LE_U64 = np.dtype("<u8")


@dataclass(frozen=True)
class Snapshot:
    """A decoded snapshot: ascending keys, one slot row per key, and the log position of each key range."""

    node_id: int
    log_position: int
    keys: KeyArray
    slots: SlotArray
    range_last_keys: KeyArray  # inclusive end of each chunk's key range, ascending, the last is 2**64 - 1
    range_lsns: npt.NDArray[np.uint64]  # the LSN each range's rows include
    texts: TextColumn | None = None  # aligned with keys (None: a version 2 file)

    def lsn_of(self, keys: KeyArray) -> npt.NDArray[np.uint64]:
        """For each key, the last log record its snapshot row already includes."""
        if len(self.range_lsns) == 0:
            return np.zeros(len(keys), dtype=np.uint64)
        index = np.minimum(np.searchsorted(self.range_last_keys, keys, side="left"), len(self.range_lsns) - 1)
        return self.range_lsns[index]


@dataclass(frozen=True)
class WrittenSnapshot:
    """What ``write_snapshot_file`` wrote."""

    path: Path
    keys: int
    size_bytes: int


def encode_snapshot(chunks: Iterable[StoreChunk], node_id: int) -> Iterator[bytes]:
    """Yield the snapshot's bytes piece by piece; ``chunks`` must cover the key space in order.

    The header's log position is that of the first chunk; a reader takes the
    lowest chunk LSN anyway, so the header is informational.
    """
    chunk_iterator = iter(chunks)
    first = next(chunk_iterator, None)
    lsn_hint = first.lsn if first is not None else 0
    header = _HEADER.pack(MAGIC, VERSION, _HEADER_SIZE, node_id, lsn_hint, 0)
    header += _CRC.pack(zlib.crc32(header))
    crc = zlib.crc32(header)
    total = 0
    yield header
    for chunk in itertools.chain([first] if first is not None else [], chunk_iterator):
        rows, width = len(chunk.keys), chunk.slots.shape[1]
        last = _LAST_KEY if chunk.high is None else chunk.high - 1
        for piece in (
            _CHUNK.pack(rows, width, chunk.lsn, last),
            chunk.keys.astype(_LE_U64, copy=False).tobytes(),
            chunk.slots.astype(_LE_U64, copy=False).tobytes(),
            (chunk.texts if chunk.texts is not None else TextColumn.unknown(rows)).encode(),
        ):
            crc = zlib.crc32(piece, crc)
            yield piece
        total += rows
    end = _CRC.pack(_END_MARK) + _CRC.pack(0) + _END_TOTAL.pack(total)
    crc = zlib.crc32(end, crc)
    yield end + _CRC.pack(crc)


def _check_header(header: bytes | memoryview) -> tuple[int, int]:
    """Check a snapshot's first 32 bytes (magic, version, size, flags, checksum); return its node id and version."""
    if len(header) < _HEADER_SIZE or bytes(header[:8]) != MAGIC:
        raise SnapshotForeign("not a Counter snapshot (bad magic number)")
    _magic, version, header_size, node_id, _log_position, flags = _HEADER.unpack_from(header)
    if version not in READABLE_VERSIONS:
        raise SnapshotForeign(
            f"snapshot format version {version}; this build reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    (header_crc,) = _CRC.unpack_from(header, _HEADER.size)
    if header_size != _HEADER_SIZE or header_crc != zlib.crc32(header[: _HEADER.size]):
        raise SnapshotCorrupt("snapshot header is damaged (checksum mismatch)")
    if flags != 0:
        raise SnapshotForeign(f"snapshot uses flags {flags:#x} this build does not know")
    return int(node_id), int(version)


def decode_snapshot(data: bytes, max_slots: int = DEFAULT_MAX_SLOTS) -> Snapshot:
    """Parse a whole snapshot; raise ``SnapshotCorrupt`` or ``SnapshotForeign`` if it is not one."""
    view = memoryview(data)
    node_id, version = _check_header(view)
    if len(view) < _HEADER_SIZE + _CHUNK.size + _END_TOTAL.size + _CRC.size:
        raise SnapshotCorrupt(f"snapshot is truncated ({len(view)} bytes)")
    (file_crc,) = _CRC.unpack_from(view, len(view) - _CRC.size)
    if file_crc != zlib.crc32(view[: len(view) - _CRC.size]):
        raise SnapshotCorrupt("snapshot checksum mismatch: the file is torn or damaged")

    key_parts: list[KeyArray] = []
    slot_parts: list[SlotArray] = []
    text_parts: list[TextColumn] = []
    range_last: list[int] = []
    range_lsn: list[int] = []
    offset = _HEADER_SIZE
    body_end = len(view) - _END_TOTAL.size - _CRC.size
    range_first = 0
    while True:
        if offset + 8 > body_end:
            raise SnapshotCorrupt(f"snapshot has no end marker (offset {offset})")
        (rows,) = _CRC.unpack_from(view, offset)
        if rows == _END_MARK:
            offset += 8
            break
        if offset + _CHUNK.size > body_end:
            raise SnapshotCorrupt(f"chunk header at offset {offset} runs past the end of the file")
        rows, width, lsn, last = _CHUNK.unpack_from(view, offset)
        chunk_offset = offset
        offset += _CHUNK.size
        if width > max_slots:
            raise SnapshotCorrupt(f"chunk at offset {chunk_offset} has {width} slots (limit {max_slots})")
        if range_first > _LAST_KEY or last < range_first:
            raise SnapshotCorrupt(f"chunk at offset {chunk_offset} has a key range out of order")
        size = rows * 8 * (1 + width)
        if offset + size > body_end:
            raise SnapshotCorrupt(f"chunk at offset {chunk_offset} runs past the end of the file")
        keys = np.frombuffer(view, dtype=_LE_U64, count=rows, offset=offset).astype(np.uint64)
        slots = np.frombuffer(view, dtype=_LE_U64, count=rows * width, offset=offset + rows * 8)
        offset += size
        if version >= 3:
            try:
                texts, offset = TextColumn.decode(view, offset, rows, body_end)
            except TextsCorrupt as error:
                raise SnapshotCorrupt(f"chunk at offset {chunk_offset}: {error}") from None
            text_parts.append(texts)
        if rows and (
            int(keys[0]) < range_first or int(keys[-1]) > last or (rows > 1 and not bool((keys[1:] > keys[:-1]).all()))
        ):
            raise SnapshotCorrupt(f"chunk at offset {chunk_offset}: keys out of order or outside its range")
        key_parts.append(keys)
        slot_parts.append(slots.astype(np.uint64).reshape(rows, width))
        range_last.append(last)
        range_lsn.append(lsn)
        range_first = last + 1
    if range_first != _LAST_KEY + 1:
        raise SnapshotCorrupt("snapshot chunks do not cover every key")
    if offset != body_end:
        raise SnapshotCorrupt(f"unexpected bytes after the end marker (offset {offset})")
    (total,) = _END_TOTAL.unpack_from(view, offset)
    keys_all = np.concatenate(key_parts) if key_parts else np.empty(0, dtype=np.uint64)
    if total != len(keys_all):
        raise SnapshotCorrupt(f"snapshot says {total} keys but holds {len(keys_all)}")
    slots_all = stack_rows(slot_parts)
    lsns = np.array(range_lsn, dtype=np.uint64)
    return Snapshot(
        node_id=node_id,
        log_position=int(lsns.min()) if len(lsns) else 0,
        keys=keys_all,
        slots=slots_all,
        range_last_keys=np.array(range_last, dtype=np.uint64),
        range_lsns=lsns,
        texts=concat_columns(text_parts) if version >= 3 else None,
    )


def read_snapshot_file(path: Path, expected_node_id: int, max_slots: int = DEFAULT_MAX_SLOTS) -> Snapshot | None:
    """Load ``path``; ``None`` if it does not exist. Errors name the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        snapshot = decode_snapshot(data, max_slots)
    except (SnapshotCorrupt, SnapshotForeign) as error:
        raise type(error)(f"{path}: {error}") from None
    if snapshot.node_id != expected_node_id:
        raise SnapshotForeign(
            f"{path}: snapshot belongs to node {snapshot.node_id}, not to this node ({expected_node_id})"
        )
    return snapshot


def write_snapshot_file(path: Path, pieces: Iterable[bytes], keep_previous: Path | None = None) -> WrittenSnapshot:
    """Write ``pieces`` to ``path`` atomically and durably; return what was written.

    With ``keep_previous``, the file being replaced stays there under that name
    (a hard link made before the rename), so a good older snapshot always exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    size = 0
    last_piece = b""
    try:
        with open(temporary, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
                size += len(piece)
                last_piece = piece
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous is not None and path.exists():
            linked = keep_previous.with_name(f".{keep_previous.name}.{os.getpid()}.tmp")
            linked.unlink(missing_ok=True)
            os.link(path, linked)
            os.replace(linked, keep_previous)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    # The encoder's last piece is the end record: u32 mark, u32 0, u64 total keys, u32 CRC.
    (keys,) = _END_TOTAL.unpack_from(last_piece, len(last_piece) - _END_TOTAL.size - _CRC.size)
    return WrittenSnapshot(path=path, keys=int(keys), size_bytes=size)


def check_snapshot_file(path: Path, expected_node_id: int) -> bool:
    """Cheap pre-flight check of ``path``: magic, version, node id and whole-file checksum.

    Reads the file in 1 MiB pieces (constant memory, no decoding). Returns False
    if there is no file; raises like ``read_snapshot_file`` if it is bad.
    """
    if not path.exists():
        return False
    with open(path, "rb") as handle:
        header = handle.read(_HEADER_SIZE)
        try:
            node_id, _version = _check_header(header)
        except (SnapshotCorrupt, SnapshotForeign) as error:
            raise type(error)(f"{path}: {error}") from None
        if node_id != expected_node_id:
            raise SnapshotForeign(f"{path}: snapshot belongs to node {node_id}, not to this node ({expected_node_id})")
        crc = zlib.crc32(header)
        tail = b""
        while piece := handle.read(1 << 20):
            # Hold back the last 4 bytes: they are the checksum, not covered by it.
            data = tail + piece
            crc = zlib.crc32(data[:-4], crc)
            tail = data[-4:]
    if len(tail) < 4 or _CRC.unpack(tail)[0] != crc:
        raise SnapshotCorrupt(f"{path}: snapshot checksum mismatch: the file is torn or damaged")
    return True
