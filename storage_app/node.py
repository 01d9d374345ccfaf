"""The node: one owner for everything the serving process keeps.

A ``Node`` owns the store, the write-ahead log, the pending increments, the
tokenizer processes, recovery, the write gate, checkpoints and the run-state
file. One is built per serving process (``current_node()``); views, commands'
internal routes and the sync side reach the state only through it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from storage_app.core.config import NodeConfig
from storage_app.core.errors import (
    KeywordTooLong,
    LookupTooLarge,
    NodeIdClash,
    ShuttingDown,
    SnapshotCorrupt,
    StillRecovering,
    TextNotUtf8,
)
from storage_app.core.idempotency import (
    IdempotencyFileCorrupt,
    IdempotencyKeyReused,
    IdempotencyTable,
    Remembered,
    decode_entries,
    fingerprint,
)
from storage_app.core.keywords import Keywords
from storage_app.core.pending import PendingIncrements
from storage_app.core.run_state import RunState, boot_id
from storage_app.core.snapshot import Snapshot, encode_snapshot, read_snapshot_file, write_snapshot_file
from storage_app.core.store import (
    LOCAL_ORIGIN,
    GCounterStore,
    KeyArray,
    MergeResult,
    SlotArray,
    StoreChunk,
    TopRow,
)
from storage_app.core.texts import TextColumn
from storage_app.core.tokenizer_processes import Counted, TokenizerProcesses, count_as_arrays
from storage_app.core.top_query import check_top_query
from storage_app.core.wal import LogRecord, RecordKind, WriteAheadLog, list_segments, read_log

logger = logging.getLogger(__name__)

# Below this size a text costs less to tokenize than to hand to a child process.
TOKENIZE_IN_CHILD_FROM = 8192


@dataclass(frozen=True)
class IndexResult:
    """What POST /keywords counted: tokens in the text and distinct keywords among them."""

    tokens: int
    keywords: int
    replayed: bool = False  # an Idempotency-Key seen before: this is the first reply, nothing was counted


@dataclass(frozen=True)
class DumpResult:
    """What a dump did; ``written`` is False when nothing changed since the last one."""

    written: bool
    keys: int
    size_bytes: int
    seconds: float


class Node:
    """The state of one node in its serving process; every public method is safe from any thread."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.keywords = Keywords(config.tokenizer)
        self.store = GCounterStore(max_slots=config.max_slots)
        self.pending = PendingIncrements()
        self.idempotency = IdempotencyTable(config.idempotency_ttl, config.max_idempotency_keys)
        # One request at a time per idempotency key: a concurrent retry waits and is replayed.
        self._key_turns: dict[bytes, list[Any]] = {}
        self._key_turns_lock = threading.Lock()
        self._keys_written_sequence = 0
        # For /metrics: texts and tokens counted (replays excluded), and the last snapshot written.
        self.texts_indexed = 0
        self.tokens_indexed = 0
        self._stats_lock = threading.Lock()
        self.last_dump: DumpResult | None = None
        self.wal: WriteAheadLog | None = None
        self._ready = threading.Event()
        self._recovery_started = False
        self._lock = threading.Lock()
        # Why this node cannot yet prove its own slot complete (None: it can); while set,
        # its own writes are kept as pending increments (docs/durability.md).
        self.unproven: str | None = None
        self.unproven_since: float | None = None  # Unix time
        # Why this process takes no client writes: another live process runs with its node
        # id and started first (None: no clash seen). Lasts until the process is restarted.
        self.clash: str | None = None
        # The write gate: writes in flight, closed for shutdown, paused for a fold.
        self._writes = threading.Condition()
        self._writes_open = True
        self._writes_in_flight = 0
        self._folding = False
        self._fold_lock = threading.Lock()  # one fold at a time
        # Held by a fold while it moves pending increments into the slot, and by reads
        # that add pending increments, so that no read sees them in both places.
        self._fold_view = threading.Lock()
        self._dump_lock = threading.Lock()
        # The log's bytes_appended when the last snapshot began, and whether a checkpoint by
        # log size is under way (COUNTER_CHECKPOINT_LOG_BYTES).
        self._log_bytes_at_dump = 0
        self._checkpointing = False
        self._checkpoint_lock = threading.Lock()
        self._dumped_sequence = -1  # the store's change sequence at the last dump
        # Lowest log position of the current and the previous snapshot: the log is
        # kept from the previous one's on, so that either can be recovered from.
        self._snapshot_lsns: list[int] = []
        self._tokenizers: TokenizerProcesses | None = None
        self._tokenizers_stopped = False  # after shutdown, texts are tokenized in their request thread
        self._tokenizers_lock = threading.Lock()

    # --- start and stop ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Has recovery finished? From then on every valid write is taken."""
        return self._ready.is_set()

    def require_ready(self) -> None:
        if not self._ready.is_set():
            raise StillRecovering

    def start_recovery(self, on_failure: Callable[[BaseException], None]) -> None:
        """Recover in a background thread (at most once); ``on_failure(error)`` if it cannot.

        The process answers /healthz meanwhile, and 503 on what needs the state.
        """
        with self._lock:
            if self._recovery_started:
                return
            self._recovery_started = True

        def run() -> None:
            try:
                self._tokenizer_processes()  # started beside the recovery, not on the first large text
                self.recover()
            except Exception as error:  # noqa: BLE001 - every failure here is the caller's to act on
                on_failure(error)

        threading.Thread(target=run, name="recovery", daemon=True).start()

    def recover(self) -> None:
        """Load the newest good snapshot, replay the write-ahead log after it, open the log.

        Replay is exact: a snapshot chunk records the last log record its rows hold,
        so each key gets the records after its own chunk's position, never one twice.
        Pending increments (never in a snapshot) come back from their log records,
        unless a later fold record added them to the slot. Raises
        ``SnapshotCorrupt``, ``SnapshotForeign`` or ``LogCorrupt`` (naming the file
        and offset) instead of starting on damaged data.
        """
        config = self.config
        started = time.perf_counter()
        for stale in config.data_dir.glob(f".node-{config.node_id}.snapshot*.tmp"):
            # A snapshot whose writer was killed before its rename: never part of the state.
            logger.info("removing %s, left by an interrupted snapshot write", stale)
            stale.unlink(missing_ok=True)
        snapshot, fell_back = self._load_newest_good_snapshot()
        store = self.store
        last_lsn = 0
        if snapshot is not None:
            store.merge(snapshot.keys, snapshot.slots, texts=snapshot.texts)
            last_lsn = int(snapshot.range_lsns.max()) if len(snapshot.range_lsns) else 0
            self._snapshot_lsns = [snapshot.log_position]
        had_state = snapshot is not None or bool(list_segments(config.wal_dir))
        self._load_idempotency_keys()
        replayed = 0
        # Read even with COUNTER_WAL=false: pending increments are always logged.
        for record in read_log(config.wal_dir):
            if record.tag:
                self._remember_tag(record.tag)
            if record.kind == RecordKind.PENDING:
                self.pending.add(record.keys, record.amounts, record.lsn, record.texts)
                if record.texts is not None:
                    # As the write did: keys the store already holds by hash learn their text now.
                    store.set_texts(record.keys, record.texts)
            else:
                keys, amounts, texts = record.keys, record.amounts, record.texts
                if snapshot is not None:
                    # A key whose snapshot chunk already holds this record has its text there too:
                    # the record's increments and texts went into the store in one step.
                    fresh = snapshot.lsn_of(keys) < np.uint64(record.lsn)
                    keys, amounts = keys[fresh], amounts[fresh]
                    texts = texts.compress(fresh) if texts is not None else None
                store.increment_arrays(record.slot, keys, amounts, lsn=record.lsn, texts=texts)
                if record.kind == RecordKind.FOLD:
                    self.pending.clear()  # the fold record holds every pending increment before it
            last_lsn = max(last_lsn, record.lsn)
            replayed += 1
        self.wal = WriteAheadLog(config.wal_dir, next_lsn=last_lsn + 1, fsync=config.fsync)
        # Records of other kinds and failed batches leave LSNs no row holds; the next
        # snapshot must still say the log up to here is in it.
        store.mark_applied(last_lsn)
        self._dumped_sequence = store.sequence if replayed == 0 else -1
        reason = self._unproven_reason(had_state, fell_back)
        if reason is None and len(self.pending):
            reason = "its log holds pending increments that were never added to its slot"
        if reason is not None:
            self.unproven, self.unproven_since = reason, time.time()
            if config.seeds:
                logger.warning(
                    "this node cannot prove its own counts complete (%s): it takes writes as pending increments "
                    "(%d keys so far) and adds them to its slot once it has learned its slot from every seed",
                    reason,
                    len(self.pending),
                )
        self._write_run_state(clean=False)
        if reason is not None and not config.seeds:
            logger.info("%s, and no seeds to learn this node's counts from: starting as a new node", reason)
            self.fold_pending()
        self._ready.set()
        logger.info(
            "recovered %d keys (%s) and %d log records in %.3f s",
            len(store),
            f"snapshot at log position {snapshot.log_position}" if snapshot is not None else "no snapshot",
            replayed,
            time.perf_counter() - started,
        )

    def close_writes(self, timeout: float = 10.0) -> None:
        """Refuse client writes from now on and wait for those in flight to finish."""
        with self._writes:
            self._writes_open = False
            self._writes.wait_for(lambda: self._writes_in_flight == 0, timeout=timeout)

    def shut_down(self) -> DumpResult:
        """Last steps of a graceful stop: stop the tokenizers, dump, close the log, record the clean stop."""
        self.stop_tokenizer_processes()
        result = self.dump()
        if self._ready.is_set():
            if self.wal is not None:
                self.wal.close()
                self.wal = None
            self._write_run_state(clean=True)
        return result

    # --- client writes and reads --------------------------------------------------------------

    def index(self, data: bytes, idempotency_key: bytes | None = None) -> IndexResult:
        """Count every keyword of the UTF-8 text ``data`` in this node's own slot (pending while unproven).

        With ``idempotency_key``, a text already counted under that key (here, or
        on a node whose increments reached this one) is not counted again: the
        first reply comes back with ``replayed`` set; another text under the key
        raises ``IdempotencyKeyReused``. Raises ``TextNotUtf8`` (and counts
        nothing) if ``data`` is not UTF-8, ``StillRecovering`` or ``ShuttingDown``
        when the node takes no writes, ``LogWriteFailed`` when the log cannot be written.
        """
        if idempotency_key is None:
            return self._count(data, None)
        self.require_ready()  # the keys are known only once the log is replayed
        body_print = fingerprint(data)
        with self._key_turn(idempotency_key):
            first = self.idempotency.get(idempotency_key, _now_ms())
            if first is not None:
                if first.fingerprint != body_print:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was first used with a different text (counted by node "
                        f"{first.origin}); nothing was counted. Use a new key for a new text."
                    )
                return IndexResult(tokens=first.tokens, keywords=first.keywords, replayed=True)
            return self._count(data, (idempotency_key, body_print))

    @contextmanager
    def _key_turn(self, key: bytes) -> Iterator[None]:
        with self._key_turns_lock:
            turn = self._key_turns.setdefault(key, [threading.Lock(), 0])
            turn[1] += 1
        try:
            with turn[0]:
                yield
        finally:
            with self._key_turns_lock:
                turn[1] -= 1
                if not turn[1]:
                    del self._key_turns[key]

    def index_batch(self, texts: list[bytes], keys: list[bytes | None]) -> list[IndexResult]:
        """Count many UTF-8 texts at once, each under its own idempotency key (or none); one result per text.

        All or nothing: the counted texts go to the log as one record, so a crash
        keeps all of them or none. A text whose key was seen before is not counted
        (its first reply comes back with ``replayed`` set), and so is a repeat of a
        key earlier in the same batch. A key first used with another text raises
        ``IdempotencyKeyReused`` and counts nothing of the batch. Other errors as ``index``.
        """
        if len(texts) != len(keys):
            raise ValueError("one key (or None) per text")
        self.require_ready()
        with ExitStack() as turns:
            for turn_key in sorted({key for key in keys if key is not None}):  # in order: no two batches deadlock
                turns.enter_context(self._key_turn(turn_key))
            now = _now_ms()
            results: list[IndexResult | None] = [None] * len(texts)
            repeats: dict[int, int] = {}  # index of a repeated key's text -> index of its first text
            first_in_batch: dict[bytes, tuple[bytes, int]] = {}  # key -> (fingerprint, index)
            to_count: list[int] = []
            for index, (text, key) in enumerate(zip(texts, keys, strict=True)):
                if key is None:
                    to_count.append(index)
                    continue
                body_print = fingerprint(text)
                earlier = self.idempotency.get(key, now)
                if earlier is None and key in first_in_batch:
                    earlier_print, earlier_index = first_in_batch[key]
                    if earlier_print == body_print:
                        repeats[index] = earlier_index
                        continue
                if earlier is not None and earlier.fingerprint == body_print:
                    results[index] = IndexResult(tokens=earlier.tokens, keywords=earlier.keywords, replayed=True)
                    continue
                if earlier is not None or key in first_in_batch:
                    raise IdempotencyKeyReused(
                        f"The Idempotency-Key {key.decode()!r} was first used with a different text; nothing of "
                        "the batch was counted. Use a new key for a new text."
                    )
                first_in_batch[key] = (body_print, index)
                to_count.append(index)
            counted = [(index, self._tokenize(texts[index])) for index in to_count]
            node_id = self.config.node_id
            tag = b"".join(
                Remembered(text_key, first_in_batch[text_key][0], one.tokens, len(one.keys), node_id, now).encode()
                for index, one in counted
                if (text_key := keys[index]) is not None
            )
            merged_keys, merged_amounts = _sum_by_key(
                [one.keys for _, one in counted], [one.counts for _, one in counted]
            )
            if counted:  # a batch of replays only writes nothing, like a single replay
                self._apply(
                    merged_keys,
                    merged_amounts,
                    tag,
                    texts=len(counted),
                    tokens=sum(one.tokens for _, one in counted),
                    keyword_texts=[(one.keys, one.texts) for _, one in counted],
                )
        for index, one in counted:
            results[index] = IndexResult(tokens=one.tokens, keywords=len(one.keys))
        for index, first in repeats.items():
            original = results[first]
            assert original is not None
            results[index] = IndexResult(tokens=original.tokens, keywords=original.keywords, replayed=True)
        return [result for result in results if result is not None]

    def _count(self, data: bytes, keyed: tuple[bytes, bytes] | None) -> IndexResult:
        counted = self._tokenize(data)
        tag = b""
        if keyed is not None:
            tag = Remembered(
                keyed[0], keyed[1], counted.tokens, len(counted.keys), self.config.node_id, _now_ms()
            ).encode()
        self._apply(
            counted.keys,
            counted.counts,
            tag,
            texts=1,
            tokens=counted.tokens,
            keyword_texts=[(counted.keys, counted.texts)],
        )
        return IndexResult(tokens=counted.tokens, keywords=len(counted.keys))

    def _tokenize(self, data: bytes) -> Counted:
        """The tokens, distinct keys, counts and texts of ``data``; a large text goes to a tokenizer process."""
        try:
            if len(data) >= TOKENIZE_IN_CHILD_FROM and (children := self._tokenizer_processes()) is not None:
                return children.count(data)
            return count_as_arrays(self.keywords, data)
        except UnicodeDecodeError as error:
            raise TextNotUtf8(
                f"Request body is not valid UTF-8 (byte {error.start}: {error.reason}); nothing was counted."
            ) from None

    def _apply(
        self,
        keys: KeyArray,
        amounts: KeyArray,
        tag: bytes,
        texts: int,
        tokens: int,
        keyword_texts: list[tuple[KeyArray, TextColumn]],
    ) -> None:
        """Log and count increments of this node's slot (pending while unproven), with the keys in ``tag``.

        ``keyword_texts`` holds the texts of ``keys`` (from one or more tokenized
        texts); the ones the node does not know yet go into the record with the
        increments, so a restart from the log knows them too.
        """
        self.require_ready()
        if self.clash is not None:
            raise NodeIdClash(f"This node takes no writes: {self.clash}. Nothing was counted; write to another node.")
        with self._writes:
            self._writes.wait_for(lambda: not self._folding)
            if not self._writes_open:
                raise ShuttingDown
            self._writes_in_flight += 1
            # Stable until this write is done: a fold waits for the writes in flight.
            pending = self.unproven is not None
        try:
            node_id = self.config.node_id
            assert self.wal is not None
            new_texts = self._texts_not_known(keys, keyword_texts, pending)
            if pending and (len(keys) or tag):
                self.wal.append(
                    node_id, keys, amounts, self._apply_logged, kind=RecordKind.PENDING, tag=tag, texts=new_texts
                )
            elif not self.config.wal:
                if tag:
                    self._remember_tag(tag)
                self.store.increment_arrays(node_id, keys, amounts, texts=new_texts)
            elif len(keys) or tag:
                self.wal.append(node_id, keys, amounts, self._apply_logged, tag=tag, texts=new_texts)
        finally:
            with self._writes:
                self._writes_in_flight -= 1
                self._writes.notify_all()
        with self._stats_lock:
            self.texts_indexed += texts
            self.tokens_indexed += tokens
        self._checkpoint_if_the_log_grew()

    def _texts_not_known(
        self, keys: KeyArray, sources: list[tuple[KeyArray, TextColumn]], pending: bool
    ) -> TextColumn | None:
        """The texts of ``keys`` that neither the store nor the pending increments hold (aligned), or None."""
        missing = self.store.missing_texts(keys)
        if pending and missing.any():
            missing &= ~self.pending.has_text(keys)
        if not missing.any():
            return None
        if len(sources) == 1 and sources[0][0] is keys:
            return sources[0][1].only(missing)
        wanted = set(keys[missing].tolist())
        found: dict[int, bytes] = {}
        for source_keys, column in sources:
            for key, text in zip(source_keys.tolist(), column.texts(), strict=True):
                if text and key in wanted:
                    found.setdefault(key, text)
        return TextColumn.from_texts([found.get(key) for key in keys.tolist()])

    def _checkpoint_if_the_log_grew(self) -> None:
        """Write a snapshot in the background once the log has grown by COUNTER_CHECKPOINT_LOG_BYTES since the last.

        dumpstate writes one every COUNTER_DUMP_INTERVAL; this bounds the log a
        restart replays under a write load heavier than that interval allows for.
        """
        limit, wal = self.config.checkpoint_log_bytes, self.wal
        if not limit or wal is None or wal.bytes_appended - self._log_bytes_at_dump < limit:
            return
        with self._checkpoint_lock:
            if self._checkpointing:
                return
            self._checkpointing = True

        def run() -> None:
            try:
                logger.debug("the log grew by %d bytes since the last snapshot: writing one", limit)
                self.dump()
            except Exception:  # the next write tries again; dumpstate's snapshots go on regardless
                logger.exception("checkpoint by log size failed")
            finally:
                with self._checkpoint_lock:
                    self._checkpointing = False

        threading.Thread(target=run, name="checkpoint", daemon=True).start()

    def lookup(self, words: list[str]) -> list[tuple[str, int]]:
        """``(keyword as given, cluster-wide count)`` for each keyword, in order, duplicates kept.

        The counts include this node's pending increments. ``LookupTooLarge`` or
        ``KeywordTooLong`` past the configured limits.
        """
        self.require_ready()
        self.check_lookup(words)
        keys = self.keywords.keys_of(words)
        if not len(self.pending):
            return list(zip(words, self.store.read(keys), strict=True))
        with self._fold_view:
            totals = self.store.read(keys)
            held = self.pending.totals(keys)
        return list(zip(words, [total + more for total, more in zip(totals, held, strict=True)], strict=True))

    def check_lookup(self, words: list[str]) -> None:
        most, longest = self.config.max_lookup_keywords, self.config.max_keyword_length
        if len(words) > most:
            raise LookupTooLarge(
                f"{len(words)} keywords in one lookup; at most {most} (COUNTER_MAX_LOOKUP_KEYWORDS). "
                "Split it into several lookups."
            )
        for word in words:
            if len(word) > longest:
                raise KeywordTooLong(
                    f"A keyword of {len(word)} characters (starting {word[:20]!r}); at most {longest} "
                    "(COUNTER_MAX_KEYWORD_LENGTH)."
                )

    def merge_rows(
        self, keys: KeyArray, slots: SlotArray, origin: int = LOCAL_ORIGIN, texts: TextColumn | None = None
    ) -> MergeResult:
        """Merge rows from a peer (node id ``origin``) or a file, by max per slot, with the keys' texts if given."""
        self.require_ready()
        return self.store.merge(keys, slots, origin=origin, texts=texts)

    def top(self, n: int, prefix: str | None = None) -> list[TopRow]:
        """The ``n`` keywords counted most, cluster-wide as this node knows it (see ``GCounterStore.top``).

        ``prefix`` is normalised as a lookup's keyword is; pending increments count.
        ``BadTopQuery`` if ``n`` is outside 1..COUNTER_MAX_TOP or the prefix is too long.
        """
        self.require_ready()
        prefix_bytes = check_top_query(self.config, self.keywords, n, prefix)
        if not len(self.pending):
            return self.store.top(n, prefix_bytes)
        with self._fold_view:
            amounts, texts = self.pending.held()
            return self.store.top(n, prefix_bytes, extra=amounts, extra_texts=texts)

    # --- pending increments -----------------------------------------------------------------------

    def fold_pending(self) -> bool:
        """Add the pending increments to this node's slot, now that it has learned its slot; True if it did.

        First a snapshot makes what the node learned from its seeds durable, so a
        restart never counts on from less. Then, with new writes waiting for a
        moment, one fold record (fsynced) carries every pending increment into the
        slot, where replication picks it up.
        """
        with self._fold_lock:
            if self.unproven is None:
                return False
            self._write_snapshot(force=True)
            with self._writes:
                self._folding = True
                self._writes.wait_for(lambda: self._writes_in_flight == 0)
            try:
                keys, amounts, texts = self.pending.arrays()
                if len(keys):
                    assert self.wal is not None
                    self.wal.append(
                        self.config.node_id,
                        keys,
                        amounts,
                        self._apply_logged,
                        kind=RecordKind.FOLD,
                        sync=True,
                        texts=texts,
                    )
                reason, self.unproven, self.unproven_since = self.unproven, None, None
                self._write_run_state(clean=False)
            finally:
                with self._writes:
                    self._folding = False
                    self._writes.notify_all()
        logger.info(
            "counting in this node's own slot from now on, %d pending keys added to it (was: %s)", len(keys), reason
        )
        return True

    def mark_clash(self, reason: str) -> None:
        """Another live process has this node's id and started first: take no more client writes."""
        if self.clash is None:
            logger.error("NODE ID CLASH: %s; refusing client writes", reason)
        self.clash = reason

    def pending_status(self) -> dict[str, Any]:
        """What GET /cluster shows of the pending increments."""
        return {
            "reason": self.unproven,
            "since": self.unproven_since,
            "keys": len(self.pending),
            "increments": self.pending.total(),
        }

    def _apply_logged(self, record: LogRecord) -> None:
        """Apply a log record that is now written (called by the log, in LSN order)."""
        if record.tag:
            # Before the increments: a retry elsewhere must never see the count without its key.
            self._remember_tag(record.tag)
        if record.kind == RecordKind.PENDING:
            self.pending.add(record.keys, record.amounts, record.lsn, record.texts)
            if record.texts is not None:
                # Keys the store already has (from peers) take their text at once, as recovery does.
                self.store.set_texts(record.keys, record.texts)
            return
        if record.kind == RecordKind.FOLD:
            with self._fold_view:
                self.store.increment_arrays(record.slot, record.keys, record.amounts, record.lsn, record.texts)
                self.pending.clear()
            return
        self.store.increment_arrays(record.slot, record.keys, record.amounts, record.lsn, record.texts)

    # --- checkpoints ---------------------------------------------------------------------------

    def snapshot_stream(self, positions: list[int] | None = None) -> Iterator[bytes]:
        """The store in snapshot format, streamed chunk by chunk (each chunk's log position into ``positions``)."""

        def chunks() -> Iterator[StoreChunk]:
            for chunk in self.store.export_chunks(with_texts=True):
                if positions is not None:
                    positions.append(chunk.lsn)
                yield chunk

        return encode_snapshot(chunks(), self.config.node_id)

    def dump(self, force: bool = False) -> DumpResult:
        """Write the snapshot file if anything changed since the last dump (or if ``force``)."""
        if not self._ready.is_set():
            # Before recovery finished (or after it failed) the store is not the node's state:
            # writing it would put an empty or partial snapshot over a good one.
            return DumpResult(written=False, keys=0, size_bytes=0, seconds=0.0)
        return self._write_snapshot(force)

    def _write_snapshot(self, force: bool) -> DumpResult:
        with self._dump_lock:
            sequence = self.store.sequence
            if self.wal is not None:
                self._log_bytes_at_dump = self.wal.bytes_appended
            if not force and sequence == self._dumped_sequence:
                return DumpResult(written=False, keys=len(self.store), size_bytes=0, seconds=0.0)
            started = time.perf_counter()
            config = self.config
            positions: list[int] = []
            written = write_snapshot_file(
                config.snapshot_path, self.snapshot_stream(positions), keep_previous=config.previous_snapshot_path
            )
            self._dumped_sequence = sequence
            # Keep the log from the older of the two snapshots on, so either can be recovered
            # from, and from the first pending increment on (no snapshot holds those).
            self._snapshot_lsns = [*self._snapshot_lsns[-1:], min(positions, default=0)]
            keep_from = min(self._snapshot_lsns) + 1
            if self.pending.first_lsn is not None:
                keep_from = min(keep_from, self.pending.first_lsn)
            # The log about to go held idempotency keys: they live on in their own file.
            self._write_idempotency_keys()
            if self.wal is not None:
                self.wal.remove_segments_before(keep_from)
        seconds = time.perf_counter() - started
        logger.debug("dumped %d keys (%d bytes) in %.3f s", written.keys, written.size_bytes, seconds)
        self.last_dump = DumpResult(written=True, keys=written.keys, size_bytes=written.size_bytes, seconds=seconds)
        return self.last_dump

    # --- idempotency keys ------------------------------------------------------------------------

    def _remember_tag(self, tag: bytes) -> None:
        self.idempotency.remember(decode_entries(tag), _now_ms())

    def keys_since(self, sequence: int, limit: int) -> tuple[list[Remembered], int, bool]:
        """Up to ``limit`` keys remembered after ``sequence``, the sequence reached, and whether that is all."""
        entries, reached = self.idempotency.since(sequence, limit)
        return entries, reached, reached >= self.idempotency.sequence

    def remember_keys(self, entries: list[Remembered]) -> None:
        """Remember keys a peer counted under: logged first, so a restart still knows them."""
        fresh = [entry for entry in entries if self.idempotency.get(entry.key, _now_ms()) is None]
        if not fresh:
            return
        self.require_ready()
        tag = b"".join(entry.encode() for entry in fresh)
        if self.wal is not None and self.config.wal:
            empty = np.empty(0, dtype=np.uint64)
            self.wal.append(self.config.node_id, empty, empty, self._apply_logged, tag=tag)
        else:
            self._remember_tag(tag)

    def _write_idempotency_keys(self) -> None:
        if self.idempotency.sequence == self._keys_written_sequence:
            return
        sequence = self.idempotency.sequence
        self.idempotency.write_file(self.config.idempotency_path)
        self._keys_written_sequence = sequence

    def _load_idempotency_keys(self) -> None:
        path = self.config.idempotency_path
        try:
            entries = IdempotencyTable.read_file(path)
        except IdempotencyFileCorrupt as error:
            # Counts are not in this file, only what retries to skip: start without it.
            aside = path.with_name(path.name + ".damaged")
            path.replace(aside)
            logger.error(
                "%s; moved to %s: retries of texts counted before the last snapshot may count again", error, aside
            )
            return
        self.idempotency.remember(entries, _now_ms())
        self._keys_written_sequence = self.idempotency.sequence

    def _load_newest_good_snapshot(self) -> tuple[Snapshot | None, bool]:
        """The current snapshot, or the previous one if the current is damaged (then True); None if none."""
        config = self.config
        try:
            return read_snapshot_file(config.snapshot_path, config.node_id), False
        except SnapshotCorrupt as error:
            previous = read_snapshot_file(config.previous_snapshot_path, config.node_id)
            if previous is None:
                raise
            logger.error("%s; recovering from the previous snapshot %s", error, config.previous_snapshot_path)
            return previous, True

    # --- the run-state file ----------------------------------------------------------------------

    @property
    def _run_state_path(self) -> Path:
        return self.config.data_dir / f"node-{self.config.node_id}.run-state"

    def _unproven_reason(self, had_state: bool, fell_back: bool) -> str | None:
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
        if not had_state:
            return "no state on disk (a new or wiped data directory)"
        previous = RunState.read(self._run_state_path)
        if previous is None:
            return "no record of how the node last stopped"
        if previous.pending:
            return "it stopped before it had learned its slot from every seed"
        if fell_back:
            return "its newest snapshot is damaged, and the previous one may predate what it learned from its seeds"
        if not previous.clean and not self.config.wal:
            return "it stopped uncleanly without a log (COUNTER_WAL=false): its counts since the last snapshot are gone"
        if not previous.clean and previous.boot_id != boot_id() and self.config.fsync == "interval":
            return "the machine restarted after an unclean stop: the log's last second may be lost"
        return None

    def _write_run_state(self, clean: bool) -> None:
        RunState(boot_id=boot_id(), clean=clean, pending=self.unproven is not None).write(self._run_state_path)

    # --- tokenizer processes ---------------------------------------------------------------------

    def _tokenizer_processes(self) -> TokenizerProcesses | None:
        """The node's tokenizer children, started on first use; None if COUNTER_TOKENIZER_PROCESSES=0."""
        if self.config.tokenizer_processes == 0:
            return None
        with self._tokenizers_lock:
            if self._tokenizers is None and not self._tokenizers_stopped:
                self._tokenizers = TokenizerProcesses(self.config.tokenizer, self.config.tokenizer_processes)
            return self._tokenizers

    def stop_tokenizer_processes(self) -> None:
        """Stop the tokenizer children; later texts are tokenized in their request thread."""
        with self._tokenizers_lock:
            children, self._tokenizers = self._tokenizers, None
            self._tokenizers_stopped = True
        if children is not None:
            children.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


_current: Node | None = None
_current_lock = threading.Lock()


def _sum_by_key(keys: list[KeyArray], amounts: list[KeyArray]) -> tuple[KeyArray, KeyArray]:
    """The distinct keys of several texts and each one's summed count (exact in uint64)."""
    if not keys:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.uint64)
    if len(keys) == 1:
        return keys[0], amounts[0]
    distinct, where = np.unique(np.concatenate(keys), return_inverse=True)
    sums = np.zeros(len(distinct), dtype=np.uint64)
    np.add.at(sums, where, np.concatenate(amounts))
    return distinct, sums


def current_node() -> Node:
    """The serving process's node, built on first use from ``settings.COUNTER``."""
    global _current
    node = _current
    if node is None:
        with _current_lock:
            if _current is None:
                from django.conf import settings

                _current = Node(settings.COUNTER)
            node = _current
    return node


def replace_node(node: Node | None) -> None:
    """Make ``node`` the process's node (None: build a new one on next use); for tests and tools."""
    global _current
    with _current_lock:
        _current = node
