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

from storage_app.core import wal as wal_module
from storage_app.core.wal import LogCorrupt, list_segments
from storage_app.node import Node, current_node, replace_node
from sync_app.sync_state import current_sync
from tests.cluster.nodes import wait_until
from tests.conftest import PortClient, restart_node, start_node

pytestmark = pytest.mark.usefixtures("node")


def crash_and_recover() -> None:
    """Drop the process's node without any shutdown step, then recover a new one from disk."""
    restart_node()


def counts(words: list[str]) -> dict[str, int]:
    return dict(current_node().lookup(words))


def test_replay_after_snapshots_taken_during_writes_counts_nothing_twice() -> None:
    words = [f"word{n}" for n in range(60)]
    expected: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def writer(offset: int) -> None:
        for round_number in range(150):
            text = " ".join(words[(offset + round_number + k) % len(words)] for k in range(5))
            current_node().index(text.encode())
            with lock:
                expected.update(text.split())

    def dumper() -> None:
        while not stop.is_set():
            current_node().dump(force=True)

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


def test_a_damaged_snapshot_falls_back_to_the_previous_one_and_the_log() -> None:
    current_node().index(b"alpha beta")
    current_node().dump(force=True)
    current_node().index(b"alpha gamma")
    current_node().dump(force=True)
    current_node().index(b"alpha")
    current = current_node().config.snapshot_path
    assert current_node().config.previous_snapshot_path.exists()
    damaged = bytearray(current.read_bytes())
    damaged[40] ^= 0xFF
    current.write_bytes(bytes(damaged))
    crash_and_recover()
    assert counts(["alpha", "beta", "gamma"]) == {"alpha": 3, "beta": 1, "gamma": 1}


def test_a_torn_log_tail_is_cut_off_and_the_rest_recovered() -> None:
    current_node().index(b"one")
    current_node().index(b"two")
    _first, segment = list_segments(current_node().config.wal_dir)[-1]
    with open(segment, "r+b") as handle:
        handle.truncate(segment.stat().st_size - 3)  # the last record, cut short by a crash
    crash_and_recover()
    assert counts(["one", "two"]) == {"one": 1, "two": 0}
    current_node().index(b"two")
    crash_and_recover()
    assert counts(["one", "two"]) == {"one": 1, "two": 1}


def test_a_damaged_record_in_the_middle_of_the_log_stops_recovery() -> None:
    for word in ("one", "two", "three"):
        current_node().index(word.encode())
    _first, segment = list_segments(current_node().config.wal_dir)[-1]
    data = bytearray(segment.read_bytes())
    data[30] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(LogCorrupt, match=rf"{segment.name}: .* at offset 16"):
        Node(current_node().config).recover()


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
    node = Node(current_node().config)
    replace_node(node)
    assert public_client.get("/readyz").status_code == 503
    assert public_client.get("/healthz").status_code == 200
    assert public_client.get("/keywords?keywords=x").status_code == 503
    assert public_client.generic("POST", "/keywords", "x", "text/plain").status_code == 503
    node.recover()
    assert public_client.get("/readyz").status_code == 200


def test_nothing_is_dumped_before_recovery_finished() -> None:
    current_node().index(b"kept")
    current_node().dump(force=True)
    before = current_node().config.snapshot_path.read_bytes()
    replace_node(Node(current_node().config))  # a worker whose recovery has not finished (or failed)
    assert current_node().dump(force=True).written is False
    assert current_node().config.snapshot_path.read_bytes() == before


def test_checkpoints_remove_log_segments_older_than_the_previous_snapshot() -> None:
    wal = current_node().wal
    assert wal is not None
    wal.segment_bytes = 300  # roll every few records
    for round_number in range(3):
        for n in range(20):
            current_node().index(f"word{n} round{round_number}".encode())
        current_node().dump(force=True)
    segments = list_segments(current_node().config.wal_dir)
    # The previous snapshot holds rounds 0 and 1 (records 1..40): the log before it is gone.
    first_lsn_kept = segments[0][0]
    assert 20 < first_lsn_kept <= 41, segments
    crash_and_recover()
    assert counts(["word3", "round2"]) == {"word3": 3, "round2": 20}


def wait_for(condition: Any, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


def test_a_log_grown_past_the_checkpoint_size_is_snapshotted_without_dumpstate() -> None:
    node = restart_node(checkpoint_log_bytes=4096)  # no dumpstate runs in this process
    assert node.wal is not None
    node.wal.segment_bytes = 2048
    node.index(b"small")
    assert node.last_dump is None, "a few bytes of log start no checkpoint"
    posted = 0
    while node.last_dump is None and posted < 500:
        node.index(f"checkpointed{posted} words".encode())
        posted += 1
    assert wait_for(lambda: node.last_dump is not None), "the log passed 4 KiB and no snapshot was written"
    assert node.config.snapshot_path.exists()
    # Checkpoints go on as the log grows, and each cuts the log behind the previous snapshot.
    # (Each write here waits for a checkpoint it started: a busy machine must not let the
    # writes outrun the snapshots, which is what would make the bound below a matter of timing.)
    for n in range(600):
        node.index(f"more{n} words".encode())
        assert wait_for(lambda: not node._checkpointing)
    # About two checkpoints of log (2 x 4 KiB) in 2 KiB segments; without checkpoints, 17 for these 600 records alone.
    assert len(list_segments(node.config.wal_dir)) <= 8, list_segments(node.config.wal_dir)
    crash_and_recover()
    assert counts(["words", "checkpointed0", "more599"]) == {"words": posted + 600, "checkpointed0": 1, "more599": 1}


SEEDS = ("http://127.0.0.1:9", "http://localhost:10")


def wipe(data_dir: Path) -> None:
    """Remove everything the fixture's first recovery left (the disk is lost)."""
    shutil.rmtree(data_dir)
    data_dir.mkdir()


def start_unproven(wal: bool = True) -> None:
    """Restart the node on a wiped data directory, with two seeds to learn its slot from."""
    config = dataclasses.replace(current_node().config, seeds=SEEDS, wal=wal)
    wipe(config.data_dir)
    start_node(config)
    assert current_node().unproven == "no state on disk (a new or wiped data directory)"


def learned_report(*modes: str) -> dict[str, Any]:
    """runsync's report of SEEDS with each seed in the given mode, learned from in this process."""
    incarnation = f"{current_sync().replica.incarnation:016x}"
    return {
        "peers": [
            {"url": url, "mode": mode, "learned_for": incarnation} for url, mode in zip(SEEDS, modes, strict=False)
        ]
    }


def own_slot(word: str) -> int:
    slots = current_node().store.slots_of(current_node().keywords.key_of(word))
    return slots[current_node().config.node_id] if len(slots) > current_node().config.node_id else 0


def peer_holds(word: str, value: int) -> None:
    """A peer's copy of this node's slot arrives (what anti-entropy pulls)."""
    row = np.zeros((1, current_node().config.node_id + 1), dtype=np.uint64)
    row[0, current_node().config.node_id] = value
    current_node().merge_rows(np.array([current_node().keywords.key_of(word)], dtype=np.uint64), row)


@pytest.mark.parametrize("wal", [True, False], ids=["log", "no-log"])
def test_a_wiped_node_takes_writes_as_pending_and_adds_them_to_its_learned_slot(wal: bool) -> None:
    start_unproven(wal=wal)
    current_node().index(b"apple apple cherry")
    assert counts(["apple", "cherry"]) == {"apple": 2, "cherry": 1}, "reads include pending increments at once"
    assert own_slot("apple") == 0, "pending increments stay out of the slot"
    peer_holds("apple", 20)  # counted before the disk was wiped
    assert counts(["apple"]) == {"apple": 22}

    crash_and_recover()  # kill -9 while pending: the increments come back from the log, still pending
    assert current_node().unproven == "it stopped before it had learned its slot from every seed"
    assert counts(["apple", "cherry"]) == {"apple": 2, "cherry": 1}
    peer_holds("apple", 20)

    assert current_sync().take_report(learned_report("native", "legacy")) is False, "no push from the legacy seed"
    current_sync().note_legacy_push("127.0.0.1")  # the address localhost names
    assert current_sync().take_report(learned_report("native", "legacy")) is True
    assert current_node().unproven is None and len(current_node().pending) == 0
    assert own_slot("apple") == 22 and own_slot("cherry") == 1
    current_node().index(b"apple")
    assert counts(["apple", "cherry"]) == {"apple": 23, "cherry": 1}

    crash_and_recover()  # the snapshot taken before the fold, then the fold record
    # Without a log, a crash loses what came after the last snapshot, so the node cannot prove its slot again.
    assert (current_node().unproven is None) is wal
    assert counts(["apple", "cherry"]) == {"apple": 23 if wal else 22, "cherry": 1}
    current_node().dump(force=True)
    crash_and_recover()  # a snapshot taken after the fold: the fold record must not count again
    assert counts(["apple", "cherry"]) == {"apple": 23 if wal else 22, "cherry": 1}


def test_the_slot_is_learned_only_from_every_seed_of_this_process() -> None:
    start_unproven()
    current_node().index(b"pear")
    other_incarnation = {
        "peers": [{**peer, "learned_for": "1"} for peer in learned_report("native", "native")["peers"]]
    }
    assert current_sync().take_report(other_incarnation) is False
    assert current_sync().take_report({"peers": learned_report("native", "native")["peers"][:1]}) is False
    assert current_sync().take_report(learned_report("native", "refused")) is False
    assert current_node().unproven is not None and counts(["pear"]) == {"pear": 1}
    assert current_sync().take_report(learned_report("native", "self")) is True, "the node itself is skipped"
    assert own_slot("pear") == 1


def test_pending_increments_survive_checkpoints_that_remove_the_log_before_them() -> None:
    start_unproven()
    wal = current_node().wal
    assert wal is not None
    wal.segment_bytes = 200  # roll every record or two
    for n in range(30):
        current_node().index(f"pending{n % 3} normal".encode())
        current_node().dump(force=True)
    crash_and_recover()
    assert counts(["pending0", "normal"]) == {"pending0": 10, "normal": 30}
    assert current_sync().take_report(learned_report("native", "self")) is True
    for _ in range(3):
        current_node().index(b"normal")
        current_node().dump(force=True)
    crash_and_recover()
    assert counts(["pending0", "normal"]) == {"pending0": 10, "normal": 33}
    assert len(list_segments(current_node().config.wal_dir)) < 10, "once folded, pending records are not kept for good"


def test_writes_during_a_fold_are_counted_exactly_once() -> None:
    start_unproven()

    # The writers go on until told to stop, which is only once writes were counted after the fold:
    # the fold always happens while writes go on, however the threads are scheduled.
    stop = threading.Event()
    written = [0] * 4

    def writer(number: int) -> None:
        while not stop.is_set():
            current_node().index(b"race")
            written[number] += 1

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    try:
        while sum(current_node().pending.totals([current_node().keywords.key_of("race")])) < 200:
            time.sleep(0.001)
        peer_holds("race", 1000)
        assert current_sync().take_report(learned_report("native", "native")) is True
        after_fold = sum(written)
        wait_until(lambda: sum(written) >= after_fold + 200, 30, "writes counted after the fold")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert counts(["race"]) == {"race": 1000 + sum(written)}
    crash_and_recover()
    assert counts(["race"]) == {"race": 1000 + sum(written)}


def test_a_wiped_node_without_seeds_counts_in_its_slot_at_once() -> None:
    config = dataclasses.replace(current_node().config, seeds=())
    wipe(config.data_dir)
    start_node(config)
    assert current_node().unproven is None
    current_node().index(b"solo")
    assert own_slot("solo") == 1


def test_a_pending_node_knows_the_texts_of_its_writes_before_and_after_the_fold() -> None:
    start_unproven()

    def top_texts() -> list[tuple[str | None, int]]:
        rows = current_node().top(10)
        return [(row.text.decode() if row.text is not None else None, row.count) for row in rows]

    peer_holds("kiwi", 3)  # a key from a peer that sent no text (a counter-app peer)
    current_node().store._compact()  # in the store's arrays, as most keys are
    assert top_texts() == [(None, 3)]
    current_node().index(b"kiwi banana")
    assert top_texts() == [("kiwi", 4), ("banana", 1)], "a pending write names the peer's key at once"
    crash_and_recover()  # the pending increments and their texts come back from the log; the peer's row again
    peer_holds("kiwi", 3)
    assert top_texts() == [("kiwi", 4), ("banana", 1)]
    current_sync().note_legacy_push("127.0.0.1")
    assert current_sync().take_report(learned_report("native", "legacy")) is True
    assert top_texts() == [("kiwi", 4), ("banana", 1)]
    crash_and_recover()  # the fold record carries banana's text
    assert top_texts() == [("kiwi", 4), ("banana", 1)]
