"""Pushing this node's state to its seeds, and remembering how each seed is doing.

Each seed gets its own HTTP session and its own thread per round, with a
connect and a read timeout, so one slow or dead seed never holds up the
others or the loop. A seed going down is logged once (then at most once a
minute while it stays down) and coming back is logged once.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
STILL_DOWN_LOG_EVERY = 60.0


@dataclass
class PeerStatus:
    """What this node knows of one seed."""

    url: str
    reachable: bool | None = None
    last_success: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    pushes: int = 0
    bytes_sent: int = 0
    _last_failure_log: float = 0.0


class LegacyPusher:
    """Sends counter-app format bodies to ``POST <seed>/sync`` for every seed."""

    def __init__(self, seeds: tuple[str, ...], timeout: float) -> None:
        self.timeout = timeout
        self.peers = {url: PeerStatus(url) for url in seeds}
        self._sessions = {url: requests.Session() for url in seeds}
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(seeds)), thread_name_prefix="push")

    def push_all(self, body: bytes) -> dict[str, bool]:
        """Push ``body`` to every seed at once; return which seeds took it."""
        futures = {url: self._pool.submit(self._push_one, url, body) for url in self.peers}
        return {url: future.result() for url, future in futures.items()}

    def _push_one(self, url: str, body: bytes) -> bool:
        status = self.peers[url]
        try:
            response = self._sessions[url].post(
                url + "/sync",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=(CONNECT_TIMEOUT, self.timeout),
            )
            if response.status_code != 200:
                raise RuntimeError(f"answered {response.status_code}: {response.text[:200]}")
        except (requests.RequestException, RuntimeError) as error:
            self._note_failure(status, str(error))
            return False
        if status.reachable is False:
            logger.info("seed %s is reachable again after %d failed pushes", url, status.consecutive_failures)
        status.reachable = True
        status.last_success = time.time()
        status.last_error = None
        status.consecutive_failures = 0
        status.pushes += 1
        status.bytes_sent += len(body)
        return True

    def _note_failure(self, status: PeerStatus, error: str) -> None:
        now = time.monotonic()
        if status.reachable is not False:
            logger.warning("seed %s is unreachable, retrying every round: %s", status.url, error)
            status._last_failure_log = now
        elif now - status._last_failure_log >= STILL_DOWN_LOG_EVERY:
            failures = status.consecutive_failures + 1
            logger.warning("seed %s still unreachable (%d failed pushes): %s", status.url, failures, error)
            status._last_failure_log = now
        status.reachable = False
        status.last_error = error
        status.consecutive_failures += 1

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for session in self._sessions.values():
            session.close()
