"""Requests per client address, as token buckets (COUNTER_RATE_LIMIT, COUNTER_RATE_BURST)."""

from __future__ import annotations

import threading
from collections import OrderedDict


class RateLimiter:
    """Each client address has a bucket of ``burst`` requests that refills at ``rate`` per second.

    At most ``max_clients`` buckets are kept; past that the bucket used least
    recently is forgotten, and its client starts again with a full bucket.
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)
        self._lock = threading.Lock()

    def wait_for(self, address: str, now: float) -> float:
        """Take one request from ``address``'s bucket: 0.0 if allowed, else the seconds until it would be."""
        with self._lock:
            tokens, at = self._buckets.pop(address, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[address] = (tokens, now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait
