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

from django.conf import settings

from storage_app.core.keywords import Keywords
from storage_app.core.snapshot import (
    WrittenSnapshot,
    encode_snapshot,
    read_snapshot_file,
    write_snapshot_file,
)
from storage_app.core.store import GCounterStore, KeyArray, MergeResult, SlotArray

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
        # Bumped on every change, so a dump can be skipped when nothing changed.
        self.changes = 0
        self.changes_lock = threading.Lock()
        self.dumped_changes = -1
        self.dump_lock = threading.Lock()
        self.writes_open = True
        self.writes_in_flight = 0
        self.writes_cond = threading.Condition()

    def note_change(self) -> None:
        with self.changes_lock:
            self.changes += 1


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
    node.dumped_changes = node.changes
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
        if per_key:
            node.note_change()
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
    """Merge rows received from a peer (or an import) by max per slot."""
    node = _node()
    result = node.store.merge(keys, slots)
    if result.changed:
        node.note_change()
    return result


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
        changes = node.changes
        if not force and changes == node.dumped_changes:
            return DumpResult(written=False, keys=len(node.store), size_bytes=0, seconds=0.0)
        started = time.perf_counter()
        written: WrittenSnapshot = write_snapshot_file(settings.COUNTER.snapshot_path, snapshot_stream())
        node.dumped_changes = changes
    seconds = time.perf_counter() - started
    logger.debug("dumped %d keys (%d bytes) in %.3f s", written.keys, written.size_bytes, seconds)
    return DumpResult(written=True, keys=written.keys, size_bytes=written.size_bytes, seconds=seconds)
