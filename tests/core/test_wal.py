from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from storage_app.core import wal as wal_module
from storage_app.core.wal import LogCorrupt, LogWriteFailed, RecordKind, WriteAheadLog, list_segments, read_log


def arrays(*keys: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array(keys, dtype=np.uint64), np.ones(len(keys), dtype=np.uint64)


def test_records_come_back_in_order_after_group_commit(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1, fsync="always")
    applied: list[int] = []

    def writer(base: int) -> None:
        for n in range(50):
            log.append(0, *arrays(base + n), apply=lambda record: applied.append(record.lsn))

    threads = [threading.Thread(target=writer, args=(index * 1000,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    records = list(read_log(tmp_path))
    assert [record.lsn for record in records] == list(range(1, 201))
    assert applied == list(range(1, 201)), "applied in log order"
    assert sorted(int(record.keys[0]) for record in records) == sorted(
        b + n for b in range(0, 4000, 1000) for n in range(50)
    )


def test_segments_roll_and_old_ones_can_be_removed(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1, segment_bytes=200)
    for n in range(20):
        log.append(0, *arrays(n), apply=lambda *_: None)
    segments = list_segments(tmp_path)
    assert len(segments) > 3
    removed = log.remove_segments_before(10)
    assert removed > 0
    assert next(record.lsn for record in read_log(tmp_path)) <= 10
    assert [record.lsn for record in read_log(tmp_path)][-1] == 20
    log.close()


def test_a_torn_last_record_is_cut_off_and_appending_continues(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1)
    for n in range(3):
        log.append(0, *arrays(n), apply=lambda *_: None)
    log.close()
    _first, path = list_segments(tmp_path)[-1]
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 5)
    assert [record.lsn for record in read_log(tmp_path)] == [1, 2]
    assert path.stat().st_size < size - 5
    reopened = WriteAheadLog(tmp_path, next_lsn=3)
    reopened.append(0, *arrays(9), apply=lambda *_: None)
    reopened.close()
    assert [record.lsn for record in read_log(tmp_path)] == [1, 2, 3]


def test_a_damaged_record_in_the_middle_stops_with_file_and_offset(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1)
    for n in range(3):
        log.append(0, *arrays(n), apply=lambda *_: None)
    log.close()
    _first, path = list_segments(tmp_path)[-1]
    data = bytearray(path.read_bytes())
    data[16 + 8 + 3] ^= 0xFF  # inside the first record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorrupt, match=rf"{path.name}: record checksum mismatch at offset 16"):
        list(read_log(tmp_path))


def test_a_failed_write_applies_nothing_and_the_log_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1)
    applied: list[int] = []
    log.append(0, *arrays(1), apply=lambda record: applied.append(record.lsn))
    real_write_all = wal_module._write_all

    def disk_full(fd: int, data: bytes) -> None:
        real_write_all(fd, data[: len(data) // 2])  # a partial write, then the error
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wal_module, "_write_all", disk_full)
    with pytest.raises(LogWriteFailed, match="No space left"):
        log.append(0, *arrays(2), apply=lambda record: applied.append(record.lsn))
    monkeypatch.setattr(wal_module, "_write_all", real_write_all)
    log.append(0, *arrays(3), apply=lambda record: applied.append(record.lsn))
    log.close()
    assert applied == [1, 3]
    assert [int(record.keys[0]) for record in read_log(tmp_path)] == [1, 3]


def test_a_failing_apply_fails_its_batch_and_breaks_the_log_instead_of_acknowledging(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1)

    def broken_apply(*_: object) -> None:
        raise RuntimeError("store bug")

    with pytest.raises(LogWriteFailed):
        log.append(0, *arrays(1), apply=broken_apply)
    with pytest.raises(LogWriteFailed, match="broken"):
        log.append(0, *arrays(2), apply=lambda *_: None)


def test_close_waits_for_a_write_in_progress_and_then_refuses(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1)
    entered, release = threading.Event(), threading.Event()

    def slow_apply(*_: object) -> None:
        entered.set()
        release.wait(5)

    writer = threading.Thread(target=lambda: log.append(0, *arrays(1), apply=slow_apply))
    writer.start()
    entered.wait(5)
    closer = threading.Thread(target=log.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close() must wait for the write in progress"
    release.set()
    writer.join(5)
    closer.join(5)
    assert not closer.is_alive()
    with pytest.raises(LogWriteFailed, match="closed"):
        log.append(0, *arrays(2), apply=lambda *_: None)
    assert [record.lsn for record in read_log(tmp_path)] == [1]


def test_interval_mode_fsyncs_at_least_every_second_under_steady_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[float] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(time.monotonic())
        real_fsync(fd)

    log = WriteAheadLog(tmp_path, next_lsn=1, fsync="interval")
    monkeypatch.setattr(os, "fsync", counting_fsync)
    stop = time.monotonic() + 2.5

    def writer() -> None:
        while time.monotonic() < stop:
            log.append(0, *arrays(1), apply=lambda *_: None)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert len(synced) >= 2, synced


def test_a_segment_whose_header_was_cut_off_is_started_again(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1, segment_bytes=100)
    for n in range(3):
        log.append(0, *arrays(n), apply=lambda *_: None)
    log.close()
    _first, newest = list_segments(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:5])  # a crash while writing the new segment's header
    records = list(read_log(tmp_path))
    reopened = WriteAheadLog(tmp_path, next_lsn=records[-1].lsn + 1, segment_bytes=100)
    reopened.append(0, *arrays(7), apply=lambda *_: None)
    reopened.close()
    assert [record.lsn for record in read_log(tmp_path)][-1] == records[-1].lsn + 1


def test_record_kinds_come_back_and_a_sync_record_is_fsynced_before_it_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1, fsync="interval")
    monkeypatch.setattr(log, "_ensure_syncer", lambda: None)  # no background fsync steps in here
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    applied: list[tuple[int, RecordKind]] = []
    log.append(3, *arrays(1), apply=lambda record: applied.append((record.lsn, record.kind)))
    log._last_sync = time.monotonic()  # the writer itself would sync an overdue log anyway
    before = len(synced)
    log.append(3, *arrays(1), apply=lambda record: applied.append((record.lsn, record.kind)), kind=RecordKind.PENDING)
    assert len(synced) == before, "an ordinary record in interval mode waits for the syncer"
    log.append(3, *arrays(1), apply=lambda r: applied.append((r.lsn, r.kind)), kind=RecordKind.FOLD, sync=True)
    assert len(synced) == before + 1, "a sync record is on disk before it is applied"
    log.close()
    assert applied == [(1, RecordKind.INCREMENT), (2, RecordKind.PENDING), (3, RecordKind.FOLD)]
    assert [(record.lsn, record.slot, record.kind) for record in read_log(tmp_path)] == [
        (1, 3, RecordKind.INCREMENT),
        (2, 3, RecordKind.PENDING),
        (3, 3, RecordKind.FOLD),
    ]


def test_a_record_of_an_unknown_kind_is_damage(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1)
    log.append(0, *arrays(1), apply=lambda *_: None)
    log.close()
    _first, segment = list_segments(tmp_path)[0]
    with open(segment, "ab") as handle:
        handle.write(wal_module.encode_record(2, 7 << 16, *arrays(2)))  # well-formed, but of kind 7
    with pytest.raises(LogCorrupt, match="unknown kind 7"):
        list(read_log(tmp_path))
