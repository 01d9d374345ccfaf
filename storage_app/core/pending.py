"""Pending increments: this node's own counts that wait to be added to its slot.

A node that cannot prove its own slot complete (a new or wiped data directory,
or a machine restart that may have taken the log's last second) still takes
every write. Each write is logged and kept here, beside the store, instead of
in the node's slot: the peers may hold a higher value of that slot than the
node's disk does, and the store's max-merge would swallow increments counted
on from the lower one. Once the node has learned its slot from every seed, the
pending increments are folded in (slot = the highest value any copy holds,
plus what is pending) and replicated from then on.

Memory is one dict entry per distinct keyword written while pending, and the
texts of those keywords the store did not know.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .store import KeyArray
from .texts import TextColumn

_U64_MAX = (1 << 64) - 1


class PendingIncrements:
    """A thread-safe map of key to pending amount, with the first LSN and time it was non-empty."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._amounts: dict[int, int] = {}
        self._texts: dict[int, bytes] = {}
        self.first_lsn: int | None = None  # the oldest log record whose increments are here
        self.since: float | None = None  # Unix time the first of them arrived

    def __len__(self) -> int:
        with self._lock:
            return len(self._amounts)

    def add(self, keys: KeyArray, amounts: KeyArray, lsn: int, texts: TextColumn | None = None) -> None:
        """Hold ``amounts[i]`` more for ``keys[i]`` (saturating at 2**64 - 1), from log record ``lsn``.

        ``texts`` (aligned with ``keys``): the texts of keys the store did not know.
        """
        if len(keys) == 0:
            return
        with self._lock:
            held = self._amounts
            for key, amount in zip(keys.tolist(), amounts.tolist(), strict=True):
                held[key] = min(held.get(key, 0) + amount, _U64_MAX)
            if texts is not None and texts.any():
                for key, text in zip(keys.tolist(), texts.texts(), strict=True):
                    if text:
                        self._texts.setdefault(key, text)
            if self.first_lsn is None:
                self.first_lsn = lsn
                self.since = time.time()

    def totals(self, keys: Sequence[int]) -> list[int]:
        """The pending amount of each key, in order (0 for a key with none)."""
        with self._lock:
            held = self._amounts
            return [held.get(key, 0) for key in keys] if held else [0] * len(keys)

    def has_text(self, keys: KeyArray) -> npt.NDArray[np.bool_]:
        """For each key, whether a text is held for it here."""
        with self._lock:
            texts = self._texts
            return np.fromiter((key in texts for key in keys.tolist()), dtype=np.bool_, count=len(keys))

    def held(self) -> tuple[dict[int, int], dict[int, bytes]]:
        """Copies of every pending amount and of the texts held, by key."""
        with self._lock:
            return dict(self._amounts), dict(self._texts)

    def arrays(self) -> tuple[KeyArray, KeyArray, TextColumn]:
        """Every pending key, its amount and its text (where one is held), keys ascending."""
        with self._lock:
            keys = np.fromiter(self._amounts.keys(), dtype=np.uint64, count=len(self._amounts))
            amounts = np.fromiter(self._amounts.values(), dtype=np.uint64, count=len(self._amounts))
            texts = dict(self._texts)
        order = np.argsort(keys)
        keys = keys[order]
        return keys, amounts[order], TextColumn.from_texts([texts.get(key) for key in keys.tolist()])

    def total(self) -> int:
        """The sum of every pending amount (the increments not yet in the slot)."""
        with self._lock:
            return sum(self._amounts.values())

    def clear(self) -> None:
        with self._lock:
            self._amounts = {}
            self._texts = {}
            self.first_lsn = None
            self.since = None
