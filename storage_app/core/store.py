"""The G-Counter store: per key, one non-negative count per replica slot.

An increment touches one slot; a read sums a key's slots; a merge keeps the
larger value of each slot, so merging is commutative, associative and
idempotent and every replica converges to the same state.

Layout, chosen for millions of keys:

* ``_keys``: a sorted numpy ``uint64`` array, and ``_slots``: a 2-D ``uint64``
  array with one row per key and one column per replica slot. At 3 slots that
  is 32 bytes per key, against several hundred for a dict of Python lists.
* ``_text_at``: beside ``_keys``, each key's offset in ``_arena``, where its
  keyword's UTF-8 text is kept (``texts.py``); ``NO_TEXT`` while unknown (a key
  merged from counter-app, or from a peer that did not send the text). A key's
  text is set once and never changes: all texts of a key are the same keyword,
  bar a CRC-64 clash, where the first one stays.
* ``_pending``: a small dict of keys seen since the last compaction, each with
  a Python list of slot values. New keys land here in O(1); once it holds
  ``_pending_limit()`` keys it is merged into the arrays in one sorted insert,
  so the O(n) copy is paid once per many thousands of new keys. Their texts
  wait in ``_pending_texts`` until then.

A request costs O(d log n) for its d distinct keys (binary searches on the
sorted array), never O(n). One lock guards everything; every public method is
safe to call from any thread.

Every call that changes something gets the next number of the store's change
``sequence`` and tells its listener (``set_change_listener``) which keys it
changed (a key whose text became known counts as changed), which of them had
their text become known (a mask beside the keys), and where the change came
from; replication keeps its change journal that way, outside the store.
``applied_lsn`` is the last write-ahead log record whose increments are in
the store; each exported chunk carries it, read under
the same lock as the rows, which is what makes recovery's replay exact.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import TooManySlots
from .texts import (
    NO_TEXT,
    OffsetArray,
    TextArena,
    TextColumn,
    column_from_arena,
    iter_entries,
    leading_bytes,
    read_entry,
    rows_with_prefix,
)

KeyArray = npt.NDArray[np.uint64]
SlotArray = npt.NDArray[np.uint64]
TextMask = npt.NDArray[np.bool_]
# (sequence, changed keys, origin, which changed keys' texts became known or None for none of them)
ChangeListener = Callable[[int, KeyArray, int, "TextMask | None"], None]

# A slot column is dense (8 bytes per key), so the number of replicas a store
# accepts is bounded; an id past it is a configuration error or a bad peer.
DEFAULT_MAX_SLOTS = 256
EXPORT_CHUNK_ROWS = 65536

LOCAL_ORIGIN = -1  # the origin of this node's own increments (and of merges from files)

_PENDING_MIN = 1024
_PENDING_MAX = 65536
_EMPTY_KEYS: KeyArray = np.empty(0, dtype=np.uint64)
_U64_MAX_INT = (1 << 64) - 1
_U64_MAX = np.uint64(_U64_MAX_INT)


@dataclass(frozen=True)
class StoreChunk:
    """A run of keys in ascending order with their slot rows (``slots.shape == (len(keys), width)``).

    ``lsn`` is the last write-ahead log record applied when the chunk was copied:
    for every key of the chunk's key range the rows hold exactly the logged
    increments up to it. ``high`` is the range's exclusive end (None: 2**64).
    """

    keys: KeyArray
    slots: SlotArray
    lsn: int = 0
    high: int | None = None
    texts: TextColumn | None = None  # with ``export_chunks(with_texts=True)``


@dataclass(frozen=True)
class TopRow:
    """A key of a top-N answer: its total and its text (None when not known)."""

    key: int
    count: int
    text: bytes | None

    def order(self) -> tuple[int, bool, bytes, int]:
        """Highest count first; equal counts by text (UTF-8 bytes, which is code point order), then
        keys without a text, by key."""
        return (-self.count, self.text is None, self.text or b"", self.key)


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: keys received, keys whose slots grew, keys that were new."""

    received: int
    changed: int
    added: int


_FEW_KEYS = 4


def _locate_in(sorted_keys: KeyArray, keys: KeyArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Row index of each of ``keys`` in ``sorted_keys``, and whether it is really there."""
    count = len(sorted_keys)
    if count == 0:
        return np.zeros(len(keys), dtype=np.intp), np.zeros(len(keys), dtype=np.bool_)
    rows = np.minimum(np.searchsorted(sorted_keys, keys), count - 1)
    return rows, sorted_keys[rows] == keys


def as_key_array(keys: Sequence[int] | KeyArray) -> KeyArray:
    """Keys as a uint64 array (Python ints must be in [0, 2**64))."""
    return np.asarray(keys, dtype=np.uint64).reshape(-1)


class GCounterStore:
    """A grow-only counter per 64-bit key, with a fixed upper bound on replica slots."""

    def __init__(self, max_slots: int = DEFAULT_MAX_SLOTS) -> None:
        self.max_slots = max_slots
        self._lock = threading.Lock()
        self._keys: KeyArray = _EMPTY_KEYS
        self._slots: SlotArray = np.zeros((0, 0), dtype=np.uint64)
        self._pending: dict[int, list[int]] = {}
        self._text_at: OffsetArray = np.empty(0, dtype=np.uint32)
        self._arena = TextArena()
        self._pending_texts: dict[int, bytes] = {}
        self._sequence = 0
        self._listener: ChangeListener | None = None
        self._applied_lsn = 0  # the last write-ahead log record whose increments are in the store

    # --- public interface ---------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys) + len(self._pending)

    @property
    def width(self) -> int:
        """The number of replica slots every key has (the highest slot ever used + 1)."""
        with self._lock:
            return int(self._slots.shape[1])

    def increment(self, slot: int, amounts: Mapping[int, int]) -> None:
        """Add ``amounts[key]`` to ``slot`` of each key; keys are distinct by construction."""
        if not amounts:
            return
        keys = np.fromiter(amounts.keys(), dtype=np.uint64, count=len(amounts))
        values = np.fromiter(amounts.values(), dtype=np.uint64, count=len(amounts))
        self.increment_arrays(slot, keys, values)

    def increment_arrays(
        self, slot: int, keys: KeyArray, values: KeyArray, lsn: int | None = None, texts: TextColumn | None = None
    ) -> None:
        """``increment`` for distinct ``keys`` and their ``values``; ``lsn`` marks the log record applied.

        ``texts`` (aligned with ``keys``) gives keys whose text is not known yet their text.
        """
        self._check_slot(slot + 1)
        with self._lock:
            if lsn is not None:
                self._applied_lsn = max(self._applied_lsn, lsn)
            if len(keys) == 0:
                return
            self._ensure_width(slot + 1)
            rows, found = self._locate(keys)
            if found.any():
                # Keys are distinct, so fancy-index assignment cannot drop a duplicate. A count
                # saturates at 2**64 - 1 instead of wrapping (a peer may have sent a huge value).
                target = rows[found]
                added = values[found]
                self._slots[target, slot] = np.minimum(self._slots[target, slot], _U64_MAX - added) + added
            if not found.all():
                width = self._slots.shape[1]
                for key, value in zip(keys[~found].tolist(), values[~found].tolist(), strict=True):
                    row = self._pending.get(key)
                    if row is None:
                        row = self._pending[key] = [0] * width
                    row[slot] = min(row[slot] + value, _U64_MAX_INT)
            text_mask = None
            if texts is not None and texts.any():
                text_mask = self._set_texts_locked(keys, texts, (rows, found))
            if not found.all():
                self._compact_if_due()
            self._record(keys, LOCAL_ORIGIN, text_mask)

    def mark_applied(self, lsn: int) -> None:
        """Every write-ahead log record up to ``lsn`` is in the store (chunks copied from now on say so)."""
        with self._lock:
            self._applied_lsn = max(self._applied_lsn, lsn)

    def read(self, keys: Sequence[int]) -> list[int]:
        """The total (sum over slots) of each key, in order; unknown keys are 0."""
        if not keys:
            return []
        query = as_key_array(keys)
        with self._lock:
            # Only the references are taken under the lock: numpy lets go of the
            # interpreter lock inside searchsorted, and a thread that holds the store's
            # lock while it waits to get the interpreter back stalls every other
            # request. Writers replace these arrays or change single elements in
            # place, so the read sees each slot as it was before or after a write.
            sorted_keys, slots = self._keys, self._slots
            pending_totals = [sum(self._pending.get(key, ())) for key in keys] if self._pending else None
        if len(keys) <= _FEW_KEYS:
            # A few keys cost less in Python than in numpy, which lets go of the
            # interpreter lock on each call and then waits behind busy threads to get it back.
            totals = []
            for position, key in enumerate(query.tolist()):
                row = bisect_left(sorted_keys, key)
                if row < len(sorted_keys) and sorted_keys[row] == key:
                    totals.append(sum(slots[row].tolist()))
                else:
                    totals.append(pending_totals[position] if pending_totals else 0)
            return totals
        rows, found = _locate_in(sorted_keys, query)
        found_rows = slots[rows[found]].tolist()
        # Sums in Python ints: a sum of uint64 slots may not fit in 64 bits.
        next_found = iter(found_rows)
        return [
            sum(next(next_found)) if is_found else (pending_totals[position] if pending_totals else 0)
            for position, is_found in enumerate(found.tolist())
        ]

    def slots_of(self, key: int) -> list[int]:
        """The slot values of one key (empty list for an unknown key)."""
        with self._lock:
            rows, found = self._locate(as_key_array([key]))
            if found[0]:
                return [int(value) for value in self._slots[rows[0]].tolist()]
            row = self._pending.get(key)
            return list(row) if row is not None else []

    def merge(
        self, keys: KeyArray, slots: SlotArray, origin: int = LOCAL_ORIGIN, texts: TextColumn | None = None
    ) -> MergeResult:
        """Merge another replica's rows: per key and slot, keep the larger value.

        ``keys`` may be in any order and hold duplicates (their rows are combined by
        max first). Raises ``TooManySlots`` before changing anything if a non-zero
        value sits in a slot at or past ``max_slots``. ``origin`` (the sending
        node's id) is journaled with the change, so it is not echoed back to it.
        ``texts`` (aligned with ``keys``) gives keys whose text is not known yet their text.
        """
        keys = as_key_array(keys)
        slots = np.asarray(slots, dtype=np.uint64)
        if slots.ndim != 2 or slots.shape[0] != len(keys):
            raise ValueError("merge needs one slot row per key")
        if texts is not None and len(texts) != len(keys):
            raise ValueError("merge needs one text (or none) per key")
        if len(keys) == 0:
            return MergeResult(0, 0, 0)
        text_keys = texts_of_keys = None
        if texts is not None and texts.any():
            # One text per key: a repeated key would put its text in the arena twice.
            with_text = np.flatnonzero(texts.lengths > 0)
            candidates = keys[with_text]
            if not bool((candidates[1:] > candidates[:-1]).all()):  # rows in key order (a snapshot's) are distinct
                _unique, first = np.unique(candidates, return_index=True)
                with_text = with_text[first]
            chosen = np.zeros(len(keys), dtype=np.bool_)
            chosen[with_text] = True
            text_keys, texts_of_keys = keys[chosen], texts.compress(chosen)
        slots = _trim_zero_columns(slots)
        self._check_slot(slots.shape[1])
        keys, slots = _combine_duplicates(keys, slots)
        received = len(keys)
        # An all-zero row says nothing a missing key does not; storing it would only cost memory.
        informative = slots.any(axis=1)
        if not informative.all():
            keys, slots = keys[informative], slots[informative]
        if len(keys) == 0 and text_keys is None:
            return MergeResult(received, 0, 0)
        with self._lock:
            self._ensure_width(slots.shape[1])
            changed_keys, added = self._merge_locked(keys, slots) if len(keys) else (_EMPTY_KEYS, 0)
            recorded, text_mask = changed_keys, None
            if text_keys is not None and texts_of_keys is not None:
                new_texts = text_keys[self._set_texts_locked(text_keys, texts_of_keys)]
                if len(new_texts):
                    recorded, text_mask = marked_union(changed_keys, new_texts)
            self._record(recorded, origin, text_mask)
        return MergeResult(received=received, changed=len(changed_keys), added=added)

    def set_texts(self, keys: KeyArray, texts: TextColumn, origin: int = LOCAL_ORIGIN) -> int:
        """Give keys of the store whose text is not known yet their text (aligned with ``keys``); return how many."""
        keys = as_key_array(keys)
        with self._lock:
            new_texts = keys[self._set_texts_locked(keys, texts)]
            self._record(new_texts, origin, np.ones(len(new_texts), dtype=np.bool_))
            return len(new_texts)

    def texts_of(self, keys: KeyArray) -> list[bytes | None]:
        """The text of each key (None where it is not known)."""
        with self._lock:
            rows, found = self._locate(keys)
            offsets = self._text_at[rows[found]]
            buffer = self._arena.buffer
            pending = {int(key): self._pending_texts.get(int(key)) for key in keys[~found].tolist()}
        found_texts = iter_entries(buffer, offsets)
        return [
            next(found_texts) if is_found else pending[key]
            for key, is_found in zip(keys.tolist(), found.tolist(), strict=True)
        ]

    def missing_texts(self, keys: KeyArray) -> npt.NDArray[np.bool_]:
        """For each key, True if its text is not known (an unknown key included)."""
        with self._lock:
            rows, found = self._locate(keys)
            missing = np.ones(len(keys), dtype=np.bool_)
            if found.any():
                missing[found] = self._text_at[rows[found]] == NO_TEXT
            if self._pending_texts and not found.all():
                for index in np.flatnonzero(~found).tolist():
                    missing[index] = int(keys[index]) not in self._pending_texts
            return missing

    @property
    def sequence(self) -> int:
        """The number of the latest change (0 for a store that never changed)."""
        with self._lock:
            return self._sequence

    def set_change_listener(self, listener: ChangeListener) -> int:
        """From now on call ``listener(sequence, changed_keys, origin, text_mask)`` for every change.

        Returns the sequence now. ``text_mask`` (aligned with ``changed_keys``, or None
        for none of them): True where the key's text became known in this change.

        The listener runs under the store's lock, in sequence order: it must be quick
        and must not call the store.
        """
        with self._lock:
            self._listener = listener
            return self._sequence

    def rows_of(self, keys: KeyArray) -> SlotArray:
        """The slot rows of ``keys`` (zeros for unknown keys), as wide as the store."""
        with self._lock:
            return self._rows_of(keys)

    def export_chunks(
        self, chunk_rows: int = EXPORT_CHUNK_ROWS, start_key: int = 0, with_texts: bool = False
    ) -> Iterator[StoreChunk]:
        """Every key with its slots, ascending by key, in chunks of about ``chunk_rows`` keys.

        ``with_texts``: each chunk has its keys' texts too.

        Each chunk is copied under the lock and the lock is released between chunks,
        so writers are never held up for more than one chunk and the extra memory is
        one chunk. A concurrent write may or may not be included; since every value
        only grows, the result is always a valid state between the start and the end.
        """
        low: int | None = start_key
        while low is not None:
            with self._lock:
                start = int(np.searchsorted(self._keys, np.uint64(low)))
                end = min(start + chunk_rows, len(self._keys))
                high = int(self._keys[end]) if end < len(self._keys) else None
                keys = self._keys[start:end].copy()
                slots = self._slots[start:end].copy()
                extra = sorted(key for key in self._pending if key >= low and (high is None or key < high))
                extra_rows = [list(self._pending[key]) for key in extra]  # copies: merges extend them in place
                width = self._slots.shape[1]
                lsn = self._applied_lsn
                if with_texts:
                    # Entries already written never change, so they are read after the lock is let go.
                    offsets, buffer = self._text_at[start:end].copy(), self._arena.buffer
                    extra_texts = [self._pending_texts.get(key) for key in extra]
            texts = None
            if with_texts:
                texts = column_from_arena(buffer, offsets)
            if extra:
                keys, slots, texts = _merge_sorted(
                    keys, slots, extra, extra_rows, width, texts, extra_texts if with_texts else None
                )
            yield StoreChunk(keys, slots, lsn=lsn, high=high, texts=texts)
            low = high

    def top(
        self,
        n: int,
        prefix: bytes | None = None,
        extra: Mapping[int, int] | None = None,
        extra_texts: Mapping[int, bytes] | None = None,
    ) -> list[TopRow]:
        """The ``n`` keys with the highest totals, highest first; ties in the order of ``TopRow.order``.

        ``extra`` adds amounts held outside the store (a node's pending
        increments; ``extra_texts`` holds texts of such keys the store lacks).
        With ``prefix``, only keys whose text starts with those UTF-8 bytes.
        Keys whose total is 0 are never listed. The lock is held only to take
        references; the ranking runs on those, so writers are not held up.
        """
        with self._lock:
            keys, slots, text_at = self._keys, self._slots, self._text_at
            buffer, written = self._arena.buffer, self._arena.used
            pending_now, pending_texts_now = self._pending, self._pending_texts
        # Copied after the lock: a dict of int keys is copied in one C call that no other thread
        # interleaves with, and a compaction replaces these dicts instead of emptying them, so the
        # copies hold at least every key that was outside the arrays taken above.
        pending, pending_texts = dict(pending_now), dict(pending_texts_now)
        # A text set after the lock was let go may sit in a newer, larger arena than ``buffer``:
        # it counts as not known yet (as it was when the references were taken).
        texts = _TextsAsTaken(buffer, text_at, written)
        extra = extra or {}
        extra_texts = extra_texts or {}
        totals = _totals(slots)
        if extra:
            extra_keys = as_key_array(list(extra))
            extra_rows, extra_found = _locate_in(keys, extra_keys)
            if extra_found.any():
                added = np.array([extra[key] for key in extra_keys[extra_found].tolist()], dtype=np.uint64)
                target = extra_rows[extra_found]
                totals[target] = np.minimum(totals[target], _U64_MAX - added) + added
        if prefix is None:
            rows, values = _within_reach(np.arange(len(totals)), totals, n)
        else:
            rows = rows_with_prefix(buffer, text_at, prefix, written)
            rows, values = _within_reach(rows, totals[rows], n)  # drops the rows whose total is 0
        chosen = _highest_rows(keys, texts, rows, values, n)
        listed = [
            TopRow(key, sum(row) + extra.get(key, 0), text)
            for key, row, text in zip(
                keys[chosen].tolist(), slots[chosen].tolist(), iter_entries(buffer, texts.offsets(chosen)), strict=True
            )
        ]
        # Keys outside the arrays: new since the last compaction, or held only in ``extra``. One
        # below the lowest of n rows listed already cannot get in.
        floor = max(min((row.count for row in listed), default=0) if len(listed) >= n else 0, 1)
        outside: list[tuple[int, int]]
        if extra:
            totals_of = {key: sum(row) + extra.get(key, 0) for key, row in pending.items()}
            for key, amount in extra.items():
                if key not in totals_of and not _contains(keys, key):
                    totals_of[key] = amount
            outside = [(key, total) for key, total in totals_of.items() if total >= floor]
        else:
            # Sums in C (``map``), one comparison each in Python: there may be tens of thousands of such keys.
            sums = zip(pending, map(sum, pending.values()), strict=True)
            outside = [(key, total) for key, total in sums if total >= floor]
        for key, total in outside:
            text = pending_texts.get(key) or extra_texts.get(key)
            if prefix is None or (text is not None and text.startswith(prefix)):
                listed.append(TopRow(key, total, text))
        listed.sort(key=TopRow.order)
        return listed[:n]

    def memory_bytes(self) -> int:
        """Bytes held by the arrays and the texts (the pending dicts are bounded and not counted)."""
        with self._lock:
            return int(self._keys.nbytes + self._slots.nbytes) + self._text_bytes_locked()

    def text_memory_bytes(self) -> int:
        """Bytes held by the keyword texts: the offsets beside the keys and the written part of the arena."""
        with self._lock:
            return self._text_bytes_locked()

    def compact(self) -> None:
        """Move the keys new since the last compaction into the arrays now (the store does it on its own)."""
        with self._lock:
            self._compact()

    def _text_bytes_locked(self) -> int:
        return int(self._text_at.nbytes) + self._arena.nbytes

    # --- internals (call with the lock held) -------------------------------------------------

    def _record(self, changed_keys: KeyArray, origin: int, text_mask: TextMask | None = None) -> None:
        """Give a change its sequence number and tell the listener which keys (and texts) it changed."""
        if len(changed_keys) == 0:
            return
        self._sequence += 1
        if self._listener is not None:
            if text_mask is not None and not text_mask.any():
                text_mask = None
            self._listener(self._sequence, changed_keys, origin, text_mask)

    def _rows_of(self, keys: KeyArray) -> SlotArray:
        width = self._slots.shape[1]
        rows, found = self._locate(keys)
        result = np.zeros((len(keys), width), dtype=np.uint64)
        result[found] = self._slots[rows[found]]
        if self._pending and not found.all():
            for index in np.flatnonzero(~found).tolist():
                row = self._pending.get(int(keys[index]))
                if row is not None:
                    result[index] = row
        return result

    def _check_slot(self, width: int) -> None:
        if width > self.max_slots:
            raise TooManySlots(
                f"replica slot {width - 1} is past the limit of {self.max_slots} slots (ids 0..{self.max_slots - 1})"
            )

    def _ensure_width(self, width: int) -> None:
        current = self._slots.shape[1]
        if width <= current:
            return
        self._slots = np.pad(self._slots, ((0, 0), (0, width - current)))
        for row in self._pending.values():
            row.extend([0] * (width - current))

    def _locate(self, keys: KeyArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """Row index of each key in the arrays, and whether it is really there."""
        return _locate_in(self._keys, keys)

    def _pending_limit(self) -> int:
        return max(_PENDING_MIN, min(len(self._keys) // 32, _PENDING_MAX))

    def _compact_if_due(self) -> None:
        if len(self._pending) >= self._pending_limit():
            self._compact()

    def _compact(self) -> None:
        """Move every pending key into the sorted arrays with one insert."""
        if not self._pending:
            return
        keys = np.fromiter(self._pending.keys(), dtype=np.uint64, count=len(self._pending))
        rows = np.array(list(self._pending.values()), dtype=np.uint64).reshape(len(keys), self._slots.shape[1])
        offsets = np.full(len(keys), NO_TEXT, dtype=np.uint32)
        if self._pending_texts:
            column = TextColumn.from_texts([self._pending_texts.get(key) for key in self._pending])
            known = column.lengths > 0
            offsets[known] = self._arena.extend(column.compress(known))
        self._pending, self._pending_texts = {}, {}
        self._insert_new(keys, rows, offsets)

    def _insert_new(self, keys: KeyArray, rows: SlotArray, offsets: OffsetArray | None = None) -> None:
        """Insert keys that are in neither the arrays nor pending (with their texts' arena offsets)."""
        if offsets is None:
            offsets = np.full(len(keys), NO_TEXT, dtype=np.uint32)
        order = np.argsort(keys, kind="stable")
        keys, rows, offsets = keys[order], rows[order], offsets[order]
        positions = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, positions, keys)
        self._slots = np.insert(self._slots, positions, rows, axis=0)
        self._text_at = np.insert(self._text_at, positions, offsets)

    def _set_texts_locked(
        self,
        keys: KeyArray,
        texts: TextColumn,
        located: tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]] | None = None,
    ) -> TextMask:
        """``set_texts`` with the lock held (``located``: ``_locate(keys)`` if the caller has it).

        Returns a mask aligned with ``keys``: True where the key's text became known.
        """
        rows, found = located if located is not None else self._locate(keys)
        given = texts.lengths > 0
        newly_known = found & given
        newly_known[newly_known] = self._text_at[rows[newly_known]] == NO_TEXT
        if newly_known.any():
            # Rows are distinct (keys are), so the fancy assignment sets every one.
            self._text_at[rows[newly_known]] = self._arena.extend(texts.compress(newly_known))
        elsewhere = ~found & given
        if elsewhere.any() and self._pending:
            positions = np.flatnonzero(elsewhere).tolist()
            for position, key, text in zip(
                positions, keys[elsewhere].tolist(), texts.compress(elsewhere).texts(), strict=True
            ):
                if key in self._pending and key not in self._pending_texts and text:
                    self._pending_texts[key] = text
                    newly_known[position] = True
        return newly_known

    def _merge_locked(self, keys: KeyArray, slots: SlotArray) -> tuple[KeyArray, int]:
        """Merge rows by max; return the keys whose slots grew (new keys included) and the count of new keys."""
        width = slots.shape[1]
        rows, found = self._locate(keys)
        changed: list[KeyArray] = []
        if found.any():
            changed.append(self._max_into(rows[found], keys[found], slots[found], width))
        missing = ~found
        missing_count = int(missing.sum())
        if missing_count == 0:
            return _concat(changed), 0
        new_keys, new_rows = keys[missing], slots[missing]
        if missing_count + len(self._pending) < self._pending_limit():
            added = 0
            grown: list[int] = []
            full_width = self._slots.shape[1]
            for key, incoming in zip(new_keys.tolist(), new_rows.tolist(), strict=True):
                row = self._pending.get(key)
                if row is None:
                    self._pending[key] = incoming + [0] * (full_width - width)
                    added += 1
                    grown.append(key)
                    continue
                grew = False
                for index, value in enumerate(incoming):
                    if value > row[index]:
                        row[index] = value
                        grew = True
                if grew:
                    grown.append(key)
            changed.append(np.array(grown, dtype=np.uint64))
            return _concat(changed), added
        # A bulk merge (a full-state push, a new node catching up): fold pending into
        # the arrays first, so the remaining missing keys are all new.
        self._compact()
        rows, found = self._locate(new_keys)
        if found.any():
            changed.append(self._max_into(rows[found], new_keys[found], new_rows[found], width))
        fresh_keys = new_keys[~found]
        fresh_rows = np.zeros((len(fresh_keys), self._slots.shape[1]), dtype=np.uint64)
        fresh_rows[:, :width] = new_rows[~found]
        self._insert_new(fresh_keys, fresh_rows)
        changed.append(fresh_keys)
        return _concat(changed), len(fresh_keys)

    def _max_into(self, target: npt.NDArray[np.intp], keys: KeyArray, incoming: SlotArray, width: int) -> KeyArray:
        """Max-merge ``incoming`` into rows ``target``; return the keys whose row grew."""
        current = self._slots[target, :width]
        merged = np.maximum(current, incoming)
        grew = (merged != current).any(axis=1)
        self._slots[target, :width] = merged
        grown: KeyArray = keys[grew]
        return grown


def _totals(slots: SlotArray) -> KeyArray:
    """Each row's sum, saturating at 2**64 - 1 (a ranking key; exact sums are taken per listed row)."""
    width = slots.shape[1]
    if width and int(slots.max(initial=0)) <= _U64_MAX_INT // width:
        sums: KeyArray = slots.sum(axis=1, dtype=np.uint64)  # no sum can wrap
        return sums
    totals = np.zeros(slots.shape[0], dtype=np.uint64)
    for column in range(slots.shape[1]):
        values = slots[:, column]
        totals = np.minimum(totals, _U64_MAX - values) + values
    return totals


def _contains(sorted_keys: KeyArray, key: int) -> bool:
    row = bisect_left(sorted_keys, key)
    return row < len(sorted_keys) and int(sorted_keys[row]) == key


def _within_reach(rows: npt.NDArray[np.intp], values: KeyArray, n: int) -> tuple[npt.NDArray[np.intp], KeyArray]:
    """The ``rows`` (and their ``values``) that may be among the n highest non-zero values.

    While more than 8n remain, only those above the mean stay, if at least n
    are: the n-th highest value is then above the mean too, so no row of the
    top n, nor one tied with its last, is dropped. A few passes leave a small
    set to partition, instead of every key of the store.
    """
    while len(values) > 8 * n:
        above = values > values.mean()
        if int(np.count_nonzero(above)) < n:
            break
        rows, values = rows[above], values[above]
    nonzero = values > 0
    return rows[nonzero], values[nonzero]


@dataclass(frozen=True)
class _TextsAsTaken:
    """The texts as ``top`` took them under the lock: an offset at or past ``written`` is not known yet."""

    buffer: npt.NDArray[np.uint8]
    text_at: OffsetArray
    written: int

    def offsets(self, rows: npt.NDArray[np.intp]) -> OffsetArray:
        """The offsets of ``rows``, ``NO_TEXT`` where the text was not known when taken."""
        offsets = self.text_at[rows]
        return np.where(offsets < self.written, offsets, np.uint32(NO_TEXT)).astype(np.uint32, copy=False)


def _highest_rows(
    keys: KeyArray, texts: _TextsAsTaken, rows: npt.NDArray[np.intp], values: KeyArray, n: int
) -> npt.NDArray[np.intp]:
    """The ``n`` of ``rows`` first in ``TopRow.order`` (unsorted), by ``values``, without looking at every text.

    Every row above the n-th highest value is in; of the rows tied at it, the
    ones whose texts come first fill the rest.
    """
    if len(rows) <= n:
        return rows
    cut = np.partition(values, len(values) - n)[len(values) - n]
    above = rows[values > cut]
    tied = rows[values == cut]
    return np.concatenate((above, _first_by_text(keys, texts, tied, n - len(above))))


def _first_by_text(
    keys: KeyArray, texts: _TextsAsTaken, rows: npt.NDArray[np.intp], wanted: int
) -> npt.NDArray[np.intp]:
    """The ``wanted`` rows whose texts come first (keys without a text last, by key)."""
    if len(rows) <= wanted:
        return rows
    # Compare the first 8 bytes of every text at once; only rows that tie on them
    # at the boundary need their whole texts compared.
    offsets = texts.offsets(rows)
    leads = leading_bytes(texts.buffer, offsets)
    boundary_lead = np.partition(leads, wanted - 1)[wanted - 1]
    sure = rows[leads < boundary_lead]
    at_boundary = leads == boundary_lead
    boundary = rows[at_boundary]
    still = wanted - len(sure)
    if boundary_lead == _U64_MAX:  # no texts: by key
        boundary = boundary[np.argsort(keys[boundary], kind="stable")]
    else:
        whole_texts = [read_entry(texts.buffer, offset) for offset in offsets[at_boundary].tolist()]
        boundary = boundary[sorted(range(len(boundary)), key=whole_texts.__getitem__)]
    return np.concatenate((sure, boundary[:still]))


def _trim_zero_columns(slots: SlotArray) -> SlotArray:
    """Drop trailing all-zero slot columns, so a long zero-padded row widens nothing."""
    width = slots.shape[1]
    while width > 0 and not slots[:, width - 1].any():
        width -= 1
    return slots[:, :width]


def _combine_duplicates(keys: KeyArray, slots: SlotArray) -> tuple[KeyArray, SlotArray]:
    """Sort by key and combine rows of a repeated key by max per slot."""
    order = np.argsort(keys, kind="stable")
    keys, slots = keys[order], slots[order]
    if len(keys) < 2 or bool((keys[1:] != keys[:-1]).all()):
        return keys, slots
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    if slots.shape[1] == 0:
        return keys[starts], slots[starts]
    return keys[starts], np.maximum.reduceat(slots, starts, axis=0)


def _merge_sorted(
    keys: KeyArray,
    slots: SlotArray,
    extra: list[int],
    extra_rows: list[list[int]],
    width: int,
    texts: TextColumn | None,
    extra_texts: list[bytes | None] | None,
) -> tuple[KeyArray, SlotArray, TextColumn | None]:
    """Merge sorted pending keys (absent from ``keys``) and their texts into a sorted chunk."""
    extra_keys = np.array(extra, dtype=np.uint64)
    extra_slots = np.array(extra_rows, dtype=np.uint64).reshape(len(extra), width)
    positions = np.searchsorted(keys, extra_keys)
    merged_texts = None
    if texts is not None and extra_texts is not None:
        all_texts = texts.texts()
        for shift, (position, text) in enumerate(zip(positions.tolist(), extra_texts, strict=True)):
            all_texts.insert(position + shift, text)
        merged_texts = TextColumn.from_texts(all_texts)
    return np.insert(keys, positions, extra_keys), np.insert(slots, positions, extra_slots, axis=0), merged_texts


def rows_array(rows: Sequence[Sequence[int]]) -> SlotArray:
    """Slot rows of different lengths as one array, the short ones padded with zero slots."""
    width = max((len(row) for row in rows), default=0)
    if all(len(row) == width for row in rows):
        return np.array(rows, dtype=np.uint64).reshape(len(rows), width)
    slots = np.zeros((len(rows), width), dtype=np.uint64)
    for index, row in enumerate(rows):
        slots[index, : len(row)] = row
    return slots


def stack_rows(blocks: Sequence[SlotArray]) -> SlotArray:
    """Blocks of slot rows one under the other, the narrower ones padded with zero slots."""
    width = max((block.shape[1] for block in blocks), default=0)
    stacked = np.zeros((sum(len(block) for block in blocks), width), dtype=np.uint64)
    row = 0
    for block in blocks:
        stacked[row : row + len(block), : block.shape[1]] = block
        row += len(block)
    return stacked


def sorted_unique(keys: KeyArray) -> KeyArray:
    """The distinct ``keys``, ascending.

    One sort and a comparison of neighbours. ``np.unique`` gives the same, but
    numpy 2 hashes the keys for it, which on a large array of uint64 keys is
    many times slower than sorting them.
    """
    ordered = np.sort(keys)
    if len(ordered) < 2:
        return ordered
    distinct = np.empty(len(ordered), dtype=np.bool_)
    distinct[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=distinct[1:])
    return ordered[distinct]


def marked_union(keys: KeyArray, marked: KeyArray) -> tuple[KeyArray, TextMask]:
    """The distinct keys of both (ascending), and True where the key is one of ``marked`` (distinct)."""
    union = sorted_unique(np.concatenate((keys, marked)))
    mask = np.zeros(len(union), dtype=np.bool_)
    mask[np.searchsorted(union, np.sort(marked))] = True  # sorted queries: a sequential walk, not random probes
    return union, mask


def _concat(parts: list[KeyArray]) -> KeyArray:
    parts = [part for part in parts if len(part)]
    if not parts:
        return _EMPTY_KEYS
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
