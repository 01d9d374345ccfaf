"""Recovery through the service layer: snapshot plus log replay is exact, damage is detected."""

from __future__ import annotations

import errno
import threading
from collections import Counter
from typing import Any

import pytest

from storage_app import services
from storage_app.core import wal as wal_module
from storage_app.core.wal import LogCorrupt, list_segments
from tests.conftest import PortClient


def crash_and_recover() -> None:
    """Drop the process's state without any shutdown step, then recover from disk."""
    services.reset_state()
    services.recover()


def counts(words: list[str]) -> dict[str, int]:
    return dict(services.lookup(words))


def test_replay_after_snapshots_taken_during_writes_counts_nothing_twice() -> None:
    words = [f"word{n}" for n in range(60)]
    expected: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def writer(offset: int) -> None:
        for round_number in range(150):
            text = " ".join(words[(offset + round_number + k) % len(words)] for k in range(5))
            services.index_text(text.encode())
            with lock:
                expected.update(text.split())

    def dumper() -> None:
        while not stop.is_set():
            services.dump_snapshot(force=True)

    threads = [threading.Thread(target=writer, args=(index * 7,)) for index in range(4)]
    dumping = threading.Thread(target=dumper)
    dumping.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    dumping.join()
    crash_and_recover()
    assert counts(words) == {word: expected[word] for word in words}


def test_a_damaged_snapshot_falls_back_to_the_previous_one_and_the_log(settings: Any) -> None:
    services.index_text(b"alpha beta")
    services.dump_snapshot(force=True)
    services.index_text(b"alpha gamma")
    services.dump_snapshot(force=True)
    services.index_text(b"alpha")
    current = settings.COUNTER.snapshot_path
    assert settings.COUNTER.previous_snapshot_path.exists()
    damaged = bytearray(current.read_bytes())
    damaged[40] ^= 0xFF
    current.write_bytes(bytes(damaged))
    crash_and_recover()
    assert counts(["alpha", "beta", "gamma"]) == {"alpha": 3, "beta": 1, "gamma": 1}


def test_a_torn_log_tail_is_cut_off_and_the_rest_recovered(settings: Any) -> None:
    services.index_text(b"one")
    services.index_text(b"two")
    _first, segment = list_segments(settings.COUNTER.wal_dir)[-1]
    with open(segment, "r+b") as handle:
        handle.truncate(segment.stat().st_size - 3)  # the last record, cut short by a crash
    crash_and_recover()
    assert counts(["one", "two"]) == {"one": 1, "two": 0}
    services.index_text(b"two")
    crash_and_recover()
    assert counts(["one", "two"]) == {"one": 1, "two": 1}


def test_a_damaged_record_in_the_middle_of_the_log_stops_recovery(settings: Any) -> None:
    for word in ("one", "two", "three"):
        services.index_text(word.encode())
    _first, segment = list_segments(settings.COUNTER.wal_dir)[-1]
    data = bytearray(segment.read_bytes())
    data[30] ^= 0xFF
    segment.write_bytes(bytes(data))
    services.reset_state()
    with pytest.raises(LogCorrupt, match=rf"{segment.name}: .* at offset 16"):
        services.recover()


def test_a_full_disk_refuses_the_write_with_507_and_counts_nothing(
    public_client: PortClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert public_client.generic("POST", "/keywords", "before", "text/plain").status_code == 200

    def disk_full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    real_write_all = wal_module._write_all
    monkeypatch.setattr(wal_module, "_write_all", disk_full)
    refused = public_client.generic("POST", "/keywords", "during during", "text/plain")
    assert refused.status_code == 507
    assert refused.json()["code"] == "log_write_failed" and "nothing" in refused.json()["detail"]
    assert counts(["during"]) == {"during": 0}
    monkeypatch.setattr(wal_module, "_write_all", real_write_all)
    assert public_client.generic("POST", "/keywords", "after during", "text/plain").status_code == 200
    crash_and_recover()
    assert counts(["before", "during", "after"]) == {"before": 1, "during": 1, "after": 1}


def test_readyz_is_503_until_recovery_is_done(public_client: PortClient) -> None:
    services.reset_state()
    assert public_client.get("/readyz").status_code == 503
    assert public_client.get("/healthz").status_code == 200
    assert public_client.get("/keywords?keywords=x").status_code == 503
    assert public_client.generic("POST", "/keywords", "x", "text/plain").status_code == 503
    services.recover()
    assert public_client.get("/readyz").status_code == 200


def test_nothing_is_dumped_before_recovery_finished(settings: Any) -> None:
    services.index_text(b"kept")
    services.dump_snapshot(force=True)
    before = settings.COUNTER.snapshot_path.read_bytes()
    services.reset_state()  # a worker whose recovery has not finished (or failed)
    assert services.dump_snapshot(force=True).written is False
    assert settings.COUNTER.snapshot_path.read_bytes() == before


def test_checkpoints_remove_log_segments_older_than_the_previous_snapshot(settings: Any) -> None:
    wal = services._node().wal
    assert wal is not None
    wal.segment_bytes = 300  # roll every few records
    for round_number in range(3):
        for n in range(20):
            services.index_text(f"word{n} round{round_number}".encode())
        services.dump_snapshot(force=True)
    segments = list_segments(settings.COUNTER.wal_dir)
    # The previous snapshot holds rounds 0 and 1 (records 1..40): the log before it is gone.
    first_lsn_kept = segments[0][0]
    assert 20 < first_lsn_kept <= 41, segments
    crash_and_recover()
    assert counts(["word3", "round2"]) == {"word3": 3, "round2": 20}


def test_a_node_on_a_wiped_disk_holds_writes_until_synced_even_across_restarts(settings: Any) -> None:
    import dataclasses

    settings.COUNTER = dataclasses.replace(settings.COUNTER, seeds=("http://127.0.0.1:9",))
    services.reset_state()
    for stale in settings.COUNTER.data_dir.iterdir():  # the fixture's first recovery left a run record
        if stale.is_file():
            stale.unlink()
    services.recover()
    assert services._node().writes_held is not None
    with pytest.raises(services.WritesHeld):
        services.index_text(b"too early")
    services.shut_down_cleanly()
    crash_and_recover()
    assert services._node().writes_held is not None, "a restart before syncing must not forget the hold"
    assert services.release_writes() is True
    services.index_text(b"now")
    crash_and_recover()
    assert services._node().writes_held is None
    assert counts(["now", "too"]) == {"now": 1, "too": 0}
