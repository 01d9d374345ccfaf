"""runsync's side of one seed (PeerLink) with a fake clock and in-process peers; the learned-slot rule."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from storage_app.core.node_client import NodeUnreachable
from storage_app.core.store import GCounterStore
from sync_app.core.peers import (
    MAX_BACKOFF,
    NATIVE_PROBE_EVERY,
    REFUSED_BACKOFF,
    STILL_DOWN_LOG_EVERY,
    PeerLink,
    learned_from_every_seed,
)
from sync_app.core.protocol import Message, decode, encode
from sync_app.core.replication import PeerRefused, Replica
from sync_app.core.transport import PeerHttpError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSeed:
    """A seed's sync port: a native replica, a counter-app node (404 on /v1/sync), or down."""

    def __init__(self, replica: Replica | None = None, down: bool = False) -> None:
        self.url = "http://seed:1"
        self.replica = replica
        self.down = down
        self.refused = False
        self.native_requests = 0
        self.legacy_pushes: list[bytes] = []
        self.bytes_sent = self.bytes_received = 0

    def send(self, message: Message) -> Message:
        self.native_requests += 1
        if self.down:
            if self.refused:  # as requests raises it: the OS error inside urllib3's
                raise requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
            raise requests.ConnectionError("connection timed out")
        if self.replica is None:
            raise PeerHttpError(self.url, 404, "404 page not found")
        try:
            return decode(encode(self.replica.handle(decode(encode(message)))))
        except PeerRefused as error:
            raise PeerHttpError(self.url, 409, str(error), error.code) from None

    def push_legacy(self, body: bytes) -> None:
        if self.down:
            if self.refused:  # as requests raises it: the OS error inside urllib3's
                raise requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
            raise requests.ConnectionError("connection timed out")
        self.legacy_pushes.append(body)


class UnavailableNode:
    """Our own node, stopping: every internal route fails."""

    def hello(self) -> object:
        raise NodeUnreachable("node at http://127.0.0.1:3001 is not answering")


def legacy_body() -> bytes:
    return json.dumps([{"hash_keyword": 1, "totals": [1]}]).encode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def link_to(seed: FakeSeed, clock: Clock, interval: float = 1.0) -> PeerLink:
    return PeerLink(seed, interval=interval, anti_entropy_interval=3600, clock=clock)


def test_a_native_seed_is_synced_with_and_learned_from(clock: Clock) -> None:
    ours = Replica(GCounterStore(), 0, "words")
    theirs = Replica(GCounterStore(), 1, "words")
    theirs.store.increment(1, {7: 3})
    link = link_to(FakeSeed(theirs), clock)
    assert link.run(ours, legacy_body) == "native"
    assert ours.store.read([7]) == [3]
    assert link.status.reachable is True and link.status.node_id == 1
    assert link.status.learned_for == f"{ours.incarnation:016x}"


def test_a_failing_seed_backs_off_exponentially_up_to_the_cap_and_is_retried_at_the_stop(clock: Clock) -> None:
    seed = FakeSeed(down=True)
    link = link_to(seed, clock, interval=1.0)
    ours = Replica(GCounterStore(), 0, "words")
    waits = []
    for _ in range(8):
        assert link.run(ours, legacy_body) == "failed"
        waits.append(link.next_attempt - clock.now)
        assert link.run(ours, legacy_body) == "waiting", "no request before the backoff ends"
        clock.now = link.next_attempt
    assert waits == [1, 2, 4, 8, 16, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF]
    attempts = seed.native_requests
    assert link.run(ours, legacy_body, final=False) == "failed"
    assert link.run(ours, legacy_body, final=True) == "failed", "the final round ignores the backoff"
    assert seed.native_requests == attempts + 2
    seed.down = False
    seed.replica = Replica(GCounterStore(), 1, "words")
    clock.now = link.next_attempt
    assert link.run(ours, legacy_body) == "native"
    assert link.next_attempt == 0.0 and link.status.consecutive_failures == 0


def test_a_seed_that_refuses_connections_is_retried_every_two_seconds_at_most(clock: Clock) -> None:
    """Nothing listening yet (a seed still starting): the backoff stops at REFUSED_BACKOFF."""
    seed = FakeSeed(down=True)
    seed.refused = True
    link = link_to(seed, clock, interval=1.0)
    ours = Replica(GCounterStore(), 0, "words")
    waits = []
    for _ in range(5):
        assert link.run(ours, legacy_body) == "failed"
        waits.append(link.next_attempt - clock.now)
        clock.now = link.next_attempt
    assert waits == [1, REFUSED_BACKOFF, REFUSED_BACKOFF, REFUSED_BACKOFF, REFUSED_BACKOFF]


def test_a_dead_seed_is_logged_when_down_once_a_minute_and_when_back(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    seed = FakeSeed(down=True)
    link = link_to(seed, clock, interval=1.0)
    ours = Replica(GCounterStore(), 0, "words")
    caplog.set_level(logging.INFO, logger="sync_app.core.peers")
    elapsed = 0.0
    while elapsed < 2.5 * STILL_DOWN_LOG_EVERY:
        link.run(ours, legacy_body)
        step = link.next_attempt - clock.now
        clock.now += step
        elapsed += step
    messages = [record.getMessage() for record in caplog.records]
    assert sum("is unreachable" in message for message in messages) == 1
    assert sum("still unreachable" in message for message in messages) == 2
    seed.down = False
    seed.replica = Replica(GCounterStore(), 1, "words")
    link.run(ours, legacy_body)
    assert "reachable again" in caplog.records[-1].getMessage()


def test_a_seed_without_the_native_route_is_counter_app_and_is_probed_again_a_minute_later(clock: Clock) -> None:
    seed = FakeSeed(replica=None)
    link = link_to(seed, clock)
    ours = Replica(GCounterStore(), 0, "words")
    assert link.run(ours, legacy_body) == "legacy"
    assert seed.native_requests == 1 and len(seed.legacy_pushes) == 1
    clock.now += NATIVE_PROBE_EVERY / 2
    assert link.run(ours, legacy_body) == "legacy"
    assert seed.native_requests == 1 and len(seed.legacy_pushes) == 2, "no probe before the minute is up"
    clock.now += NATIVE_PROBE_EVERY
    seed.replica = Replica(GCounterStore(), 1, "words")  # upgraded to Counter
    assert link.run(ours, legacy_body) == "native"


def test_a_seed_that_is_this_node_is_skipped_for_good(clock: Clock) -> None:
    ours = Replica(GCounterStore(), 0, "words")
    seed = FakeSeed(ours)
    link = link_to(seed, clock)
    assert link.run(ours, legacy_body) == "self"
    requests_made = seed.native_requests
    clock.now += 3600
    assert link.run(ours, legacy_body, final=True) == "self"
    assert seed.native_requests == requests_made
    assert link.status.learned_for is None


def test_a_refusing_seed_waits_the_longest_backoff(clock: Clock) -> None:
    ours = Replica(GCounterStore(), 0, "words")
    link = link_to(FakeSeed(Replica(GCounterStore(), 0, "words")), clock)  # another process with our id
    assert link.run(ours, legacy_body) == "failed"
    assert link.status.mode == "refused" and "two live processes run as node 0" in (link.status.last_error or "")
    assert link.next_attempt - clock.now == MAX_BACKOFF


def test_our_own_node_being_away_is_not_the_seeds_fault(clock: Clock) -> None:
    seed = FakeSeed(Replica(GCounterStore(), 1, "words"))
    link = link_to(seed, clock)
    assert link.run(UnavailableNode(), legacy_body) == "node unavailable"  # type: ignore[arg-type]
    assert link.status.errors == 0 and link.next_attempt == 0.0


SEEDS = ("http://a:1", "http://b:1", "http://c:1")


def resolve(url: str) -> set[str]:
    return {"http://a:1": {"10.0.0.1"}, "http://b:1": {"10.0.0.2"}, "http://c:1": {"10.0.0.3"}}[url]


@pytest.mark.parametrize(
    ("peers", "pushes", "learned"),
    [
        ([("native", "ab"), ("native", "ab"), ("self", None)], set(), True),
        ([("native", "ab"), ("native", "other"), ("self", None)], set(), False),
        ([("native", "ab"), ("legacy", None), ("self", None)], {"10.0.0.3"}, False),
        ([("native", "ab"), ("legacy", None), ("self", None)], {"10.0.0.2"}, True),
        ([("native", "ab"), ("refused", "ab"), ("self", None)], set(), False),
        ([("native", "ab"), ("native", "ab")], set(), False),  # the third seed not reported
    ],
)
def test_the_slot_is_learned_from_every_seed_or_not_at_all(
    peers: list[tuple[str, str | None]], pushes: set[str], learned: bool
) -> None:
    report = [{"url": url, "mode": mode, "learned_for": for_} for url, (mode, for_) in zip(SEEDS, peers, strict=False)]
    assert learned_from_every_seed(SEEDS, report, "ab", pushes, resolve) is learned


def test_a_round_is_due_on_a_change_or_once_the_interval_has_passed(clock: Clock) -> None:
    link = link_to(FakeSeed(), clock, interval=1.0)
    assert link.has_news(0), "the first round is always due"
    link.starting_round(5)
    assert not link.has_news(5)
    assert link.has_news(6), "the node changed since the round started"
    clock.now += 0.5
    assert not link.has_news(5) and link.next_due() == clock.now + 0.5
    clock.now += 0.5
    assert link.has_news(5), "the interval has passed"
