"""The change journal: which keys changed at which point of a store's change sequence.

Replication sends a peer the keys changed after its cursor; the journal makes
that cost O(keys changed since the cursor), not O(n). It listens to the store
(``GCounterStore.set_change_listener``): every change that changes something
has the store's next sequence number and the keys it changed, journaled with
the node it came from (so it is not echoed back to it), and a mask of the keys
whose text became known in it (one byte a key, only for changes that made a
text known): a peer is sent a key's text once, with the change that made it
known. The journal keeps at
most about ``max_keys`` keys; a cursor older than that falls back to
anti-entropy. ``incarnation`` is a random number naming this journal's
sequence space: a cursor of another incarnation means nothing here.
"""

from __future__ import annotations

import secrets
import threading
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from storage_app.core.store import GCounterStore, KeyArray, SlotArray, TextMask, sorted_unique
from storage_app.core.texts import TextColumn

DEFAULT_JOURNAL_KEYS = 2_000_000
_EMPTY_KEYS: KeyArray = np.empty(0, dtype=np.uint64)


@dataclass(frozen=True)
class ChangeSet:
    """Keys changed after a cursor, with their current slot rows.

    ``up_to`` is the sequence the set covers; ``complete`` is False when it was
    cut at the size limit and newer changes remain.
    """

    keys: KeyArray
    slots: SlotArray
    up_to: int
    complete: bool
    texts: TextColumn | None = None  # aligned with keys: the texts that became known after the cursor


class ChangeJournal:
    """The keys of a store's recent changes, by sequence number; safe to use from any thread."""

    def __init__(self, store: GCounterStore, max_keys: int = DEFAULT_JOURNAL_KEYS) -> None:
        self.store = store
        self.incarnation = secrets.randbits(64) | 1
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._limit = max_keys
        self._sequences: list[int] = []
        self._batches: list[KeyArray] = []
        self._text_masks: list[TextMask | None] = []  # aligned with each batch; None: no text became known
        self._origins: list[int] = []
        self._start = 0  # entries before this index were dropped
        self._keys = 0
        self._sequence = self._floor = 0
        start = store.set_change_listener(self._record)
        with self._lock:
            # Changes before the journal listened are not in it: the oldest cursor it can serve.
            self._floor = start
            self._sequence = max(self._sequence, start)

    @property
    def sequence(self) -> int:
        """The number of the store's latest change."""
        with self._lock:
            return self._sequence

    def wait_for_change(self, since: int, timeout: float) -> int:
        """The sequence as soon as it passes ``since``, or after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._sequence > since, timeout)
            return self._sequence

    def changes_since(self, cursor: int, max_keys: int, exclude_origin: int | None = None) -> ChangeSet | None:
        """Keys changed after sequence ``cursor``, at most about ``max_keys`` of them, with their rows now.

        Changes that came from ``exclude_origin`` are left out: that node has them.
        ``None`` when the journal no longer reaches back to ``cursor`` (or the
        cursor is from the future): the caller must fall back to anti-entropy.
        The rows are read after the keys, so they hold at least the changes up to
        ``up_to`` (every value only grows).
        """
        with self._lock:
            if cursor < self._floor or cursor > self._sequence:
                return None
            first = bisect_right(self._sequences, cursor, lo=self._start)
            batches: list[KeyArray] = []
            text_batches: list[KeyArray] = []
            taken = 0
            index = first
            while index < len(self._batches) and taken < max_keys:
                if self._origins[index] != exclude_origin:
                    batches.append(self._batches[index])
                    text_mask = self._text_masks[index]
                    if text_mask is not None:
                        text_batches.append(self._batches[index][text_mask])
                    taken += len(self._batches[index])
                index += 1
            up_to = self._sequences[index - 1] if index > first else cursor
            complete = up_to == self._sequence
        keys = sorted_unique(np.concatenate(batches)) if batches else _EMPTY_KEYS
        texts = None
        if text_batches:
            # Every key of a text batch is among ``keys`` (its batch is), so a search finds it.
            with_text = np.searchsorted(keys, sorted_unique(np.concatenate(text_batches)))
            all_texts: list[bytes | None] = [None] * len(keys)
            for position, text in zip(with_text.tolist(), self.store.texts_of(keys[with_text]), strict=True):
                all_texts[position] = text
            texts = TextColumn.from_texts(all_texts)
        return ChangeSet(keys=keys, slots=self.store.rows_of(keys), up_to=up_to, complete=complete, texts=texts)

    def _record(self, sequence: int, changed_keys: KeyArray, origin: int, text_mask: TextMask | None) -> None:
        """The store's listener (called under the store's lock, in sequence order)."""
        with self._lock:
            self._sequence = sequence
            self._sequences.append(sequence)
            self._batches.append(changed_keys)
            self._text_masks.append(text_mask)
            self._origins.append(origin)
            self._keys += len(changed_keys)
            while self._keys > self._limit and self._start < len(self._batches) - 1:
                self._keys -= len(self._batches[self._start])
                self._floor = self._sequences[self._start]
                self._batches[self._start] = _EMPTY_KEYS
                self._text_masks[self._start] = None
                self._start += 1
            if self._start > 1024 and self._start * 2 > len(self._batches):
                del self._sequences[: self._start]
                del self._batches[: self._start]
                del self._text_masks[: self._start]
                del self._origins[: self._start]
                self._start = 0
            self._changed.notify_all()
