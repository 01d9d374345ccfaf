"""Recovery through the service layer: snapshot plus log replay is exact, damage is detected."""

from __future__ import annotations

import dataclasses
import errno
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
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


SEEDS = ("http://127.0.0.1:9", "http://localhost:10")


def wipe(data_dir: Path) -> None:
    """Remove everything the fixture's first recovery left (the disk is lost)."""
    shutil.rmtree(data_dir)
    data_dir.mkdir()


def start_unproven(settings: Any, wal: bool = True) -> None:
    """Restart the node on a wiped data directory, with two seeds to learn its slot from."""
    settings.COUNTER = dataclasses.replace(settings.COUNTER, seeds=SEEDS, wal=wal)
    services.reset_state()
    wipe(settings.COUNTER.data_dir)
    services.recover()
    assert services._node().unproven == "no state on disk (a new or wiped data directory)"


def learned_report(*modes: str) -> dict[str, Any]:
    """runsync's report of SEEDS with each seed in the given mode, learned from in this process."""
    incarnation = f"{services.get_store().incarnation:016x}"
    return {
        "peers": [
            {"url": url, "mode": mode, "learned_for": incarnation} for url, mode in zip(SEEDS, modes, strict=False)
        ]
    }


def own_slot(word: str, settings: Any) -> int:
    slots = services.get_store().slots_of(services.keywords().key_of(word))
    return slots[settings.COUNTER_NODE_ID] if len(slots) > settings.COUNTER_NODE_ID else 0


def peer_holds(word: str, value: int, settings: Any) -> None:
    """A peer's copy of this node's slot arrives (what anti-entropy pulls)."""
    row = np.zeros((1, settings.COUNTER_NODE_ID + 1), dtype=np.uint64)
    row[0, settings.COUNTER_NODE_ID] = value
    services.merge_rows(np.array([services.keywords().key_of(word)], dtype=np.uint64), row)


@pytest.mark.parametrize("wal", [True, False], ids=["log", "no-log"])
def test_a_wiped_node_takes_writes_as_pending_and_adds_them_to_its_learned_slot(settings: Any, wal: bool) -> None:
    start_unproven(settings, wal=wal)
    services.index_text(b"apple apple cherry")
    assert counts(["apple", "cherry"]) == {"apple": 2, "cherry": 1}, "reads include pending increments at once"
    assert own_slot("apple", settings) == 0, "pending increments stay out of the slot"
    peer_holds("apple", 20, settings)  # counted before the disk was wiped
    assert counts(["apple"]) == {"apple": 22}

    crash_and_recover()  # kill -9 while pending: the increments come back from the log, still pending
    assert services._node().unproven == "it stopped before it had learned its slot from every seed"
    assert counts(["apple", "cherry"]) == {"apple": 2, "cherry": 1}
    peer_holds("apple", 20, settings)

    assert services.take_peer_report(learned_report("native", "legacy")) is False, "no push from the legacy seed"
    services.note_legacy_push("127.0.0.1")  # the address localhost names
    assert services.take_peer_report(learned_report("native", "legacy")) is True
    assert services._node().unproven is None and len(services._node().pending) == 0
    assert own_slot("apple", settings) == 22 and own_slot("cherry", settings) == 1
    services.index_text(b"apple")
    assert counts(["apple", "cherry"]) == {"apple": 23, "cherry": 1}

    crash_and_recover()  # the snapshot taken before the fold, then the fold record
    # Without a log, a crash loses what came after the last snapshot, so the node cannot prove its slot again.
    assert (services._node().unproven is None) is wal
    assert counts(["apple", "cherry"]) == {"apple": 23 if wal else 22, "cherry": 1}
    services.dump_snapshot(force=True)
    crash_and_recover()  # a snapshot taken after the fold: the fold record must not count again
    assert counts(["apple", "cherry"]) == {"apple": 23 if wal else 22, "cherry": 1}


def test_the_slot_is_learned_only_from_every_seed_of_this_process(settings: Any) -> None:
    start_unproven(settings)
    services.index_text(b"pear")
    other_incarnation = {
        "peers": [{**peer, "learned_for": "1"} for peer in learned_report("native", "native")["peers"]]
    }
    assert services.take_peer_report(other_incarnation) is False
    assert services.take_peer_report({"peers": learned_report("native", "native")["peers"][:1]}) is False
    assert services.take_peer_report(learned_report("native", "refused")) is False
    assert services._node().unproven is not None and counts(["pear"]) == {"pear": 1}
    assert services.take_peer_report(learned_report("native", "self")) is True, "the node itself is skipped"
    assert own_slot("pear", settings) == 1


def test_pending_increments_survive_checkpoints_that_remove_the_log_before_them(settings: Any) -> None:
    start_unproven(settings)
    wal = services._node().wal
    assert wal is not None
    wal.segment_bytes = 200  # roll every record or two
    for n in range(30):
        services.index_text(f"pending{n % 3} normal".encode())
        services.dump_snapshot(force=True)
    crash_and_recover()
    assert counts(["pending0", "normal"]) == {"pending0": 10, "normal": 30}
    assert services.take_peer_report(learned_report("native", "self")) is True
    for _ in range(3):
        services.index_text(b"normal")
        services.dump_snapshot(force=True)
    crash_and_recover()
    assert counts(["pending0", "normal"]) == {"pending0": 10, "normal": 33}
    assert len(list_segments(settings.COUNTER.wal_dir)) < 10, "once folded, pending records are not kept for good"


def test_writes_during_a_fold_are_counted_exactly_once(settings: Any) -> None:
    start_unproven(settings)

    def writer() -> None:
        for _ in range(300):
            services.index_text(b"race")

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    while sum(services._node().pending.totals([services.keywords().key_of("race")])) < 200:
        time.sleep(0.001)
    peer_holds("race", 1000, settings)
    assert services.take_peer_report(learned_report("native", "native")) is True
    assert any(thread.is_alive() for thread in threads), "the fold should happen while writes go on"
    for thread in threads:
        thread.join()
    assert counts(["race"]) == {"race": 2200}
    crash_and_recover()
    assert counts(["race"]) == {"race": 2200}


def test_a_wiped_node_without_seeds_counts_in_its_slot_at_once(settings: Any) -> None:
    settings.COUNTER = dataclasses.replace(settings.COUNTER, seeds=())
    services.reset_state()
    wipe(settings.COUNTER.data_dir)
    services.recover()
    assert services._node().unproven is None
    services.index_text(b"solo")
    assert own_slot("solo", settings) == 1
