from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_app.core.errors import SnapshotCorrupt, SnapshotForeign
from storage_app.core.snapshot import (
    check_snapshot_file,
    decode_snapshot,
    encode_snapshot,
    read_snapshot_file,
    write_snapshot_file,
)
from storage_app.core.store import GCounterStore
from storage_app.core.texts import TextColumn

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


def store_with(rows: dict[int, list[int]]) -> GCounterStore:
    store = GCounterStore()
    if rows:
        width = max(len(slots) for slots in rows.values())
        matrix = np.zeros((len(rows), width), dtype=np.uint64)
        for index, slots in enumerate(rows.values()):
            matrix[index, : len(slots)] = slots
        store.merge(np.array(list(rows), dtype=np.uint64), matrix)
    return store


def snapshot_bytes(store: GCounterStore, node_id: int = 0, chunk_rows: int = 3) -> bytes:
    return b"".join(encode_snapshot(store.export_chunks(chunk_rows=chunk_rows, with_texts=True), node_id))


@given(st.dictionaries(U64, st.lists(U64, min_size=1, max_size=4), max_size=40), st.integers(0, 255))
def test_decode_of_encode_is_the_same_state(rows: dict[int, list[int]], node_id: int) -> None:
    store = store_with(rows)
    decoded = decode_snapshot(snapshot_bytes(store, node_id))
    assert decoded.node_id == node_id
    assert decoded.keys.tolist() == sorted(key for key, slots in rows.items() if any(slots))
    for key, slots in zip(decoded.keys.tolist(), decoded.slots.tolist(), strict=True):
        width = max(len(slots), len(rows[key]))
        assert slots + [0] * (width - len(slots)) == rows[key] + [0] * (width - len(rows[key]))


def test_a_snapshot_takes_36_bytes_per_key_at_three_slots_and_no_texts() -> None:
    store = store_with({key: [1, 2, 3] for key in range(1000)})
    # header, one chunk header (rows, width, LSN, range end), the rows and their text lengths, the end record
    assert len(snapshot_bytes(store, chunk_rows=65536)) == 32 + 24 + 1000 * (32 + 4) + 20


def test_texts_go_through_a_snapshot_and_a_version_2_file_still_loads() -> None:
    store = store_with({key: [key] for key in range(1, 9)})
    store.set_texts(np.array([2, 5, 8], dtype=np.uint64), TextColumn.from_texts([b"two", "f\u00fcnf".encode(), b"8"]))
    decoded = decode_snapshot(snapshot_bytes(store))
    assert decoded.texts is not None
    assert dict(zip(decoded.keys.tolist(), decoded.texts.texts(), strict=True)) == {
        **{key: None for key in range(1, 9)},
        2: b"two",
        5: "f\u00fcnf".encode(),
        8: b"8",
    }
    # Version 2, written by hand: the same layout without the texts after each chunk's rows.
    header = struct.pack("<8sHHIQI", b"CNTRSNAP", 2, 32, 7, 5, 0)
    header += struct.pack("<I", zlib.crc32(header))
    chunk = struct.pack("<IIQQ", 2, 1, 5, (1 << 64) - 1) + struct.pack("<QQQQ", 10, 20, 3, 4)
    end = struct.pack("<IIQ", 0xFFFFFFFF, 0, 2)
    body = header + chunk + end
    old = decode_snapshot(body + struct.pack("<I", zlib.crc32(body)))
    assert (old.node_id, old.keys.tolist(), old.slots.tolist(), old.texts) == (7, [10, 20], [[3], [4]], None)


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_snapshot_or_a_clean_error(data: bytes) -> None:
    with contextlib.suppress(SnapshotCorrupt, SnapshotForeign):
        decode_snapshot(data)


def test_every_truncation_and_every_flipped_byte_is_detected() -> None:
    data = snapshot_bytes(store_with({1: [1], 2: [2, 3], 99: [4, 5, 6]}))
    for length in range(len(data)):
        with pytest.raises((SnapshotCorrupt, SnapshotForeign)):
            decode_snapshot(data[:length])
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x40
        with pytest.raises((SnapshotCorrupt, SnapshotForeign)):
            decode_snapshot(bytes(damaged))


def test_another_format_version_is_foreign() -> None:
    data = bytearray(snapshot_bytes(store_with({1: [1]})))
    data[8] = 4
    with pytest.raises(SnapshotForeign, match="version 4"):
        decode_snapshot(bytes(data))


def test_file_round_trip_and_node_id_check(tmp_path: Path) -> None:
    path = tmp_path / "node-3.snapshot"
    store = store_with({10: [0, 0, 0, 7]})
    written = write_snapshot_file(path, encode_snapshot(store.export_chunks(), node_id=3))
    assert written.keys == 1 and written.size_bytes == path.stat().st_size
    assert check_snapshot_file(path, 3)
    snapshot = read_snapshot_file(path, expected_node_id=3)
    assert snapshot is not None and snapshot.slots.tolist() == [[0, 0, 0, 7]]
    with pytest.raises(SnapshotForeign, match="belongs to node 3"):
        read_snapshot_file(path, expected_node_id=4)
    with pytest.raises(SnapshotForeign, match="belongs to node 3"):
        check_snapshot_file(path, 4)
    assert [entry.name for entry in tmp_path.iterdir()] == ["node-3.snapshot"]  # no temporary left


def test_missing_file_means_no_snapshot(tmp_path: Path) -> None:
    assert read_snapshot_file(tmp_path / "absent", 0) is None
    assert check_snapshot_file(tmp_path / "absent", 0) is False


def test_torn_files_are_refused_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "node-0.snapshot"
    write_snapshot_file(path, encode_snapshot(store_with({1: [1], 2: [2]}).export_chunks(), 0))
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 5)
    with pytest.raises(SnapshotCorrupt, match=str(path)):
        read_snapshot_file(path, 0)
    with pytest.raises(SnapshotCorrupt, match=str(path)):
        check_snapshot_file(path, 0)


def test_a_failed_write_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "node-0.snapshot"
    write_snapshot_file(path, encode_snapshot(store_with({1: [1]}).export_chunks(), 0))
    before = path.read_bytes()

    def failing_pieces():
        yield b"partial"
        raise OSError(28, os.strerror(28))

    with pytest.raises(OSError):
        write_snapshot_file(path, failing_pieces())
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["node-0.snapshot"]
