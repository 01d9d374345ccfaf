"""The G-Counter store: per key, one non-negative count per replica slot.

An increment touches one slot; a read sums a key's slots; a merge keeps the
larger value of each slot, so merging is commutative, associative and
idempotent and every replica converges to the same state.

Layout, chosen for millions of keys:

* ``_keys``: a sorted numpy ``uint64`` array, and ``_slots``: a 2-D ``uint64``
  array with one row per key and one column per replica slot. At 3 slots that
  is 32 bytes per key, against several hundred for a dict of Python lists.
* ``_pending``: a small dict of keys seen since the last compaction, each with
  a Python list of slot values. New keys land here in O(1); once it holds
  ``_pending_limit()`` keys it is merged into the arrays in one sorted insert,
  so the O(n) copy is paid once per many thousands of new keys.

A request costs O(d log n) for its d distinct keys (binary searches on the
sorted array), never O(n). One lock guards everything; every public method is
safe to call from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import TooManySlots

KeyArray = npt.NDArray[np.uint64]
SlotArray = npt.NDArray[np.uint64]

# A slot column is dense (8 bytes per key), so the number of replicas a store
# accepts is bounded; an id past it is a configuration error or a bad peer.
DEFAULT_MAX_SLOTS = 256
EXPORT_CHUNK_ROWS = 65536

_PENDING_MIN = 1024
_PENDING_MAX = 65536
_EMPTY_KEYS: KeyArray = np.empty(0, dtype=np.uint64)


@dataclass(frozen=True)
class StoreChunk:
    """A run of keys in ascending order with their slot rows (``slots.shape == (len(keys), width)``)."""

    keys: KeyArray
    slots: SlotArray


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: keys received, keys whose slots grew, keys that were new."""

    received: int
    changed: int
    added: int


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
        self._check_slot(slot + 1)
        keys = np.fromiter(amounts.keys(), dtype=np.uint64, count=len(amounts))
        values = np.fromiter(amounts.values(), dtype=np.uint64, count=len(amounts))
        with self._lock:
            self._ensure_width(slot + 1)
            rows, found = self._locate(keys)
            if found.any():
                # Keys are distinct, so fancy-index addition cannot drop a duplicate.
                self._slots[rows[found], slot] += values[found]
            if not found.all():
                width = self._slots.shape[1]
                for key, value in zip(keys[~found].tolist(), values[~found].tolist(), strict=True):
                    row = self._pending.get(key)
                    if row is None:
                        row = self._pending[key] = [0] * width
                    row[slot] += value
                self._compact_if_due()

    def read(self, keys: Sequence[int]) -> list[int]:
        """The total (sum over slots) of each key, in order; unknown keys are 0."""
        if not keys:
            return []
        query = as_key_array(keys)
        with self._lock:
            rows, found = self._locate(query)
            found_rows = self._slots[rows[found]].tolist()
            pending_totals = [sum(self._pending.get(key, ())) for key in keys] if self._pending else None
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

    def merge(self, keys: KeyArray, slots: SlotArray) -> MergeResult:
        """Merge another replica's rows: per key and slot, keep the larger value.

        ``keys`` may be in any order and hold duplicates (their rows are combined by
        max first). Raises ``TooManySlots`` before changing anything if a non-zero
        value sits in a slot at or past ``max_slots``.
        """
        keys = as_key_array(keys)
        slots = np.asarray(slots, dtype=np.uint64)
        if slots.ndim != 2 or slots.shape[0] != len(keys):
            raise ValueError("merge needs one slot row per key")
        if len(keys) == 0:
            return MergeResult(0, 0, 0)
        slots = _trim_zero_columns(slots)
        self._check_slot(slots.shape[1])
        received = len(np.unique(keys))
        # An all-zero row says nothing a missing key does not; storing it would only cost memory.
        informative = slots.any(axis=1)
        if not informative.all():
            keys, slots = keys[informative], slots[informative]
        if len(keys) == 0:
            return MergeResult(received, 0, 0)
        keys, slots = _combine_duplicates(keys, slots)
        with self._lock:
            self._ensure_width(slots.shape[1])
            changed, added = self._merge_locked(keys, slots)
        return MergeResult(received=received, changed=changed, added=added)

    def export_chunks(self, chunk_rows: int = EXPORT_CHUNK_ROWS) -> Iterator[StoreChunk]:
        """Every key with its slots, ascending by key, in chunks of about ``chunk_rows`` keys.

        Each chunk is copied under the lock and the lock is released between chunks,
        so writers are never held up for more than one chunk and the extra memory is
        one chunk. A concurrent write may or may not be included; since every value
        only grows, the result is always a valid state between the start and the end.
        """
        low: int | None = 0
        while low is not None:
            with self._lock:
                start = int(np.searchsorted(self._keys, np.uint64(low)))
                end = min(start + chunk_rows, len(self._keys))
                high = int(self._keys[end]) if end < len(self._keys) else None
                keys = self._keys[start:end].copy()
                slots = self._slots[start:end].copy()
                extra = sorted(key for key in self._pending if key >= low and (high is None or key < high))
                extra_rows = [self._pending[key] for key in extra]
                width = self._slots.shape[1]
            if extra:
                keys, slots = _merge_sorted(keys, slots, extra, extra_rows, width)
            if len(keys):
                yield StoreChunk(keys, slots)
            low = high

    def memory_bytes(self) -> int:
        """Bytes held by the arrays (the pending dict is bounded and not counted)."""
        with self._lock:
            return int(self._keys.nbytes + self._slots.nbytes)

    # --- internals (call with the lock held) -------------------------------------------------

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
        count = len(self._keys)
        if count == 0:
            return np.zeros(len(keys), dtype=np.intp), np.zeros(len(keys), dtype=np.bool_)
        rows = np.minimum(np.searchsorted(self._keys, keys), count - 1)
        return rows, self._keys[rows] == keys

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
        self._pending = {}
        self._insert_new(keys, rows)

    def _insert_new(self, keys: KeyArray, rows: SlotArray) -> None:
        """Insert keys that are in neither the arrays nor pending."""
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], rows[order]
        positions = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, positions, keys)
        self._slots = np.insert(self._slots, positions, rows, axis=0)

    def _merge_locked(self, keys: KeyArray, slots: SlotArray) -> tuple[int, int]:
        width = slots.shape[1]
        rows, found = self._locate(keys)
        changed = 0
        if found.any():
            target = rows[found]
            current = self._slots[target, :width]
            merged = np.maximum(current, slots[found])
            changed += int((merged != current).any(axis=1).sum())
            self._slots[target, :width] = merged
        missing = ~found
        missing_count = int(missing.sum())
        if missing_count == 0:
            return changed, 0
        new_keys, new_rows = keys[missing], slots[missing]
        if missing_count + len(self._pending) < self._pending_limit():
            added = 0
            full_width = self._slots.shape[1]
            for key, incoming in zip(new_keys.tolist(), new_rows.tolist(), strict=True):
                row = self._pending.get(key)
                if row is None:
                    self._pending[key] = incoming + [0] * (full_width - width)
                    added += 1
                    changed += 1
                    continue
                grew = False
                for index, value in enumerate(incoming):
                    if value > row[index]:
                        row[index] = value
                        grew = True
                changed += grew
            return changed, added
        # A bulk merge (a full-state push, a new node catching up): fold pending into
        # the arrays first, so the remaining missing keys are all new.
        self._compact()
        rows, found = self._locate(new_keys)
        if found.any():
            target = rows[found]
            current = self._slots[target, :width]
            merged = np.maximum(current, new_rows[found])
            changed += int((merged != current).any(axis=1).sum())
            self._slots[target, :width] = merged
        fresh_keys = new_keys[~found]
        fresh_rows = np.zeros((len(fresh_keys), self._slots.shape[1]), dtype=np.uint64)
        fresh_rows[:, :width] = new_rows[~found]
        self._insert_new(fresh_keys, fresh_rows)
        added = len(fresh_keys)
        return changed + added, added


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
    keys: KeyArray, slots: SlotArray, extra: list[int], extra_rows: list[list[int]], width: int
) -> tuple[KeyArray, SlotArray]:
    """Merge sorted pending keys (absent from ``keys``) into a sorted chunk."""
    extra_keys = np.array(extra, dtype=np.uint64)
    extra_slots = np.array(extra_rows, dtype=np.uint64).reshape(len(extra), width)
    positions = np.searchsorted(keys, extra_keys)
    return np.insert(keys, positions, extra_keys), np.insert(slots, positions, extra_slots, axis=0)
