"""counter-app's data file (``data/base<NODE_ID>``): read it for import, write it for tests.

The file is a bare sequence of records ``u64 key, u64 n, n x u64 totals``, all
little-endian, in no particular order, with no header and no checksum; an empty
file is an empty state.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import numpy as np

from .errors import LegacyFileCorrupt
from .store import DEFAULT_MAX_SLOTS, KeyArray, SlotArray, StoreChunk, rows_array

_RECORD_HEAD = struct.Struct("<QQ")


def decode_legacy_file(data: bytes, max_slots: int = DEFAULT_MAX_SLOTS) -> tuple[KeyArray, SlotArray]:
    """Parse a counter-app data file into keys and slot rows (rows padded to one width)."""
    keys: list[int] = []
    rows: list[tuple[int, ...]] = []
    offset = 0
    while offset < len(data):
        if offset + _RECORD_HEAD.size > len(data):
            raise LegacyFileCorrupt(f"truncated record at offset {offset}")
        key, count = _RECORD_HEAD.unpack_from(data, offset)
        if count > max_slots:
            raise LegacyFileCorrupt(f"record at offset {offset} has {count} slots (limit {max_slots})")
        end = offset + _RECORD_HEAD.size + 8 * count
        if end > len(data):
            raise LegacyFileCorrupt(f"truncated record at offset {offset}")
        keys.append(key)
        rows.append(struct.unpack_from(f"<{count}Q", data, offset + _RECORD_HEAD.size))
        offset = end
    return np.array(keys, dtype=np.uint64), rows_array(rows)


def encode_legacy_file(chunks: Iterable[StoreChunk]) -> Iterator[bytes]:
    """Yield a store's content in counter-app's data file format."""
    for chunk in chunks:
        width = chunk.slots.shape[1]
        record = struct.Struct(f"<QQ{width}Q")
        yield b"".join(
            record.pack(key, width, *slots)
            for key, slots in zip(chunk.keys.tolist(), chunk.slots.tolist(), strict=True)
        )
