"""The node's figures over the last minutes, for the dashboard's charts.

A fixed number of samples taken at a fixed interval (a ring: the oldest goes
when a new one comes), each holding running totals. Rates are worked out
between neighbouring samples; a total that went down (runsync restarted and
counts its bytes from zero again) gives a rate of 0 for that step, never a
negative one.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """The node's running totals at one moment."""

    time: float  # Unix time
    keys: int
    texts: int  # texts counted since the worker started
    tokens: int
    sync_bytes: int  # sync bytes sent and received, over every peer, since runsync started


class History:
    """The last ``capacity`` samples; safe from any thread."""

    def __init__(self, interval: float, capacity: int) -> None:
        if interval <= 0 or capacity < 2:
            raise ValueError("a history needs a positive interval and room for two samples")
        self.interval = interval
        self.capacity = capacity
        self._samples: deque[Sample] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)

    def points(self) -> list[dict[str, Any]]:
        """One point per sample, oldest first: its time and keys, and the rates since the sample before it.

        The first sample has no rates (``None``): there is nothing to measure them against.
        """
        with self._lock:
            samples = list(self._samples)
        points: list[dict[str, Any]] = []
        previous: Sample | None = None
        for sample in samples:
            point: dict[str, Any] = {
                "time": sample.time,
                "keys": sample.keys,
                "texts_per_second": None,
                "tokens_per_second": None,
                "sync_bytes_per_second": None,
            }
            if previous is not None and sample.time > previous.time:
                elapsed = sample.time - previous.time
                point["texts_per_second"] = max(0, sample.texts - previous.texts) / elapsed
                point["tokens_per_second"] = max(0, sample.tokens - previous.tokens) / elapsed
                point["sync_bytes_per_second"] = max(0, sample.sync_bytes - previous.sync_bytes) / elapsed
            points.append(point)
            previous = sample
        return points
