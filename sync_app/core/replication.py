"""Replication with peers over the native protocol: deltas, anti-entropy, per-peer state.

Two sides:

* ``Replica`` serves one node's store: it answers a peer's exchange, digest and
  bucket requests (the sync port's views call it) and offers the same
  operations to the node's own ``runsync`` (through internal routes).
* ``PeerSession`` is ``runsync``'s side of one peer: cursors, status, and the
  steps of a round, written against two small interfaces (``LocalNode`` for the
  node's own store, ``RemotePeer`` for the peer) so that tests can run it with
  two in-process replicas.

A round with a peer is one exchange: we send the changes the peer has not
acknowledged (our journal after our push cursor, minus what came from it) and
our pull cursor into its journal; it merges them and answers with its changes
after that cursor. When a cursor cannot be served (the peer restarted, or the
journal no longer reaches back), or every ``anti_entropy_interval`` seconds, the
two compare per-bucket digests and exchange only the rows of differing buckets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from storage_app.core.errors import CounterError
from storage_app.core.idempotency import Remembered
from storage_app.core.store import GCounterStore
from storage_app.core.texts import TextColumn
from sync_app.core.digests import bucket_digests, rows_in_buckets
from sync_app.core.journal import ChangeJournal
from sync_app.core.membership import Membership
from sync_app.core.protocol import (
    Cursor,
    Hello,
    Kind,
    MemberInfo,
    Message,
    Page,
    Rows,
)

logger = logging.getLogger(__name__)

DEFAULT_BUCKET_BITS = 12
MAX_DELTA_KEYS = 50_000
# Idempotency keys per exchange message (about 60 bytes each).
MAX_KEYS_PER_MESSAGE = 20_000
MAX_PAGE_ROWS = 50_000
MAX_ROUNDS_PER_CALL = 20


class PeerRefused(CounterError):
    """A peer that must not be synced with (other tokenizer, another protocol version)."""

    code = "peer_refused"


class DuplicateNodeId(PeerRefused):
    """Another live process uses this node's id: two writers of one slot.

    ``sender_is_newcomer`` says which of the two started later (the receiver's
    answer tells the sender, which then takes no more client writes).
    """

    code = "duplicate_node_id"

    def __init__(self, message: str, sender_is_newcomer: bool = True) -> None:
        super().__init__(message)
        self.sender_is_newcomer = sender_is_newcomer


class NodeIdRetired(PeerRefused):
    """A new process with the id of a decommissioned node, without the operator's word."""

    code = "node_id_left"


class OwnAddress(PeerRefused):
    """The request came from this very process: its own address is among its seeds."""

    code = "own_address"


def check_same_tokenizer(ours: str, hello: Hello, who: str) -> None:
    """Refuse a peer that counts differently: merging its keys would mix two meanings."""
    if hello.tokenizer != ours:
        raise PeerRefused(
            f"{who} uses COUNTER_TOKENIZER={hello.tokenizer}, this node uses {ours}: "
            "their keywords differ, so they must not sync"
        )


class KeyLedger(Protocol):
    """The node's idempotency keys as replication reads and adds them (``storage_app.node.Node``)."""

    def keys_since(self, sequence: int, limit: int) -> tuple[list[Remembered], int, bool]: ...

    def remember_keys(self, entries: list[Remembered]) -> None: ...


class Replica:
    """One node's store, as the native protocol sees it: the store, its change journal, its digests."""

    def __init__(
        self,
        store: GCounterStore,
        node_id: int,
        tokenizer: str,
        journal: ChangeJournal | None = None,
        membership: Membership | None = None,
        ledger: KeyLedger | None = None,
    ):
        self.store = store
        # The idempotency keys sent and received with the increments (None: this replica keeps none).
        self.ledger = ledger
        self.journal = journal if journal is not None else ChangeJournal(store)
        # The cluster's members, exchanged in every exchange (None: this replica keeps no list).
        self.membership = membership
        # Called when another live process with this node's id started before this one.
        self.on_clash: Callable[[str], None] | None = None
        self.node_id = node_id
        self.tokenizer = tokenizer
        self._digest_lock = threading.Lock()
        self._digest_cache: tuple[int, int, npt.NDArray[np.uint64]] | None = None  # (sequence, bits, digests)

    @property
    def incarnation(self) -> int:
        return self.journal.incarnation

    def hello(self) -> Hello:
        return Hello(
            node_id=self.node_id,
            incarnation=self.journal.incarnation,
            sequence=self.journal.sequence,
            width=self.store.width,
            tokenizer=self.tokenizer,
        )

    def check_peer(self, hello: Hello, members: tuple[MemberInfo, ...] | None = None) -> None:
        """Refuse a peer that counts differently (merging its keys would mix two meanings), or has our id."""
        check_same_tokenizer(self.tokenizer, hello, f"peer node {hello.node_id}")
        if hello.node_id != self.node_id:
            own = members[0] if members and members[0].node_id == hello.node_id else None
            retired = self.membership is not None and self.membership.state_of(hello.node_id) == "left"
            if retired and own is not None and own.state != "left" and not own.reuses:
                raise NodeIdRetired(
                    f"node {hello.node_id} was decommissioned: its id is not reused by accident; to give it to "
                    "this new node, start it with `manage.py runnode --reuse-id`"
                )
            return
        if hello.incarnation == self.journal.incarnation:
            raise OwnAddress(f"this is node {self.node_id} itself: its own address is among its seeds, and is skipped")
        sender_started = members[0].started_ms if members and members[0].node_id == hello.node_id else 0
        ours = self.membership.started_ms if self.membership is not None else 0
        we_are_newcomer = 0 < sender_started < ours
        newcomer = "this process" if we_are_newcomer else "the requesting process"
        reason = (
            f"two live processes run as node {self.node_id} (every node needs its own COUNTER_NODE_ID, or two "
            f"processes count in one slot); {newcomer} started later and takes no client writes until it is "
            "restarted with an id of its own"
        )
        if we_are_newcomer and self.on_clash is not None:
            self.on_clash(reason)
        raise DuplicateNodeId(reason, sender_is_newcomer=not we_are_newcomer)

    # --- operations shared by peers' requests and our own runsync -------------------------

    def changes(self, cursor: Cursor | None, max_keys: int, exclude_origin: int | None) -> tuple[Cursor, Rows]:
        """Our changes after ``cursor``; a cursor of another incarnation or too old comes back ``reset``."""
        incarnation = self.journal.incarnation
        if cursor is None or cursor.incarnation != incarnation:
            return Cursor(incarnation, self.journal.sequence, complete=True, reset=True), Rows.empty()
        changes = self.journal.changes_since(cursor.sequence, max_keys, exclude_origin)
        if changes is None:
            return Cursor(incarnation, self.journal.sequence, complete=True, reset=True), Rows.empty()
        return Cursor(incarnation, changes.up_to, complete=changes.complete), Rows(
            changes.keys, changes.slots, changes.texts
        )

    def keys_since(self, cursor: Cursor | None) -> tuple[Cursor, tuple[Remembered, ...]]:
        """Idempotency keys remembered after ``cursor`` (all of them for a cursor of another incarnation)."""
        incarnation = self.journal.incarnation
        if self.ledger is None:
            return Cursor(incarnation, 0, complete=True), ()
        start = cursor.sequence if cursor is not None and cursor.incarnation == incarnation else 0
        entries, reached, complete = self.ledger.keys_since(start, MAX_KEYS_PER_MESSAGE)
        return Cursor(incarnation, reached, complete=complete), tuple(entries)

    def remember_keys(self, entries: tuple[Remembered, ...] | None) -> None:
        """Keep keys a peer sent; called before merging the rows that came with them."""
        if entries and self.ledger is not None:
            self.ledger.remember_keys(list(entries))

    def merge(self, rows: Rows | None, origin: int) -> int:
        """Merge rows received from node ``origin``; return how many keys changed."""
        if rows is None or len(rows.keys) == 0:
            return 0
        return self.store.merge(rows.keys, rows.slots, origin=origin, texts=rows.texts).changed

    def digests(self, bits: int) -> tuple[int, np.ndarray]:
        """(sequence before computing, bucket digests): every change up to that sequence is in them.

        O(n), so the digests are kept until the next change.
        """
        sequence = self.journal.sequence
        with self._digest_lock:
            cached = self._digest_cache
        if cached is not None and cached[0] == sequence and cached[1] == bits:
            return sequence, cached[2]
        digests = bucket_digests(self.store, bits)
        if self.journal.sequence == sequence:
            with self._digest_lock:
                self._digest_cache = (sequence, bits, digests)
        return sequence, digests

    def bucket_rows(self, buckets: np.ndarray, bits: int, page: Page) -> tuple[Rows, Page]:
        keys, slots, next_key = rows_in_buckets(self.store, buckets, bits, page.start_key, max(page.max_rows, 1))
        done = next_key is None
        # Anti-entropy repairs whatever a peer lacks, the texts of the rows it sends included.
        texts = TextColumn.from_texts(self.store.texts_of(keys)) if len(keys) else None
        return Rows(keys, slots, texts), Page(next_key or 0, page.max_rows, done)

    # --- a peer's requests ------------------------------------------------------------------

    def handle(self, message: Message) -> Message:
        """Answer a peer's request message (checked by ``check_peer`` first)."""
        peer = message.hello
        self.check_peer(peer, message.members)
        if message.kind == Kind.EXCHANGE_REQUEST:
            # Keys first: a retry here must never find the count without its key.
            self.remember_keys(message.keys)
            self.merge(message.rows, origin=peer.node_id)
            members = None
            if self.membership is not None:
                if message.members:
                    self.membership.learn(message.members, sender=peer.node_id)
                members = self.membership.advertised()
            if message.cursor is None:
                return Message(Kind.EXCHANGE_RESPONSE, self.hello(), members=members)
            cursor, rows = self.changes(message.cursor, MAX_DELTA_KEYS, exclude_origin=peer.node_id)
            # Keys after rows: every key of an increment in those rows is remembered by now.
            keys_cursor, keys = (None, ()) if message.keys_cursor is None else self.keys_since(message.keys_cursor)
            return Message(
                Kind.EXCHANGE_RESPONSE,
                self.hello(),
                cursor=cursor,
                rows=rows,
                members=members,
                keys_cursor=keys_cursor,
                keys=keys or None,
            )
        if message.kind == Kind.DIGEST_REQUEST:
            if message.digests is None:
                raise PeerRefused("digest request without digests")
            bits = len(message.digests).bit_length() - 1
            sequence, ours = self.digests(bits)
            differing = np.flatnonzero(ours != message.digests).astype(np.uint32)
            cursor = Cursor(self.journal.incarnation, sequence)
            return Message(Kind.DIGEST_RESPONSE, self.hello(), cursor=cursor, bucket_ids=differing, bucket_bits=bits)
        if message.kind == Kind.BUCKETS_REQUEST:
            if message.bucket_ids is None or message.page is None:
                raise PeerRefused("bucket request without bucket ids or page")
            self.merge(message.rows, origin=peer.node_id)
            if message.page.max_rows == 0:
                return Message(Kind.BUCKETS_RESPONSE, self.hello())
            rows, page = self.bucket_rows(message.bucket_ids, message.bucket_bits, message.page)
            return Message(Kind.BUCKETS_RESPONSE, self.hello(), rows=rows, page=page)
        raise PeerRefused(f"a {message.kind.name} is not a request")


class LocalNode(Protocol):
    """The node's own store as runsync reaches it."""

    def hello(self) -> Hello: ...

    def changes(self, cursor: Cursor | None, max_keys: int, exclude_origin: int | None) -> tuple[Cursor, Rows]: ...

    def merge(self, rows: Rows | None, origin: int) -> int: ...

    def digests(self, bits: int) -> tuple[int, np.ndarray]: ...

    def bucket_rows(self, buckets: np.ndarray, bits: int, page: Page) -> tuple[Rows, Page]: ...

    def keys_since(self, cursor: Cursor | None) -> tuple[Cursor, tuple[Remembered, ...]]: ...

    def remember_keys(self, entries: tuple[Remembered, ...] | None) -> None: ...


class RemotePeer(Protocol):
    """A peer's sync port: sends a request message, returns the answer."""

    url: str

    def send(self, message: Message) -> Message: ...


@dataclass
class PeerStatus:
    """What /cluster shows of a peer."""

    url: str
    node_id: int | None = None
    mode: str = "unknown"  # native, legacy (counter-app), refused, unknown
    reachable: bool | None = None
    last_success: float | None = None
    last_anti_entropy: float | None = None
    last_error: str | None = None
    errors: int = 0
    consecutive_failures: int = 0
    keys_sent: int = 0
    keys_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    lag: int | None = None  # our changes at the start of the last round that the peer has not acknowledged
    # Decommission: the peer has acknowledged every change this node had when it began to leave.
    handed_over: bool = False
    rounds: int = 0
    anti_entropy_rounds: int = 0
    # Our incarnation (hex) when anti-entropy with the peer last completed: from then on
    # we hold at least the peer's copy of every slot, our own included.
    learned_for: str | None = None
    # The members the peer told us of in its last answer: [node id, url, state], itself first.
    members: list[list[Any]] | None = None
    # Set when the peer runs with our node id and says we started later: why we take no writes.
    clash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PeerSession:
    """runsync's state for one peer (cursors, anti-entropy schedule, status) and the steps of a round."""

    def __init__(
        self,
        remote: RemotePeer,
        anti_entropy_interval: float,
        bucket_bits: int = DEFAULT_BUCKET_BITS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.remote = remote
        self.clock = clock
        # The members this node tells the peer of in each exchange (None: none).
        self.advertised: Callable[[], tuple[MemberInfo, ...]] | None = None
        self.anti_entropy_interval = anti_entropy_interval
        self.bucket_bits = bucket_bits
        self.status = PeerStatus(url=remote.url)
        self.push_cursor: Cursor | None = None  # our journal position the peer has
        self.pull_cursor: Cursor | None = None  # the peer's journal position we have
        self.push_keys_cursor: Cursor | None = None  # our idempotency keys the peer has
        self.pull_keys_cursor: Cursor | None = None  # the peer's idempotency keys we have
        self.peer_incarnation: int | None = None
        self.local_incarnation: int | None = None
        self.next_anti_entropy = 0.0  # monotonic time; 0 = at the first round
        # Set when this node begins to leave: our journal position then (no own writes after it).
        self.handover_point: Cursor | None = None

    def run_round(self, local: LocalNode) -> None:
        """Anti-entropy if due, then exchanges until both sides have sent everything."""
        self.status.rounds += 1
        # Changes merged from other peers while this round runs are the next round's: lag
        # counts what we had when it began, so that a busy cluster can still show 0.
        started_at = local.hello().sequence
        if self.clock() >= self.next_anti_entropy:
            self.anti_entropy(local)
        for _ in range(MAX_ROUNDS_PER_CALL):
            if self.exchange(local):
                break
        pushed = self.push_cursor
        self.status.lag = max(0, started_at - pushed.sequence) if pushed else None
        point = self.handover_point
        self.status.handed_over = (
            pushed is not None
            and point is not None
            and pushed.incarnation == point.incarnation
            and pushed.sequence >= point.sequence
        )

    def exchange(self, local: LocalNode) -> bool:
        """One exchange; True when neither side had more to send."""
        me = local.hello()
        if self.local_incarnation != me.incarnation:
            # Our own node restarted (a new worker): our cursors mean nothing now, and
            # nothing counts as synced with this seed until anti-entropy ran again.
            if self.local_incarnation is not None:
                self.push_cursor = None
                self.push_keys_cursor = None
                self.status.last_anti_entropy = None
                self.next_anti_entropy = 0.0
            self.local_incarnation = me.incarnation
        exclude = self.status.node_id
        ours_cursor, ours = (None, Rows.empty())
        if self.push_cursor is not None:
            ours_cursor, ours = local.changes(self.push_cursor, MAX_DELTA_KEYS, exclude)
            if ours_cursor.reset:
                self.push_cursor = None
                self.next_anti_entropy = 0.0
                ours_cursor, ours = None, Rows.empty()
        # Keys after rows, so that every key of an increment among those rows goes along.
        ours_keys_cursor, ours_keys = local.keys_since(self.push_keys_cursor)
        pull = self.pull_cursor or Cursor(0, 0)
        members = self.advertised() if self.advertised is not None else None
        request = Message(
            Kind.EXCHANGE_REQUEST,
            me,
            cursor=pull,
            rows=ours,
            members=members,
            keys_cursor=self.pull_keys_cursor or Cursor(0, 0),
            keys=ours_keys or None,
        )
        answer = self.remote.send(request)
        peer_restarted = self.peer_incarnation not in (None, answer.hello.incarnation)
        self.note_peer(answer.hello, me)
        self.push_keys_cursor = None if peer_restarted else ours_keys_cursor
        # Keys before rows: a retry here must never find the count without its key.
        local.remember_keys(answer.keys)
        self.pull_keys_cursor = answer.keys_cursor  # None from a peer that keeps no keys
        keys_complete = ours_keys_cursor.complete and (answer.keys_cursor is None or answer.keys_cursor.complete)
        if answer.members is not None:
            self.status.members = [member.as_list() for member in answer.members]
        self.status.keys_sent += len(ours.keys)
        if ours_cursor is not None:
            self.push_cursor = ours_cursor
        received = answer.rows or Rows.empty()
        local.merge(received, origin=answer.hello.node_id)
        self.status.keys_received += len(received.keys)
        if answer.cursor is None or answer.cursor.reset:
            self.pull_cursor = None
            self.next_anti_entropy = 0.0
            return True
        self.pull_cursor = answer.cursor
        return answer.cursor.complete and (ours_cursor is None or ours_cursor.complete) and keys_complete

    def swap_keys(self, local: LocalNode, me: Hello) -> None:
        """Every idempotency key either side has not sent the other yet, both ways, until none is left.

        Anti-entropy moves rows outside the exchanges that carry keys, so it calls
        this after reading a page of rows and before merging or sending it: each
        side reads its keys after the rows, and keys are remembered before the
        rows count, as in an exchange. Otherwise a retry on the receiver could
        find an increment without its key and count the text again.
        """
        while True:
            ours_cursor, ours = local.keys_since(self.push_keys_cursor)
            # A cursor of no incarnation asks for no rows: the answer holds only keys.
            answer = self.remote.send(
                Message(
                    Kind.EXCHANGE_REQUEST,
                    me,
                    cursor=Cursor(0, 0),
                    keys_cursor=self.pull_keys_cursor or Cursor(0, 0),
                    keys=ours or None,
                )
            )
            peer_restarted = self.peer_incarnation not in (None, answer.hello.incarnation)
            self.note_peer(answer.hello, me)
            self.push_keys_cursor = None if peer_restarted else ours_cursor
            local.remember_keys(answer.keys)
            self.pull_keys_cursor = answer.keys_cursor  # None from a peer that keeps no keys
            if peer_restarted or (ours_cursor.complete and (answer.keys_cursor is None or answer.keys_cursor.complete)):
                return

    def note_peer(self, hello: Hello, me: Hello) -> None:
        """Check who answered; a restarted peer (new incarnation) may have lost what we sent."""
        check_same_tokenizer(me.tokenizer, hello, f"seed {self.remote.url} (node {hello.node_id})")
        if self.status.node_id is not None and hello.node_id != self.status.node_id:
            logger.warning(
                "seed %s now answers as node %d (was %d)", self.remote.url, hello.node_id, self.status.node_id
            )
        self.status.node_id = hello.node_id
        if self.peer_incarnation is not None and hello.incarnation != self.peer_incarnation:
            logger.info("seed %s (node %d) restarted: repairing through anti-entropy", self.remote.url, hello.node_id)
            self.push_cursor = None
            self.pull_cursor = None
            # It may have lost keys we sent (it remembers them from its log, but not
            # those it had not written yet): send them all again.
            self.push_keys_cursor = None
            self.pull_keys_cursor = None
            self.next_anti_entropy = 0.0
        self.peer_incarnation = hello.incarnation

    def anti_entropy(self, local: LocalNode) -> None:
        """Compare bucket digests; exchange the rows of the buckets that differ, both ways."""
        me = local.hello()
        our_sequence, digests = local.digests(self.bucket_bits)
        members = self.advertised() if self.advertised is not None else None
        answer = self.remote.send(Message(Kind.DIGEST_REQUEST, me, digests=digests, members=members))
        self.note_peer(answer.hello, me)
        if answer.bucket_ids is None or answer.cursor is None:
            raise PeerRefused("digest answer without bucket ids or cursor")
        differing = answer.bucket_ids
        peer_id = answer.hello.node_id
        if len(differing):
            # Pull the peer's rows of those buckets, page by page.
            page = Page(0, MAX_PAGE_ROWS)
            while True:
                reply = self.remote.send(
                    Message(Kind.BUCKETS_REQUEST, me, bucket_ids=differing, bucket_bits=self.bucket_bits, page=page)
                )
                rows = reply.rows or Rows.empty()
                if len(rows.keys):
                    self.swap_keys(local, me)  # the peer reads its keys now, after these rows
                local.merge(rows, origin=peer_id)
                self.status.keys_received += len(rows.keys)
                if reply.page is None or reply.page.done:
                    break
                page = Page(reply.page.start_key, MAX_PAGE_ROWS)
            # Push ours of the same buckets.
            page = Page(0, MAX_PAGE_ROWS)
            while True:
                rows, next_page = local.bucket_rows(differing, self.bucket_bits, page)
                if len(rows.keys):
                    self.swap_keys(local, me)  # our keys, read after these rows, before the rows
                    self.remote.send(
                        Message(
                            Kind.BUCKETS_REQUEST,
                            me,
                            rows=rows,
                            bucket_ids=differing,
                            bucket_bits=self.bucket_bits,
                            page=Page(0, 0),
                        )
                    )
                    self.status.keys_sent += len(rows.keys)
                if next_page.done:
                    break
                page = Page(next_page.start_key, MAX_PAGE_ROWS)
        # Everything up to these positions is now on both sides; deltas carry on from there.
        self.pull_cursor = Cursor(answer.cursor.incarnation, answer.cursor.sequence)
        self.push_cursor = Cursor(me.incarnation, our_sequence)
        self.local_incarnation = me.incarnation
        self.status.last_anti_entropy = time.time()
        self.status.learned_for = f"{me.incarnation:016x}"
        self.status.anti_entropy_rounds += 1
        self.next_anti_entropy = self.clock() + self.anti_entropy_interval
        if len(differing):
            logger.info(
                "anti-entropy with %s (node %d): %d of %d buckets differed and were repaired",
                self.remote.url,
                peer_id,
                len(differing),
                len(digests),
            )
