"""Pending increments: this node's own counts that wait to be added to its slot.

A node that cannot prove its own slot complete (a new or wiped data directory,
or a machine restart that may have taken the log's last second) still takes
every write. Each write is logged and kept here, beside the store, instead of
in the node's slot: the peers may hold a higher value of that slot than the
node's disk does, and the store's max-merge would swallow increments counted
on from the lower one. Once the node has learned its slot from every seed, the
pending increments are folded in (slot = the highest value any copy holds,
plus what is pending) and replicated from then on.

Memory is one dict entry per distinct keyword written while pending.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from .store import KeyArray

_U64_MAX = (1 << 64) - 1


class PendingIncrements:
    """A thread-safe map of key to pending amount, with the first LSN and time it was non-empty."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._amounts: dict[int, int] = {}
        self.first_lsn: int | None = None  # the oldest log record whose increments are here
        self.since: float | None = None  # Unix time the first of them arrived

    def __len__(self) -> int:
        with self._lock:
            return len(self._amounts)

    def add(self, keys: KeyArray, amounts: KeyArray, lsn: int) -> None:
        """Hold ``amounts[i]`` more for ``keys[i]`` (saturating at 2**64 - 1), from log record ``lsn``."""
        if len(keys) == 0:
            return
        with self._lock:
            held = self._amounts
            for key, amount in zip(keys.tolist(), amounts.tolist(), strict=True):
                held[key] = min(held.get(key, 0) + amount, _U64_MAX)
            if self.first_lsn is None:
                self.first_lsn = lsn
                self.since = time.time()

    def totals(self, keys: Sequence[int]) -> list[int]:
        """The pending amount of each key, in order (0 for a key with none)."""
        with self._lock:
            held = self._amounts
            return [held.get(key, 0) for key in keys] if held else [0] * len(keys)

    def arrays(self) -> tuple[KeyArray, KeyArray]:
        """Every pending key and its amount, keys ascending."""
        with self._lock:
            keys = np.fromiter(self._amounts.keys(), dtype=np.uint64, count=len(self._amounts))
            amounts = np.fromiter(self._amounts.values(), dtype=np.uint64, count=len(self._amounts))
        order = np.argsort(keys)
        return keys[order], amounts[order]

    def total(self) -> int:
        """The sum of every pending amount (the increments not yet in the slot)."""
        with self._lock:
            return sum(self._amounts.values())

    def clear(self) -> None:
        with self._lock:
            self._amounts = {}
            self.first_lsn = None
            self.since = None
