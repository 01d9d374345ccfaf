"""The node's process-level state and the operations the views and commands call.

The store lives in the serving process (one gunicorn worker); everything that
reads or changes it goes through the functions here. Views stay thin: they
parse input, call one function, and serialize its result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

from storage_app.core.keywords import Keywords
from storage_app.core.snapshot import (
    WrittenSnapshot,
    encode_snapshot,
    read_snapshot_file,
    write_snapshot_file,
)
from storage_app.core.store import GCounterStore, KeyArray, MergeResult, SlotArray
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


class _NodeState:
    """The store plus the bookkeeping around it; one per process."""

    def __init__(self) -> None:
        self.store = GCounterStore()
        # The store's change sequence at the last dump, so a dump can be skipped when nothing changed.
        self.dumped_sequence = -1
        self.dump_lock = threading.Lock()
        self.writes_open = True
        self.writes_in_flight = 0
        self.writes_cond = threading.Condition()
        # What runsync last reported of each peer, for GET /cluster.
        self.peer_report: dict[str, Any] = {}


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


@cache
def keywords() -> Keywords:
    """The tokenizer this node is configured with."""
    return Keywords(settings.COUNTER_TOKENIZER)


def load_snapshot() -> int:
    """Load this node's snapshot file, if any, into the store; return the keys loaded.

    Raises ``SnapshotCorrupt``/``SnapshotForeign`` (naming the file) instead of
    loading part of a damaged file.
    """
    config = settings.COUNTER
    started = time.perf_counter()
    snapshot = read_snapshot_file(config.snapshot_path, config.node_id)
    if snapshot is None:
        logger.info("no snapshot at %s: starting empty", config.snapshot_path)
        return 0
    node = _node()
    node.store.merge(snapshot.keys, snapshot.slots)
    node.dumped_sequence = node.store.sequence
    logger.info(
        "loaded %d keys from %s in %.3f s", len(snapshot.keys), config.snapshot_path, time.perf_counter() - started
    )
    return len(snapshot.keys)


def index_text(text: str) -> IndexResult:
    """Count every keyword of ``text`` in this node's own slot."""
    token_count, per_key = keywords().count(text)
    node = _node()
    with node.writes_cond:
        if not node.writes_open:
            raise WritesClosed
        node.writes_in_flight += 1
    try:
        node.store.increment(settings.COUNTER_NODE_ID, per_key)
    finally:
        with node.writes_cond:
            node.writes_in_flight -= 1
            node.writes_cond.notify_all()
    return IndexResult(tokens=token_count, keywords=len(per_key))


def lookup(words: list[str]) -> list[tuple[str, int]]:
    """``(keyword as given, cluster-wide count)`` for each keyword, in order, duplicates kept."""
    totals = get_store().read(keywords().keys_of(words))
    return list(zip(words, totals, strict=True))


def merge_rows(keys: KeyArray, slots: SlotArray) -> MergeResult:
    """Merge rows received from a counter-app peer (or an import) by max per slot."""
    return _node().store.merge(keys, slots)


def replica() -> Replica:
    """The store as the native sync protocol sees it."""
    return Replica(get_store(), settings.COUNTER_NODE_ID, settings.COUNTER_TOKENIZER)


def wait_for_change(since: int, timeout: float) -> int:
    """Return the store's sequence as soon as it passes ``since``, or after ``timeout`` seconds."""
    store = get_store()
    deadline = time.monotonic() + timeout
    while (sequence := store.sequence) <= since and time.monotonic() < deadline:
        # A short poll keeps the store free of wake-up plumbing; runsync holds one such request.
        time.sleep(0.005)
    return sequence


def set_peer_report(report: dict[str, Any]) -> None:
    _node().peer_report = report


def cluster_status() -> dict[str, Any]:
    """This node and what runsync last reported of its peers."""
    store = get_store()
    report = dict(_node().peer_report)
    return {
        "node": {
            "node_id": settings.COUNTER_NODE_ID,
            "incarnation": f"{store.incarnation:016x}",
            "sequence": store.sequence,
            "keys": len(store),
            "slots": store.width,
            "tokenizer": settings.COUNTER_TOKENIZER,
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


def snapshot_stream() -> Iterator[bytes]:
    """The store in snapshot format, streamed chunk by chunk."""
    return encode_snapshot(get_store().export_chunks(), settings.COUNTER_NODE_ID)


def dump_snapshot(force: bool = False) -> DumpResult:
    """Write the snapshot file if anything changed since the last dump (or if ``force``)."""
    node = _node()
    with node.dump_lock:
        sequence = node.store.sequence
        if not force and sequence == node.dumped_sequence:
            return DumpResult(written=False, keys=len(node.store), size_bytes=0, seconds=0.0)
        started = time.perf_counter()
        written: WrittenSnapshot = write_snapshot_file(settings.COUNTER.snapshot_path, snapshot_stream())
        node.dumped_sequence = sequence
    seconds = time.perf_counter() - started
    logger.debug("dumped %d keys (%d bytes) in %.3f s", written.keys, written.size_bytes, seconds)
    return DumpResult(written=True, keys=written.keys, size_bytes=written.size_bytes, seconds=seconds)
