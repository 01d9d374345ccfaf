"""runsync: replicate this node's store with every seed.

Each round talks to every seed at once (one thread per seed, each request with
a timeout): native peers exchange deltas (and repair through anti-entropy when
needed or every COUNTER_ANTI_ENTROPY_INTERVAL), counter-app peers get
counter-app's full-state push. Rounds run as soon as the node has a change
(a long poll on the node) and at least every COUNTER_SYNC_INTERVAL seconds. A
seed that fails is retried with exponential backoff (at most 30 s apart) and
logged when it goes down, once a minute while it stays down, and when it is back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from django.conf import settings

from counter_site.loop_command import LoopCommand
from counter_site.node_client import NodeClient, NodeUnreachable, node_client_from_settings
from storage_app.core.errors import CounterError
from storage_app.core.store import StoreChunk
from sync_app.auth import sync_token_header
from sync_app.core.legacy_protocol import encode_legacy_sync
from sync_app.core.replication import PeerSession
from sync_app.core.transport import HttpPeer, InternalNode, PeerHttpError

logger = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
STILL_DOWN_LOG_EVERY = 60.0
NATIVE_PROBE_EVERY = 60.0
MIN_ROUND_GAP = 0.01


class PeerLink:
    """One seed: how to talk to it (native or counter-app), its session, its backoff."""

    def __init__(self, url: str, interval: float) -> None:
        config = settings.COUNTER
        self.http = HttpPeer(url, sync_token_header(config.sync_token), timeout=config.sync_timeout)
        self.session = PeerSession(self.http, anti_entropy_interval=config.anti_entropy_interval)
        self.interval = interval
        self.next_attempt = 0.0
        self.next_native_probe = 0.0
        self.last_down_log = 0.0
        self.last_error_logged: str | None = None

    @property
    def status(self) -> Any:
        return self.session.status

    def run(self, local: InternalNode, legacy_body: Any) -> str:
        """One round with this seed; returns what happened (for the round's summary)."""
        now = time.monotonic()
        if now < self.next_attempt:
            return "waiting"
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
            return "failed"
        self.succeeded()
        return status.mode

    def succeeded(self) -> None:
        status = self.status
        if status.reachable is False:
            logger.info("seed %s is reachable again after %d failed rounds", self.http.url, status.consecutive_failures)
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
        refused = isinstance(error, PeerHttpError) and error.status in (400, 401, 409)
        now = time.monotonic()
        if refused:
            status.mode = "refused"
            if message != self.last_error_logged:
                logger.error("seed %s refuses to sync: %s", self.http.url, message)
        elif status.reachable is not False:
            logger.warning("seed %s is unreachable: %s", self.http.url, message)
            self.last_down_log = now
        elif now - self.last_down_log >= STILL_DOWN_LOG_EVERY:
            logger.warning(
                "seed %s still unreachable (%d failed rounds): %s", self.http.url, status.consecutive_failures, message
            )
            self.last_down_log = now
        self.last_error_logged = message
        status.reachable = False
        status.last_error = message
        status.errors += 1
        status.consecutive_failures += 1
        status.bytes_sent, status.bytes_received = self.http.bytes_sent, self.http.bytes_received
        backoff = MAX_BACKOFF if refused else min(self.interval * 2 ** (status.consecutive_failures - 1), MAX_BACKOFF)
        self.next_attempt = now + backoff


class Command(LoopCommand):
    help = "Replicate with the seeds: deltas and anti-entropy with Counter nodes, full pushes to counter-app."
    default_interval_setting = "sync_interval"
    final_step_name = "final sync round"

    def setup(self) -> None:
        config = settings.COUNTER
        self.node: NodeClient = node_client_from_settings()
        self.local = InternalNode(self.node.session, config.sync_base_url)
        interval = config.sync_interval
        self.links = [PeerLink(url, interval) for url in config.seeds]
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(self.links)), thread_name_prefix="peer")
        # counter-app panics when it increments a key whose slot list is shorter than
        # its id, so every row we push to it covers every node of the cluster.
        self.min_width = max(config.node_id, len(config.seeds)) + 1
        self.seen_sequence = -1
        self.last_round = 0.0

    def legacy_body_maker(self) -> Any:
        """A function giving this round's counter-app body, built at most once per round."""
        cache: list[bytes] = []

        def make() -> bytes:
            if not cache:
                state = self.node.fetch_state()
                cache.append(encode_legacy_sync([StoreChunk(state.keys, state.slots)], self.min_width))
            return cache[0]

        return make

    def run_once(self) -> str:
        if not self.links:
            return "no seeds configured"
        try:
            self.seen_sequence = self.local.hello().sequence
        except requests.RequestException as error:
            raise NodeUnreachable(f"node at {self.local.base_url} is not answering: {error}") from None
        legacy_body = self.legacy_body_maker()
        outcomes = list(self.pool.map(lambda link: link.run(self.local, legacy_body), self.links))
        self.last_round = time.monotonic()
        with contextlib.suppress(requests.RequestException):
            self.local.report_peers(
                {"reported_at": time.time(), "peers": [link.status.as_dict() for link in self.links]}
            )
        return ", ".join(f"{link.http.url}: {outcome}" for link, outcome in zip(self.links, outcomes, strict=True))

    def wait_between_steps(self, interval: float) -> None:
        """Until the node has a change (long poll), or ``interval`` seconds at most."""
        gap = MIN_ROUND_GAP - (time.monotonic() - self.last_round)
        if gap > 0:
            self.stopping.wait(gap)
        if self.stopping.is_set() or not self.links:
            self.stopping.wait(interval)
            return
        try:
            self.local.wait_for_change(self.seen_sequence, interval)
        except requests.RequestException:
            self.stopping.wait(interval)

    def teardown(self) -> None:
        self.pool.shutdown(wait=True)
        for link in self.links:
            link.http.close()
        self.node.close()
