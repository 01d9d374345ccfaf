"""Deltas and anti-entropy between in-process replicas, through the real message codec."""

from __future__ import annotations

import numpy as np
import pytest

from storage_app.core.idempotency import Remembered
from storage_app.core.store import GCounterStore
from sync_app.core.journal import ChangeJournal
from sync_app.core.protocol import Cursor, Message, decode, encode
from sync_app.core.replication import DuplicateNodeId, OwnAddress, PeerRefused, PeerSession, Replica


class LoopbackPeer:
    """A RemotePeer that hands the encoded message to another replica; counts bytes."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.url = f"test://node{replica.node_id}"
        self.bytes = 0
        self.up = True

    def send(self, message: Message) -> Message:
        if not self.up:
            raise ConnectionError("partitioned")
        request = encode(message)
        answer = encode(self.replica.handle(decode(request)))
        self.bytes += len(request) + len(answer)
        return decode(answer)


def key(n: int) -> int:
    return (n * 0x9E3779B97F4A7C15 + 12345) % (1 << 64)


def totals(replica: Replica, keys: list[int]) -> list[int]:
    return replica.store.read(keys)


@pytest.fixture
def pair() -> tuple[Replica, Replica, PeerSession, PeerSession]:
    a = Replica(GCounterStore(), 0, "words")
    b = Replica(GCounterStore(), 1, "words")
    a_to_b = PeerSession(LoopbackPeer(b), anti_entropy_interval=3600)
    b_to_a = PeerSession(LoopbackPeer(a), anti_entropy_interval=3600)
    return a, b, a_to_b, b_to_a


def test_writes_on_both_sides_converge_through_deltas(pair) -> None:
    a, b, a_to_b, b_to_a = pair
    a_to_b.run_round(a)  # first contact: anti-entropy of two empty stores
    b_to_a.run_round(b)
    for n in range(100):
        a.store.increment(0, {key(n): 1})
        b.store.increment(1, {key(n + 50): 2})
    a_to_b.run_round(a)
    keys = [key(n) for n in range(150)]
    assert totals(a, keys) == totals(b, keys)
    assert a.store.read([key(60)]) == [3]
    # Steady state: nothing changed, so an exchange carries no rows.
    before = a_to_b.remote.bytes
    a_to_b.run_round(a)
    assert a_to_b.remote.bytes - before < 300
    assert a_to_b.status.lag == 0


def test_lag_counts_only_what_this_node_had_when_the_round_began(pair) -> None:
    a, b, a_to_b, b_to_a = pair
    a_to_b.run_round(a)
    b_to_a.run_round(b)
    # b is written during every round: what a merges from it is b's own, never a's lag.
    send = a_to_b.remote.send

    def busy_send(message: Message) -> Message:
        b.store.increment(1, {key(7): 1})
        return send(message)

    a_to_b.remote.send = busy_send
    for _ in range(3):
        a.store.increment(0, {key(1): 1})
        a_to_b.run_round(a)
        assert a_to_b.status.lag == 0
    assert b.store.read([key(1)]) == [3]


def test_a_leaving_node_is_handed_over_once_the_peer_acknowledged_its_position(pair) -> None:
    a, b, a_to_b, _ = pair
    a_to_b.run_round(a)
    a.store.increment(0, {key(n): 1 for n in range(10)})
    hello = a.hello()
    a_to_b.handover_point = Cursor(hello.incarnation, hello.sequence)
    assert a_to_b.status.handed_over is False
    a_to_b.remote.up = False
    with pytest.raises(ConnectionError):
        a_to_b.run_round(a)
    assert a_to_b.status.handed_over is False
    a_to_b.remote.up = True
    a_to_b.run_round(a)
    assert a_to_b.status.handed_over is True
    assert b.store.read([key(3)]) == [1]


def test_a_delta_is_proportional_to_the_changed_keys(pair) -> None:
    a, b, a_to_b, _ = pair
    many = np.array([key(n) for n in range(20_000)], dtype=np.uint64)
    a.store.merge(many, np.ones((len(many), 3), dtype=np.uint64))
    a_to_b.run_round(a)
    assert len(b.store) == 20_000
    before = a_to_b.remote.bytes
    a.store.increment(0, {key(n): 1 for n in range(10)})
    a_to_b.run_round(a)
    sent = a_to_b.remote.bytes - before
    assert sent < 10 * 40 + 400, sent
    assert b.store.read([key(3)]) == [4]


def test_changes_are_not_echoed_back_to_their_origin(pair) -> None:
    a, b, a_to_b, b_to_a = pair
    a_to_b.run_round(a)
    b_to_a.run_round(b)
    b.store.increment(1, {key(n): 1 for n in range(1000)})
    a_to_b.run_round(a)  # a pulls b's changes
    assert a.store.read([key(999)]) == [1]
    sent_before = a_to_b.status.keys_sent
    a_to_b.run_round(a)
    assert a_to_b.status.keys_sent == sent_before, "b's own changes were sent back to b"


def test_a_restarted_empty_peer_is_repaired_by_anti_entropy(pair) -> None:
    a, b, a_to_b, _ = pair
    a.store.increment(0, {key(n): n + 1 for n in range(5000)})
    a_to_b.run_round(a)
    assert len(b.store) == 5000
    # b restarts with nothing (new store, new journal, new incarnation).
    restarted = Replica(GCounterStore(), 1, "words")
    a_to_b.remote.replica = restarted
    a_to_b.run_round(a)  # notices the new incarnation
    a_to_b.run_round(a)  # anti-entropy repairs
    assert len(restarted.store) == 5000
    assert restarted.store.read([key(4999)]) == [5000]


def test_a_cursor_older_than_the_journal_falls_back_to_anti_entropy() -> None:
    store = GCounterStore()
    a = Replica(store, 0, "words", ChangeJournal(store, max_keys=100))
    b = Replica(GCounterStore(), 1, "words")
    session = PeerSession(LoopbackPeer(a), anti_entropy_interval=3600)
    session.run_round(b)
    for n in range(1000):  # far more than the journal keeps
        a.store.increment(0, {key(n): 1})
    session.run_round(b)
    session.run_round(b)
    assert len(b.store) == 1000


def test_partition_then_heal_converges(pair) -> None:
    a, b, a_to_b, _b_to_a = pair
    a_to_b.run_round(a)
    a_to_b.remote.up = False
    for n in range(50):
        a.store.increment(0, {key(n): 1})
        b.store.increment(1, {key(n): 1})
    with pytest.raises(ConnectionError):
        a_to_b.run_round(a)
    a_to_b.remote.up = True
    a_to_b.run_round(a)
    assert totals(a, [key(n) for n in range(50)]) == [2] * 50 == totals(b, [key(n) for n in range(50)])


def test_a_peer_with_another_tokenizer_is_refused() -> None:
    a = Replica(GCounterStore(), 0, "words")
    b = Replica(GCounterStore(), 1, "fields")
    with pytest.raises(PeerRefused, match="COUNTER_TOKENIZER=words"):
        PeerSession(LoopbackPeer(b), 3600).run_round(a)
    same_id = Replica(GCounterStore(), 0, "words")
    with pytest.raises(DuplicateNodeId, match="two live processes run as node 0"):
        PeerSession(LoopbackPeer(same_id), 3600).run_round(a)


def test_a_node_that_reaches_itself_is_told_so_and_learns_nothing_from_it() -> None:
    a = Replica(GCounterStore(), 0, "words")
    session = PeerSession(LoopbackPeer(a), 3600)
    with pytest.raises(OwnAddress, match="this is node 0 itself"):
        session.run_round(a)
    assert session.status.learned_for is None


class ListLedger:
    """A KeyLedger in a list: a key's sequence is its position."""

    def __init__(self) -> None:
        self.entries: list[Remembered] = []
        self.known: set[bytes] = set()

    def keys_since(self, sequence: int, limit: int) -> tuple[list[Remembered], int, bool]:
        part = self.entries[sequence : sequence + limit]
        reached = sequence + len(part)
        return part, reached, reached == len(self.entries)

    def remember_keys(self, entries: list[Remembered]) -> None:
        for entry in entries:
            if entry.key not in self.known:
                self.known.add(entry.key)
                self.entries.append(entry)


class KeysCheckedStore(GCounterStore):
    """A store that notes, at every merge, whether its ledger already held every key."""

    def __init__(self, ledger: ListLedger, expected: list[Remembered]) -> None:
        super().__init__()
        self.ledger, self.expected = ledger, expected
        self.merged_without_keys = 0

    def merge(self, keys, slots, origin=-1, texts=None):
        if len(keys) and len(self.ledger.known) < len(self.expected):
            self.merged_without_keys += 1
        return super().merge(keys, slots, origin=origin, texts=texts)


@pytest.mark.parametrize("direction", ["pushed", "pulled"])
def test_anti_entropy_rows_arrive_after_their_idempotency_keys(direction: str) -> None:
    keys = [Remembered(f"key-{n}".encode(), bytes(16), 3, 2, 0, 1000 + n) for n in range(30_000)]
    a_ledger = ListLedger()
    a_ledger.remember_keys(keys)  # more than one message of keys (20,000 at most)
    a = Replica(GCounterStore(), 0, "words", ledger=a_ledger)
    a.store.increment(0, {key(n): 1 for n in range(100)})
    b_ledger = ListLedger()
    b_store = KeysCheckedStore(b_ledger, keys)
    b = Replica(b_store, 1, "words", ledger=b_ledger)
    if direction == "pushed":
        session = PeerSession(LoopbackPeer(b), anti_entropy_interval=3600)
        session.anti_entropy(a)
    else:
        session = PeerSession(LoopbackPeer(a), anti_entropy_interval=3600)
        session.anti_entropy(b)
    assert len(b.store) == 100
    assert b_store.merged_without_keys == 0, "rows were merged before their keys"
    assert len(b_ledger.entries) == len(keys)
