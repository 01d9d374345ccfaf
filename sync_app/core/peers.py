"""runsync's side of each seed: how to talk to it, when to try again, what to log, what it taught us.

``PeerLink`` is one seed: a native Counter node (a ``PeerSession`` of deltas
and anti-entropy) or a counter-app node (full-state pushes, probed again for
the native route now and then), its exponential backoff, its log throttling,
and whether it is this very node. ``learned_from_every_seed`` is the rule a
node with pending increments waits for. Time comes from an injected clock, so
all of it runs in tests without processes or sleeps.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from storage_app.core.errors import CounterError
from storage_app.core.node_client import NodeError, is_connection_refused
from sync_app.core.protocol import Message
from sync_app.core.replication import LocalNode, PeerSession, PeerStatus
from sync_app.core.transport import PeerHttpError

logger = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
# A refused connection (nothing listens yet: a seed still starting) costs nothing
# to retry, and a seed that starts late should be met within seconds, not 30.
REFUSED_BACKOFF = 2.0
STILL_DOWN_LOG_EVERY = 60.0
NATIVE_PROBE_EVERY = 60.0


class SeedTransport(Protocol):
    """A seed's sync port (``HttpPeer``)."""

    url: str
    bytes_sent: int
    bytes_received: int

    def send(self, message: Message) -> Message: ...

    def push_legacy(self, body: bytes) -> None: ...


class PeerLink:
    """One seed or member: its mode (native, legacy, refused, self, left), its session, its backoff."""

    def __init__(
        self,
        transport: SeedTransport,
        interval: float,
        anti_entropy_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = transport
        self.clock = clock
        self.session = PeerSession(transport, anti_entropy_interval=anti_entropy_interval, clock=clock)
        self.interval = interval
        self.next_attempt = 0.0
        self.next_native_probe = 0.0
        self.last_down_log = 0.0
        self.last_error_logged: str | None = None
        # The node's change sequence and the clock when the last round started.
        self.round_started_at = (-1, -float("inf"))

    @property
    def status(self) -> PeerStatus:
        return self.session.status

    def has_news(self, sequence: int) -> bool:
        """Is a round due, the node being at change ``sequence``? It is when the node changed since
        the last round started, or ``interval`` seconds have passed since then."""
        started_sequence, started = self.round_started_at
        return sequence > started_sequence or self.clock() - started >= self.interval

    def next_due(self) -> float:
        """The clock time at which a round is due even without a change."""
        return self.round_started_at[1] + self.interval

    def starting_round(self, sequence: int) -> None:
        """Note that a round starts now, with the node at change ``sequence``."""
        self.round_started_at = (sequence, self.clock())

    def run(self, local: LocalNode, legacy_body: Callable[[], bytes], final: bool = False) -> str:
        """One round with this seed; returns what happened (for the round's summary).

        A seed in backoff is skipped, except in the final round at shutdown; a seed
        that is this node itself is never contacted again.
        """
        now = self.clock()
        if self.status.mode in ("self", "left", "forgotten"):
            return self.status.mode
        if now < self.next_attempt and not final:
            return "waiting"
        try:
            return self._run(local, legacy_body, now)
        except NodeError as error:
            # Our own node is starting or stopping: not the seed's fault, nothing to count against it.
            logger.debug("round with %s skipped: %s", self.http.url, error)
            return "node unavailable"

    def _run(self, local: LocalNode, legacy_body: Callable[[], bytes], now: float) -> str:
        status = self.status
        try:
            if status.mode == "legacy" and now < self.next_native_probe:
                self.http.push_legacy(legacy_body())
            else:
                try:
                    self.session.run_round(local)
                    status.mode = "native"
                except PeerHttpError as error:
                    if error.status != 404:
                        raise
                    if status.mode != "legacy":
                        logger.info("seed %s has no native sync route: syncing with it as counter-app", self.http.url)
                    status.mode = "legacy"
                    self.next_native_probe = now + NATIVE_PROBE_EVERY
                    self.http.push_legacy(legacy_body())
        except (requests.RequestException, PeerHttpError, CounterError) as error:
            self.failed(error)
            return status.mode if status.mode == "self" else "failed"
        self.succeeded()
        return status.mode

    def succeeded(self) -> None:
        status = self.status
        if status.reachable is False:
            logger.info(
                "seed %s is reachable again after %d failed rounds",
                self.http.url,
                status.consecutive_failures,
                extra={
                    "fields": {
                        "peer": self.http.url,
                        "peer_id": status.node_id,
                        "state": "up",
                        "failed_rounds": status.consecutive_failures,
                    }
                },
            )
        status.reachable = True
        status.last_success = time.time()
        status.last_error = None
        status.consecutive_failures = 0
        status.bytes_sent, status.bytes_received = self.http.bytes_sent, self.http.bytes_received
        self.next_attempt = 0.0
        self.last_error_logged = None

    def failed(self, error: Exception) -> None:
        status = self.status
        message = str(error)
        now = self.clock()
        if isinstance(error, PeerHttpError) and error.code == "own_address":
            # A StatefulSet's pod 0 lists itself; there is nothing to sync with there.
            logger.info("seed %s is this node itself: skipping it", self.http.url)
            status.mode = "self"
            status.reachable = True
            status.last_error = None
            return
        refused = isinstance(error, PeerHttpError) and error.status in (400, 401, 409)
        if (
            isinstance(error, PeerHttpError)
            and error.code == "duplicate_node_id"
            and error.body.get("newcomer") == "you"
        ):
            if status.clash is None:
                logger.error("seed %s runs with this node's id and started first: %s", self.http.url, error.detail)
            status.clash = error.detail
        if refused:
            status.mode = "refused"
            if message != self.last_error_logged:
                logger.error("seed %s refuses to sync: %s", self.http.url, message)
        elif status.reachable is not False:
            logger.warning(
                "seed %s is unreachable: %s",
                self.http.url,
                message,
                extra={"fields": {"peer": self.http.url, "peer_id": status.node_id, "state": "down", "error": message}},
            )
            self.last_down_log = now
        elif now - self.last_down_log >= STILL_DOWN_LOG_EVERY:
            logger.warning(
                "seed %s still unreachable (%d failed rounds): %s",
                self.http.url,
                status.consecutive_failures,
                message,
                extra={
                    "fields": {
                        "peer": self.http.url,
                        "peer_id": status.node_id,
                        "state": "down",
                        "error": message,
                        "failed_rounds": status.consecutive_failures,
                    }
                },
            )
            self.last_down_log = now
        self.last_error_logged = message
        status.reachable = False
        status.last_error = message
        status.errors += 1
        status.consecutive_failures += 1
        status.bytes_sent, status.bytes_received = self.http.bytes_sent, self.http.bytes_received
        backoff = MAX_BACKOFF if refused else min(self.interval * 2 ** (status.consecutive_failures - 1), MAX_BACKOFF)
        if not refused and is_connection_refused(error):
            backoff = min(backoff, REFUSED_BACKOFF)
        self.next_attempt = now + backoff


def addresses_of(url: str) -> set[str]:
    """The IP addresses the host of ``url`` resolves to (empty if it does not)."""
    host = urlsplit(url).hostname or ""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


def learned_from_every_seed(
    seeds: Sequence[str],
    peers: Iterable[dict[str, Any]],
    incarnation: str,
    legacy_pushes: set[str],
    resolve: Callable[[str], set[str]] = addresses_of,
) -> bool:
    """Has the node (store ``incarnation``) learned its own slot from every seed, by runsync's report?

    A native seed counts once anti-entropy with this incarnation completed (after
    it the node holds at least the seed's copy of every slot), a counter-app seed
    once a full push came from one of its addresses (counter-app answers no
    pull), a seed that is the node itself is skipped; a seed that refuses us or
    has not answered does not count.
    """
    reported = {str(peer.get("url")): peer for peer in peers}
    for seed in seeds:
        peer = reported.get(seed, {})
        mode = peer.get("mode")
        if mode in ("self", "left", "forgotten") or (mode == "native" and peer.get("learned_for") == incarnation):
            continue
        if mode == "legacy" and legacy_pushes & resolve(seed):
            continue
        return False
    return True
