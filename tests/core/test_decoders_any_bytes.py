"""Every decoder of outside bytes, fed anything: a value or the codec's own error, never another exception.

The snapshot file, the write-ahead log, counter-app's data file and counter-app's
sync JSON each get arbitrary bytes, and bytes that start as a valid encoding and
are then damaged (so that the checks past the magic numbers are reached too).
The native sync messages have their own properties in tests/sync_app/test_protocol.py.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage_app.core.errors import BadSyncPayload, LegacyFileCorrupt, SnapshotCorrupt, SnapshotForeign
from storage_app.core.idempotency import IdempotencyFileCorrupt, IdempotencyTable, Remembered, decode_entries
from storage_app.core.legacy import decode_legacy_file, encode_legacy_file
from storage_app.core.snapshot import decode_snapshot, encode_snapshot
from storage_app.core.store import GCounterStore
from storage_app.core.wal import LogCorrupt, encode_record, read_log
from sync_app.core.legacy_protocol import decode_legacy_sync, encode_legacy_sync

ENTRY = Remembered(b"retry-key", bytes(16), 3, 2, 0, 1_700_000_000_000)
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def a_store() -> GCounterStore:
    store = GCounterStore()
    store.merge(np.array([3, 1, 7], dtype=np.uint64), np.array([[1, 0], [0, 2], [5, 5]], dtype=np.uint64))
    return store


VALID_SNAPSHOT = b"".join(encode_snapshot(a_store().export_chunks(), node_id=0))
VALID_LEGACY_FILE = b"".join(encode_legacy_file(a_store().export_chunks()))
VALID_LEGACY_SYNC = encode_legacy_sync(list(a_store().export_chunks()))
VALID_LOG = (
    b"CNTRWAL1"
    + (1).to_bytes(8, "little")
    + b"".join(
        encode_record(
            lsn,
            0,
            np.array([lsn], dtype=np.uint64),
            np.array([1], dtype=np.uint64),
            tag=ENTRY.encode() if lsn == 2 else b"",
        )
        for lsn in (1, 2, 3)
    )
)


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a few bytes changed, cut short, or with bytes appended."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(0, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(data)))
        return bytes(data[:cut] if draw(st.booleans()) else data) + draw(st.binary(max_size=16))

    return build()


def any_input(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=400) | damaged(valid)


@EXAMPLES
@given(any_input(VALID_SNAPSHOT))
def test_snapshot_bytes(data: bytes) -> None:
    with contextlib.suppress(SnapshotCorrupt, SnapshotForeign):
        snapshot = decode_snapshot(data)
        assert snapshot.slots.shape[0] == len(snapshot.keys)


@EXAMPLES
@given(any_input(VALID_LEGACY_FILE))
def test_counter_app_data_file_bytes(data: bytes) -> None:
    with contextlib.suppress(LegacyFileCorrupt):
        keys, slots = decode_legacy_file(data)
        assert slots.shape[0] == len(keys)


@EXAMPLES
@given(
    any_input(VALID_LEGACY_SYNC)
    | st.recursive(st.none() | st.integers() | st.text(), st.lists).map(lambda value: json.dumps(value).encode())
)
def test_counter_app_sync_json(data: bytes) -> None:
    with contextlib.suppress(BadSyncPayload):
        keys, slots = decode_legacy_sync(data)
        assert slots.shape[0] == len(keys)


@EXAMPLES
@given(any_input(VALID_LOG), st.booleans())
def test_log_segment_bytes(data: bytes, has_a_later_segment: bool) -> None:
    """A damaged segment is cut at its torn tail or refused as corrupt, whether or not a segment follows it."""
    with tempfile.TemporaryDirectory() as directory:
        segment = Path(directory) / f"{1:020d}.wal"
        segment.write_bytes(data)
        if has_a_later_segment:
            (Path(directory) / f"{1000:020d}.wal").write_bytes(b"CNTRWAL1" + (1000).to_bytes(8, "little"))
        with contextlib.suppress(LogCorrupt):
            for record in read_log(Path(directory)):
                assert len(record.keys) == len(record.amounts)
                with contextlib.suppress(ValueError):  # a tag's own error (the record's CRC guards it on disk)
                    decode_entries(record.tag)


def valid_keys_file() -> bytes:
    table = IdempotencyTable(ttl_seconds=1e12, max_keys=10)
    table.remember([ENTRY, Remembered(b"other", bytes(range(16)), 1, 1, 2, 1_700_000_000_001)], now_ms=0)
    with tempfile.TemporaryDirectory() as directory:
        table.write_file(Path(directory) / "keys")
        return (Path(directory) / "keys").read_bytes()


@EXAMPLES
@given(any_input(valid_keys_file()))
def test_idempotency_key_file_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "keys"
        path.write_bytes(data)
        with contextlib.suppress(IdempotencyFileCorrupt):
            for entry in IdempotencyTable.read_file(path):
                assert 0 < len(entry.key) <= 255 and len(entry.fingerprint) == 16


@EXAMPLES
@given(st.binary(max_size=400) | damaged(ENTRY.encode() * 2))
def test_idempotency_entries_bytes(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        for entry in decode_entries(data):
            assert entry.encode() in data


def test_the_valid_inputs_decode() -> None:
    """The seeds the damage starts from are real encodings (else the damaged cases would test little)."""
    assert decode_snapshot(VALID_SNAPSHOT).keys.tolist() == [1, 3, 7]
    assert sorted(decode_legacy_file(VALID_LEGACY_FILE)[0].tolist()) == [1, 3, 7]
    assert sorted(decode_legacy_sync(VALID_LEGACY_SYNC)[0].tolist()) == [1, 3, 7]
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / f"{1:020d}.wal").write_bytes(VALID_LOG)
        assert [record.lsn for record in read_log(Path(directory))] == [1, 2, 3]
        assert [decode_entries(record.tag) for record in read_log(Path(directory))] == [[], [ENTRY], []]
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "keys").write_bytes(valid_keys_file())
        assert [entry.key for entry in IdempotencyTable.read_file(Path(directory) / "keys")] == [b"retry-key", b"other"]
