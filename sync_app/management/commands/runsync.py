"""runsync: replicate this node's store with every seed.

Every seed has its own thread and its own rounds, so a slow or dead seed
holds up nobody else: native peers exchange deltas (and repair through
anti-entropy when needed or every COUNTER_ANTI_ENTROPY_INTERVAL), counter-app
peers get counter-app's full-state push. A watcher thread long-polls the node
and wakes every seed's thread on each change; without changes a seed's round
still runs every COUNTER_SYNC_INTERVAL seconds. Each request has a timeout. A
seed that fails is retried with exponential backoff (at most 30 s apart) and
logged when it goes down, once a minute while it stays down, and when it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from django.conf import settings

from counter_site.loop_command import LoopCommand
from counter_site.node_client import NodeClient, NodeCommandFailed, NodeUnreachable, node_client_from_settings
from storage_app.core.errors import CounterError
from storage_app.core.store import StoreChunk
from sync_app.auth import sync_token_header
from sync_app.core.legacy_protocol import encode_legacy_sync
from sync_app.core.replication import PeerSession
from sync_app.core.transport import HttpPeer, InternalNode, LocalNodeUnavailable, PeerHttpError

logger = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
STILL_DOWN_LOG_EVERY = 60.0
NATIVE_PROBE_EVERY = 60.0
MIN_ROUND_GAP = 0.01
REPORT_EVERY = 0.5
# At most this many seconds apart, the watcher's long polls of a node that keeps changing.
WATCH_GAP = 0.01


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

    def run(self, local: InternalNode, legacy_body: Any, final: bool = False) -> str:
        """One round with this seed; returns what happened (for the round's summary).

        A seed in backoff is skipped, except in the final round at shutdown.
        """
        now = time.monotonic()
        if self.status.mode == "self":
            return "self"
        if now < self.next_attempt and not final:
            return "waiting"
        try:
            return self._run(local, legacy_body, now)
        except LocalNodeUnavailable as error:
            # Our own node is starting or stopping: not the seed's fault, nothing to count against it.
            logger.debug("round with %s skipped: %s", self.http.url, error)
            return "node unavailable"

    def _run(self, local: InternalNode, legacy_body: Any, now: float) -> str:
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
        if isinstance(error, PeerHttpError) and error.code == "own_address":
            # A StatefulSet's pod 0 lists itself; there is nothing to sync with there.
            logger.info("seed %s is this node itself: skipping it", self.http.url)
            status.mode = "self"
            status.reachable = True
            status.last_error = None
            return
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
        self.changed = threading.Condition()
        self.generation = 0
        self.report_lock = threading.Lock()
        self.last_report = 0.0
        self.reported_learned: tuple[object, ...] = ()

    def legacy_body_maker(self) -> Any:
        """A function giving a current counter-app body, built at most once per round."""
        cache: list[bytes] = []

        def make() -> bytes:
            if not cache:
                try:
                    state = self.node.fetch_state()
                except NodeCommandFailed as error:
                    raise LocalNodeUnavailable(str(error)) from None
                cache.append(encode_legacy_sync([StoreChunk(state.keys, state.slots)], self.min_width))
            return cache[0]

        return make

    def run_once(self) -> str:
        """One round with every seed at once (``--once``, and the shape of every round)."""
        if not self.links:
            return "no seeds configured"
        try:
            self.local.hello()
        except LocalNodeUnavailable as error:
            raise NodeUnreachable(str(error)) from None
        legacy_body = self.legacy_body_maker()
        outcomes = list(self.pool.map(lambda link: link.run(self.local, legacy_body), self.links))
        self.report(force=True)
        return ", ".join(f"{link.http.url}: {outcome}" for link, outcome in zip(self.links, outcomes, strict=True))

    def report(self, force: bool = False) -> None:
        """Tell the node how each seed is doing (GET /cluster, and whether it has learned its slot).

        At most every REPORT_EVERY seconds, except when a seed's mode or learned
        state changed: a node with pending increments adds them to its slot as
        soon as it has learned its slot from every seed.
        """
        learned = tuple((link.status.mode, link.status.learned_for) for link in self.links)
        with self.report_lock:
            now = time.monotonic()
            news = learned != self.reported_learned
            if not force and not news and now - self.last_report < REPORT_EVERY:
                return
            self.last_report = now
            self.reported_learned = learned
            report = {"reported_at": time.time(), "peers": [link.status.as_dict() for link in self.links]}
        try:
            if self.local.report_peers(report):
                logger.info("learned this node's slot from every seed: its pending increments are in its slot now")
        except LocalNodeUnavailable as error:
            logger.debug("report not taken: %s", error)
            with self.report_lock:
                self.reported_learned = ()

    def loop(self, interval: float) -> None:
        """Until stopped: a watcher thread for changes, one thread per seed; then a final round each."""
        if not self.links:
            super().loop(interval)
            return
        threads = [threading.Thread(target=self.watch_changes, args=(interval,), name="watch", daemon=True)]
        threads += [
            threading.Thread(target=self.peer_loop, args=(link, interval), name=f"seed-{index}", daemon=True)
            for index, link in enumerate(self.links)
        ]
        for thread in threads:
            thread.start()
        self.stopping.wait()
        with self.changed:
            self.changed.notify_all()
        # Final rounds get a bounded time: a seed that does not answer must not hold up the node's shutdown.
        deadline = time.monotonic() + min(2 * settings.COUNTER.sync_timeout, 10.0)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.report(force=True)
        unfinished = [thread.name for thread in threads[1:] if thread.is_alive()]
        if unfinished:
            logger.warning("final sync round unfinished with %d of %d seeds", len(unfinished), len(self.links))
        else:
            logger.info("final sync round done with %d seeds", len(self.links))

    def watch_changes(self, interval: float) -> None:
        """Long-poll the node; wake the seeds' threads whenever its change sequence moves."""
        seen = -1
        while not self.stopping.is_set():
            try:
                sequence = self.local.wait_for_change(seen, interval)
            except LocalNodeUnavailable:
                self.stopping.wait(interval)
                continue
            if sequence != seen:
                seen = sequence
                with self.changed:
                    self.generation += 1
                    self.changed.notify_all()
                # The node answers the long poll on every write; under a steady stream of
                # writes one wake-up per WATCH_GAP carries them all to the seeds' threads.
                self.stopping.wait(WATCH_GAP)

    def peer_loop(self, link: PeerLink, interval: float) -> None:
        """Rounds with one seed: on each change, at least every ``interval``, one last after the stop."""
        while True:
            final = self.stopping.is_set()
            with self.changed:
                generation = self.generation
            link.run(self.local, self.legacy_body_maker(), final=final)
            self.report()
            if final:
                return
            self.stopping.wait(MIN_ROUND_GAP)
            self.wait_for_news(generation, interval)

    def wait_for_news(self, generation: int, interval: float) -> None:
        """Until the node changed since ``generation``, a stop, or ``interval`` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.generation != generation or self.stopping.is_set(), timeout=interval)

    def teardown(self) -> None:
        self.pool.shutdown(wait=True)
        for link in self.links:
            link.http.close()
        self.node.close()
