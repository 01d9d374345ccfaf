"""runsync: replicate this node's store with every seed.

Each step of the loop starts a round with every seed that is idle and has
news for (the node changed since that seed's last round started, or
COUNTER_SYNC_INTERVAL passed); rounds run in a pool, one seed each, so a slow
or dead seed holds up nobody else. Between steps the command waits for a
change of the node (a watcher thread long-polls it), for a round to finish, or
for the next seed to be due. What a round does, backoff and logging included,
is ``sync_app.core.peers.PeerLink``: native peers exchange deltas (and repair
through anti-entropy), counter-app peers get counter-app's full-state push.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from storage_app.core.node_client import NodeError
from storage_app.core.store import StoreChunk
from storage_app.internal_auth import internal_token
from storage_app.management.loop_command import LoopCommand
from sync_app.auth import sync_token_header
from sync_app.core.legacy_protocol import encode_legacy_sync
from sync_app.core.peers import PeerLink
from sync_app.core.protocol import Cursor, MemberInfo
from sync_app.core.transport import HttpPeer, InternalNode

logger = logging.getLogger(__name__)

MIN_ROUND_GAP = 0.01
REPORT_EVERY = 0.5
# At most this many seconds apart, the watcher's long polls of a node that keeps changing.
WATCH_GAP = 0.01


class Command(LoopCommand):
    help = "Replicate with the seeds: deltas and anti-entropy with Counter nodes, full pushes to counter-app."
    default_interval_setting = "sync_interval"
    final_step_name = "final sync round"

    def setup(self) -> None:
        config = settings.COUNTER
        self.config = config
        self.local = InternalNode(config, internal_token(config), timeout=60.0)
        self.links: list[PeerLink] = []
        # The round in progress with each link (by URL): a daemon thread, so that a seed that
        # hangs past the final round's deadline cannot hold the process up.
        self.rounds: dict[str, threading.Thread] = {}
        self.outcomes: dict[str, str] = {}
        # What this node tells its peers of the cluster in each exchange (from the node's answer
        # to our reports: itself first).
        self.advertised: tuple[MemberInfo, ...] = (MemberInfo(config.node_id, config.advertise_url),)
        self.handover_point: Cursor | None = None  # the node's journal position when it began to leave
        for url in config.seeds:
            self.add_link(url)
        self.latest = 0  # the node's change sequence, as the watcher last saw it
        self.wake = threading.Event()
        self.watcher: threading.Thread | None = None
        # counter-app panics when it increments a key whose slot list is shorter than
        # its id, so every row we push to it covers every node of the cluster.
        self.min_width = max(config.node_id, len(config.seeds)) + 1
        self.report_lock = threading.Lock()
        self.leaving_since: float | None = None  # when the node's answer first said it leaves
        self.last_report = 0.0
        self.reported_learned: tuple[object, ...] = ()

    def add_link(self, url: str) -> PeerLink:
        config = self.config
        link = PeerLink(
            HttpPeer(url, sync_token_header(config.sync_token), timeout=config.sync_timeout),
            interval=config.sync_interval,
            anti_entropy_interval=config.anti_entropy_interval,
        )
        link.session.advertised = lambda: self.advertised
        link.session.handover_point = self.handover_point
        self.links.append(link)
        self.outcomes[url] = "not yet"
        return link

    def follow_members(self, members: list[list[Any]]) -> None:
        """Sync with every member the node knows of, and no more with those that left."""
        if not members:
            return
        self.advertised = tuple(MemberInfo.from_list(item) for item in members)
        if self.advertised[0].state == "left" and self.leaving_since is None:
            self.begin_handover()
        self.min_width = max(self.min_width, *(info.node_id + 1 for info in self.advertised))
        self.drop_duplicate_links()
        by_url = {link.http.url: link for link in self.links}
        by_id = {link.status.node_id: link for link in self.links if link.status.node_id is not None}
        for info in self.advertised[1:]:
            link = by_id.get(info.node_id) or by_url.get(info.url)
            if info.state in ("left", "forgotten"):
                if link is not None and link.status.mode != info.state:
                    logger.info("member %d (%s) is %s: no more rounds with it", info.node_id, link.http.url, info.state)
                    link.status.mode = info.state
                continue
            if link is None and info.url != self.config.advertise_url:
                logger.info("member %d (%s) is new to this node: syncing with it too", info.node_id, info.url)
                self.add_link(info.url)

    def begin_handover(self) -> None:
        """The node leaves: every round from now on tells the peers, and each link watches for the handover.

        The node takes no client writes any more, so its journal position now
        holds every change of its own: a peer that has acknowledged it holds them all.
        """
        try:
            me = self.local.hello()
        except NodeError as error:
            logger.debug("position to hand over not known yet: %s", error)
            return  # the next report tries again
        self.handover_point = Cursor(me.incarnation, me.sequence)
        for link in self.links:
            link.session.handover_point = self.handover_point
        self.leaving_since = time.time()
        logger.info("this node leaves the cluster: telling every member")

    def drop_duplicate_links(self) -> None:
        """A member reached both as a configured seed and at its advertised URL: keep the seed's link.

        The seed URL is the operator's (a proxy, a load balancer's name); the other
        link was only added before the first exchange told the seed's node id.
        """
        kept: dict[int, PeerLink] = {}
        for link in list(self.links):
            node_id = link.status.node_id
            if node_id is None:
                continue
            other = kept.setdefault(node_id, link)
            if other is link:
                continue
            drop = other if other.http.url not in self.config.seeds else link
            if drop.http.url in self.config.seeds:
                continue  # two seeds name one node: the operator's choice
            kept[node_id] = other if drop is link else link
            logger.info(
                "node %d is also seed %s: no more rounds through %s", node_id, kept[node_id].http.url, drop.http.url
            )
            self.links.remove(drop)

    def legacy_body_maker(self) -> Callable[[], bytes]:
        """A function giving a current counter-app body, built at most once per step."""
        cache: list[bytes] = []

        def make() -> bytes:
            if not cache:
                state = self.local.fetch_state()
                cache.append(encode_legacy_sync([StoreChunk(state.keys, state.slots)], self.min_width))
            return cache[0]

        return make

    def run_once(self) -> str:
        """One step: a round with every idle link that has news (all of them with --once and at the stop)."""
        final = self.stopping.is_set()
        every_seed = self.once or final
        if self.once:
            self.local.hello()  # a node that is down is the command's error, not the seeds'
        legacy_body = self.legacy_body_maker()
        for index, link in enumerate(self.links):
            url = link.http.url
            running = self.rounds.get(url)
            if (running is not None and running.is_alive()) or not (every_seed or link.has_news(self.latest)):
                continue
            link.starting_round(self.latest)
            self.rounds[url] = thread = threading.Thread(
                target=self.run_round, args=(link, legacy_body, final), name=f"link-{index}", daemon=True
            )
            thread.start()
        if every_seed and self.rounds:
            # Final rounds get a bounded time: a seed that does not answer must not hold up the node's shutdown.
            deadline = time.monotonic() + min(2 * self.config.sync_timeout, 10.0) if final else float("inf")
            for running in self.rounds.values():
                running.join(None if deadline == float("inf") else max(0.0, deadline - time.monotonic()))
            unfinished = sum(1 for running in self.rounds.values() if running.is_alive())
            if unfinished:
                logger.warning("final sync round unfinished with %d of %d peers", unfinished, len(self.links))
        self.report(force=every_seed)
        if not self.links:
            return "no seeds configured and no other member known"
        return ", ".join(f"{link.http.url}: {self.outcomes[link.http.url]}" for link in self.links)

    def run_round(self, link: PeerLink, legacy_body: Callable[[], bytes], final: bool) -> None:
        try:
            outcome = link.run(self.local, legacy_body, final)
        except Exception:  # a failed round is logged and retried at the next step, never fatal
            logger.exception("round with %s failed", link.http.url)
            outcome = "failed"
        self.outcomes[link.http.url] = outcome
        self.wake.set()

    def wait_between_steps(self, interval: float) -> None:
        """Until the node changes, a round ends, the next seed is due, or a stop is asked for."""
        # Changes matter only to links: a node alone is not long-polled (a poll per write costs it).
        if self.watcher is None and self.links:
            self.watcher = threading.Thread(target=self.watch_changes, args=(interval,), name="watch", daemon=True)
            self.watcher.start()
        now = time.monotonic()
        next_due = min((link.next_due() for link in self.links), default=now + interval)
        self.wake.wait(max(MIN_ROUND_GAP, min(next_due - now, interval)))
        self.wake.clear()
        self.stopping.wait(MIN_ROUND_GAP)

    def stop_requested(self) -> None:
        self.wake.set()

    def watch_changes(self, interval: float) -> None:
        """Long-poll the node; wake the loop whenever its change sequence moves."""
        while not self.stopping.is_set():
            try:
                sequence = self.local.wait_for_change(self.latest, interval)
            except NodeError:
                self.stopping.wait(interval)
                continue
            if sequence != self.latest:
                self.latest = sequence
                self.wake.set()
                # The node answers the long poll on every write; under a steady stream of
                # writes one wake-up per WATCH_GAP carries them all to the seeds.
                self.stopping.wait(WATCH_GAP)

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
            report: dict[str, Any] = {
                "reported_at": time.time(),
                "leaving_since": self.leaving_since,
                "peers": [link.status.as_dict() for link in self.links],
            }
        try:
            answer = self.local.report_peers(report)
        except NodeError as error:
            logger.debug("report not taken: %s", error)
            with self.report_lock:
                self.reported_learned = ()
            return
        if answer.get("folded"):
            logger.info("learned this node's slot from every seed: its pending increments are in its slot now")
        self.follow_members(list(answer.get("members", [])))

    def teardown(self) -> None:
        for link in self.links:
            link.http.close()  # type: ignore[attr-defined]
        self.local.close()
