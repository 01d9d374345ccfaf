"""The node's process-level state and the operations the views and commands call.

The store lives in the serving process (one gunicorn worker); everything that
reads or changes it goes through the functions here. Views stay thin: they
parse input, call one function, and serialize its result.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from django.conf import settings

from storage_app.core.errors import SnapshotCorrupt
from storage_app.core.files import write_file_atomically
from storage_app.core.keywords import Keywords
from storage_app.core.pending import PendingIncrements
from storage_app.core.snapshot import (
    Snapshot,
    WrittenSnapshot,
    encode_snapshot,
    read_snapshot_file,
    write_snapshot_file,
)
from storage_app.core.store import GCounterStore, KeyArray, MergeResult, SlotArray, StoreChunk
from storage_app.core.tokenizer_processes import TokenizerProcesses, count_as_arrays
from storage_app.core.wal import LogRecord, RecordKind, WriteAheadLog, list_segments, read_log
from sync_app.core.replication import Replica

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexResult:
    """What POST /keywords counted: tokens in the text and distinct keywords among them."""

    tokens: int
    keywords: int


@dataclass(frozen=True)
class DumpResult:
    """What a dump did; ``written`` is False when nothing changed since the last one."""

    written: bool
    keys: int
    size_bytes: int
    seconds: float


class WritesClosed(Exception):
    """The node is draining for shutdown and accepts no more client writes."""


class NotReady(Exception):
    """Recovery (snapshot load and log replay) has not finished yet."""


class _NodeState:
    """The store plus the bookkeeping around it; one per process."""

    def __init__(self) -> None:
        self.store = GCounterStore(max_slots=settings.COUNTER.max_slots)
        # The store's change sequence at the last dump, so a dump can be skipped when nothing changed.
        self.dumped_sequence = -1
        self.dump_lock = threading.Lock()
        self.writes_open = True
        self.writes_in_flight = 0
        self.writes_cond = threading.Condition()
        # What runsync last reported of each peer, for GET /cluster.
        self.peer_report: dict[str, Any] = {}
        self.ready = threading.Event()
        self.recovery_started = False
        # Why this node cannot yet prove its own slot complete (None: it can), see
        # _unproven_reason(). While set, its own writes are held as pending increments.
        self.unproven: str | None = None
        self.unproven_since: float | None = None  # Unix time
        self.pending = PendingIncrements()
        # Taken by a fold (pending increments into the slot) and by reads that add pending
        # increments, so that no read sees them both in the slot and pending.
        self.fold_view_lock = threading.Lock()
        self.fold_lock = threading.Lock()  # one fold at a time
        self.folding = False  # new writes wait while a fold runs (under writes_cond)
        # Address of each counter-app peer that pushed its full state to this process.
        self.legacy_pushes: set[str] = set()
        self.wal: WriteAheadLog | None = None
        # Lowest log position of the current and the previous snapshot: the log
        # is kept from the previous one's on, so that either can be recovered from.
        self.snapshot_lsns: list[int] = []


_state_lock = threading.Lock()
_state: _NodeState | None = None


def _node() -> _NodeState:
    global _state
    if _state is None:
        with _state_lock:
            if _state is None:
                _state = _NodeState()
    return _state


def get_store() -> GCounterStore:
    """The process's store."""
    return _node().store


def reset_state() -> None:
    """Forget the process's state (tests start each case from an empty node)."""
    global _state
    with _state_lock:
        _state = None


# Below this size a text costs less to tokenize than to hand to a child process.
TOKENIZE_IN_CHILD_FROM = 8192
_tokenizer_children: TokenizerProcesses | None = None
_tokenizer_children_lock = threading.Lock()


def _tokenizer_processes() -> TokenizerProcesses | None:
    """The node's tokenizer children, started on first use; None if COUNTER_TOKENIZER_PROCESSES=0."""
    global _tokenizer_children
    children = _tokenizer_children
    if children is not None and children.tokenizer == settings.COUNTER_TOKENIZER:
        return children
    if settings.COUNTER.tokenizer_processes == 0:
        return None
    with _tokenizer_children_lock:
        if _tokenizer_children is not None and _tokenizer_children.tokenizer != settings.COUNTER_TOKENIZER:
            _tokenizer_children.close()  # only tests change the tokenizer of a running process
            _tokenizer_children = None
        if _tokenizer_children is None:
            _tokenizer_children = TokenizerProcesses(settings.COUNTER_TOKENIZER, settings.COUNTER.tokenizer_processes)
        return _tokenizer_children


def stop_tokenizer_processes() -> None:
    """Stop the tokenizer children (the worker is exiting); later texts are tokenized in their thread."""
    global _tokenizer_children
    with _tokenizer_children_lock:
        children, _tokenizer_children = _tokenizer_children, None
    if children is not None:
        children.close()


@cache
def keywords() -> Keywords:
    """The tokenizer this node is configured with."""
    return Keywords(settings.COUNTER_TOKENIZER)


def _load_newest_good_snapshot() -> tuple[Snapshot | None, bool]:
    """The current snapshot, or the previous one if the current is damaged (then True); None if there is none."""
    config = settings.COUNTER
    try:
        return read_snapshot_file(config.snapshot_path, config.node_id), False
    except SnapshotCorrupt as error:
        previous = read_snapshot_file(config.previous_snapshot_path, config.node_id)
        if previous is None:
            raise
        logger.error("%s; recovering from the previous snapshot %s", error, config.previous_snapshot_path)
        return previous, True


def recover() -> None:
    """Load the newest good snapshot, replay the write-ahead log after it, open the log.

    Replay is exact: a snapshot chunk records the last log record its rows hold,
    so each key gets the records after its own chunk's position, never one twice.
    Pending increments (never in a snapshot) come back from their log records,
    unless a later fold record added them to the slot. Raises
    ``SnapshotCorrupt``, ``SnapshotForeign`` or ``LogCorrupt`` (naming the file
    and offset) instead of starting on damaged data.
    """
    config = settings.COUNTER
    node = _node()
    started = time.perf_counter()
    for stale in config.data_dir.glob(f".node-{config.node_id}.snapshot*.tmp"):
        # A snapshot whose writer was killed before its rename: never part of the state.
        logger.info("removing %s, left by an interrupted snapshot write", stale)
        stale.unlink(missing_ok=True)
    snapshot, fell_back = _load_newest_good_snapshot()
    store = node.store
    last_lsn = 0
    if snapshot is not None:
        store.merge(snapshot.keys, snapshot.slots)
        last_lsn = int(snapshot.range_lsns.max()) if len(snapshot.range_lsns) else 0
        node.snapshot_lsns = [snapshot.log_position]
    had_state = snapshot is not None or bool(list_segments(config.wal_dir))
    replayed = 0
    # Read even with COUNTER_WAL=false: pending increments are always logged.
    for record in read_log(config.wal_dir):
        if record.kind == RecordKind.PENDING:
            node.pending.add(record.keys, record.amounts, record.lsn)
        else:
            keys, amounts = record.keys, record.amounts
            if snapshot is not None:
                fresh = snapshot.lsn_of(keys) < np.uint64(record.lsn)
                keys, amounts = keys[fresh], amounts[fresh]
            store.increment_arrays(record.slot, keys, amounts, lsn=record.lsn)
            if record.kind == RecordKind.FOLD:
                node.pending.clear()  # the fold record holds every pending increment before it
        last_lsn = max(last_lsn, record.lsn)
        replayed += 1
    node.wal = WriteAheadLog(config.wal_dir, next_lsn=last_lsn + 1, fsync=config.fsync)
    store.increment_arrays(config.node_id, np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.uint64), last_lsn)
    node.dumped_sequence = store.sequence if replayed == 0 else -1
    reason = _unproven_reason(had_state, fell_back)
    if reason is None and len(node.pending):
        reason = "its log holds pending increments that were never added to its slot"
    if reason is not None:
        node.unproven, node.unproven_since = reason, time.time()
        if config.seeds:
            logger.warning(
                "this node cannot prove its own counts complete (%s): it takes writes as pending increments "
                "(%d keys so far) and adds them to its slot once it has learned its slot from every seed",
                reason,
                len(node.pending),
            )
    _write_run_state(clean=False)
    if reason is not None and not config.seeds:
        logger.info("%s, and no seeds to learn this node's counts from: starting as a new node", reason)
        fold_pending()
    node.ready.set()
    logger.info(
        "recovered %d keys (%s) and %d log records in %.3f s",
        len(store),
        f"snapshot at log position {snapshot.log_position}" if snapshot is not None else "no snapshot",
        replayed,
        time.perf_counter() - started,
    )


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _run_state_path() -> Path:
    config = settings.COUNTER
    return Path(config.data_dir) / f"node-{config.node_id}.run-state"


def _unproven_reason(had_state: bool, fell_back: bool) -> str | None:
    """Why this node cannot prove its own slot is complete, or None if it can.

    Its slot may be higher on its peers than on its disk when the data directory
    is new or wiped, when there is no record of the last stop, when it stopped
    before it had learned its slot, when the snapshot that held what it learned
    is damaged, or when an unclean stop may have taken increments its peers
    already have (the log's last second after a machine restart with
    COUNTER_FSYNC=interval; everything since the last snapshot with
    COUNTER_WAL=false). Counting on from a lower value would be swallowed by
    the peers' max-merge.
    """
    config = settings.COUNTER
    if not had_state:
        return "no state on disk (a new or wiped data directory)"
    try:
        previous = json.loads(_run_state_path().read_text())
    except (OSError, ValueError):
        return "no record of how the node last stopped"
    if previous.get("pending") or previous.get("held"):
        return "it stopped before it had learned its slot from every seed"
    if fell_back:
        return "its newest snapshot is damaged, and the previous one may predate what it learned from its seeds"
    if not previous.get("clean") and not config.wal:
        return "it stopped uncleanly without a log (COUNTER_WAL=false): its counts since the last snapshot are gone"
    if not previous.get("clean") and previous.get("boot_id") != _boot_id() and config.fsync == "interval":
        return "the machine restarted after an unclean stop: the log's last second may be lost"
    return None


def _write_run_state(clean: bool) -> None:
    """Record (durably) the boot, whether the node stopped cleanly, and whether it is still unproven."""
    pending = _node().unproven is not None
    write_file_atomically(
        _run_state_path(), json.dumps({"boot_id": _boot_id(), "clean": clean, "pending": pending}).encode()
    )


def fold_pending() -> bool:
    """Add the pending increments to this node's slot, now that it has learned its slot; True if it did.

    First a snapshot makes what the node learned from its seeds durable, so a
    restart never counts on from less. Then, with new writes waiting for a
    moment, one fold record (fsynced) carries every pending increment into the
    slot, where replication picks it up.
    """
    node = _node()
    with node.fold_lock:
        if node.unproven is None:
            return False
        _write_snapshot(force=True)
        with node.writes_cond:
            node.folding = True
            node.writes_cond.wait_for(lambda: node.writes_in_flight == 0)
        try:
            keys, amounts = node.pending.arrays()
            if len(keys):
                assert node.wal is not None
                node.wal.append(settings.COUNTER.node_id, keys, amounts, _apply_logged, kind=RecordKind.FOLD, sync=True)
            reason, node.unproven, node.unproven_since = node.unproven, None, None
            _write_run_state(clean=False)
        finally:
            with node.writes_cond:
                node.folding = False
                node.writes_cond.notify_all()
    logger.info(
        "counting in this node's own slot from now on, %d pending keys added to it (was: %s)", len(keys), reason
    )
    return True


def note_legacy_push(address: str) -> None:
    """A counter-app peer at ``address`` pushed its full state (which holds its copy of our slot)."""
    _node().legacy_pushes.add(address)


def _addresses_of(url: str) -> set[str]:
    host = urlsplit(url).hostname or ""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


def learned_from_every_seed(peers: list[dict[str, Any]]) -> bool:
    """Has this node learned its slot from every seed, by runsync's report of each?

    A native seed counts once anti-entropy with this process completed, a
    counter-app seed once a full push came from its address; a seed that is this
    node itself is skipped; one that refuses us, or has not answered, does not count.
    """
    node = _node()
    incarnation = f"{node.store.incarnation:016x}"
    reported = {str(peer.get("url")): peer for peer in peers}
    for seed in settings.COUNTER.seeds:
        peer = reported.get(seed, {})
        mode = peer.get("mode")
        if mode == "self" or (mode == "native" and peer.get("learned_for") == incarnation):
            continue
        if mode == "legacy" and node.legacy_pushes & _addresses_of(seed):
            continue
        return False
    return True


def shut_down_cleanly() -> None:
    """Last step of a graceful stop, after the final dump: close the log, record the clean stop."""
    node = _node()
    if not node.ready.is_set():
        return
    if node.wal is not None:
        node.wal.close()
        node.wal = None
    _write_run_state(clean=True)


def start_recovery() -> None:
    """Recover in a thread (the node answers /healthz meanwhile, and 503 elsewhere).

    A node that cannot recover must not serve: the worker exits with gunicorn's
    boot-error status, which stops gunicorn, which stops runnode.
    """

    node = _node()
    with _state_lock:
        if node.recovery_started:
            return
        node.recovery_started = True

    def run() -> None:
        try:
            # The tokenizer processes start beside the recovery, not on the first large text.
            _tokenizer_processes()
            recover()
        except Exception as error:  # noqa: BLE001 - any failure here must stop the node, loudly
            logger.critical("cannot start: %s", error)
            logging.shutdown()
            os._exit(3)

    threading.Thread(target=run, name="recovery", daemon=True).start()


def is_ready() -> bool:
    return _node().ready.is_set()


def require_ready() -> None:
    if not _node().ready.is_set():
        raise NotReady


def index_text(data: bytes) -> IndexResult:
    """Count every keyword of the UTF-8 text ``data`` in this node's own slot.

    Raises ``UnicodeDecodeError`` (and counts nothing) if ``data`` is not UTF-8.
    """
    if len(data) >= TOKENIZE_IN_CHILD_FROM and (children := _tokenizer_processes()) is not None:
        token_count, keys, amounts = children.count(data)
    else:
        token_count, keys, amounts = count_as_arrays(keywords(), data)
    node = _node()
    require_ready()
    with node.writes_cond:
        node.writes_cond.wait_for(lambda: not node.folding)
        if not node.writes_open:
            raise WritesClosed
        node.writes_in_flight += 1
        # Stable until this write is done: a fold waits for the writes in flight.
        pending = node.unproven is not None
    try:
        assert node.wal is not None
        if pending and len(keys):
            node.wal.append(settings.COUNTER_NODE_ID, keys, amounts, _apply_logged, kind=RecordKind.PENDING)
        elif not settings.COUNTER.wal:
            node.store.increment_arrays(settings.COUNTER_NODE_ID, keys, amounts)
        elif len(keys):
            node.wal.append(settings.COUNTER_NODE_ID, keys, amounts, _apply_logged)
    finally:
        with node.writes_cond:
            node.writes_in_flight -= 1
            node.writes_cond.notify_all()
    return IndexResult(tokens=token_count, keywords=len(keys))


def _apply_logged(record: LogRecord) -> None:
    """Apply a log record that is now written (called by the log, in LSN order)."""
    node = _node()
    if record.kind == RecordKind.PENDING:
        node.pending.add(record.keys, record.amounts, record.lsn)
        return
    if record.kind == RecordKind.FOLD:
        with node.fold_view_lock:
            node.store.increment_arrays(record.slot, record.keys, record.amounts, record.lsn)
            node.pending.clear()
        return
    node.store.increment_arrays(record.slot, record.keys, record.amounts, record.lsn)


def lookup(words: list[str]) -> list[tuple[str, int]]:
    """``(keyword as given, cluster-wide count)`` for each keyword, in order, duplicates kept.

    The counts include this node's pending increments.
    """
    keys = keywords().keys_of(words)
    node = _node()
    if not len(node.pending):
        return list(zip(words, node.store.read(keys), strict=True))
    with node.fold_view_lock:
        totals = node.store.read(keys)
        held = node.pending.totals(keys)
    return list(zip(words, [total + more for total, more in zip(totals, held, strict=True)], strict=True))


def merge_rows(keys: KeyArray, slots: SlotArray) -> MergeResult:
    """Merge rows received from a counter-app peer (or an import) by max per slot."""
    return _node().store.merge(keys, slots)


def replica() -> Replica:
    """The store as the native sync protocol sees it."""
    return Replica(get_store(), settings.COUNTER_NODE_ID, settings.COUNTER_TOKENIZER)


def wait_for_change(since: int, timeout: float) -> int:
    """Return the store's sequence as soon as it passes ``since``, or after ``timeout`` seconds."""
    return get_store().wait_for_change(since, timeout)


def take_peer_report(report: dict[str, Any]) -> bool:
    """Keep runsync's report for GET /cluster; fold pending increments once the slot is learned (True if so)."""
    node = _node()
    node.peer_report = report
    if node.unproven is None or not learned_from_every_seed(list(report.get("peers", []))):
        return False
    return fold_pending()


def cluster_status() -> dict[str, Any]:
    """This node and what runsync last reported of its peers."""
    store = get_store()
    node_state = _node()
    report = dict(node_state.peer_report)
    return {
        "node": {
            "node_id": settings.COUNTER_NODE_ID,
            "incarnation": f"{store.incarnation:016x}",
            "sequence": store.sequence,
            "keys": len(store),
            "slots": store.width,
            "tokenizer": settings.COUNTER_TOKENIZER,
            "ready": node_state.ready.is_set(),
            "pending": {
                "reason": node_state.unproven,
                "since": node_state.unproven_since,
                "keys": len(node_state.pending),
                "increments": node_state.pending.total(),
            },
        },
        "reported_at": report.get("reported_at"),
        "peers": report.get("peers", []),
    }


def close_writes(timeout: float = 10.0) -> None:
    """Refuse client writes from now on and wait for those in flight to finish."""
    node = _node()
    with node.writes_cond:
        node.writes_open = False
        node.writes_cond.wait_for(lambda: node.writes_in_flight == 0, timeout=timeout)


def snapshot_stream(positions: list[int] | None = None) -> Iterator[bytes]:
    """The store in snapshot format, streamed chunk by chunk (each chunk's log position into ``positions``)."""

    def chunks() -> Iterator[StoreChunk]:
        for chunk in get_store().export_chunks():
            if positions is not None:
                positions.append(chunk.lsn)
            yield chunk

    return encode_snapshot(chunks(), settings.COUNTER_NODE_ID)


def dump_snapshot(force: bool = False) -> DumpResult:
    """Write the snapshot file if anything changed since the last dump (or if ``force``)."""
    if not _node().ready.is_set():
        # Before recovery finished (or after it failed) the store is not the node's state:
        # writing it would put an empty or partial snapshot over a good one.
        return DumpResult(written=False, keys=0, size_bytes=0, seconds=0.0)
    return _write_snapshot(force)


def _write_snapshot(force: bool) -> DumpResult:
    node = _node()
    with node.dump_lock:
        sequence = node.store.sequence
        if not force and sequence == node.dumped_sequence:
            return DumpResult(written=False, keys=len(node.store), size_bytes=0, seconds=0.0)
        started = time.perf_counter()
        config = settings.COUNTER
        positions: list[int] = []
        written: WrittenSnapshot = write_snapshot_file(
            config.snapshot_path, snapshot_stream(positions), keep_previous=config.previous_snapshot_path
        )
        node.dumped_sequence = sequence
        # Keep the log from the older of the two snapshots on, so either can be recovered
        # from, and from the first pending increment on (no snapshot holds those).
        node.snapshot_lsns = [*node.snapshot_lsns[-1:], min(positions, default=0)]
        keep_from = min(node.snapshot_lsns) + 1
        if node.pending.first_lsn is not None:
            keep_from = min(keep_from, node.pending.first_lsn)
        if node.wal is not None:
            node.wal.remove_segments_before(keep_from)
    seconds = time.perf_counter() - started
    logger.debug("dumped %d keys (%d bytes) in %.3f s", written.keys, written.size_bytes, seconds)
    return DumpResult(written=True, keys=written.keys, size_bytes=written.size_bytes, seconds=seconds)
