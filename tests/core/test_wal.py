from __future__ import annotations

import errno
import threading
from pathlib import Path

import numpy as np
import pytest

from storage_app.core.wal import LogCorrupt, LogWriteFailed, WriteAheadLog, list_segments, read_log


def arrays(*keys: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array(keys, dtype=np.uint64), np.ones(len(keys), dtype=np.uint64)


def test_records_come_back_in_order_after_group_commit(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, next_lsn=1, fsync="always")
    applied: list[int] = []

    def writer(base: int) -> None:
        for n in range(50):
            log.append(0, *arrays(base + n), apply=lambda lsn, *_: applied.append(lsn))

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
    log.append(0, *arrays(1), apply=lambda lsn, *_: applied.append(lsn))
    handle = log._handle
    real_write = handle.write

    def disk_full(data: bytes) -> int:
        real_write(data[: len(data) // 2])  # a partial write, then the error
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(handle, "write", disk_full)
    with pytest.raises(LogWriteFailed, match="No space left"):
        log.append(0, *arrays(2), apply=lambda lsn, *_: applied.append(lsn))
    monkeypatch.setattr(handle, "write", real_write)
    log.append(0, *arrays(3), apply=lambda lsn, *_: applied.append(lsn))
    log.close()
    assert applied == [1, 3]
    assert [int(record.keys[0]) for record in read_log(tmp_path)] == [1, 3]
