"""The sync side of the serving process: the node's store as peers see it, and what runsync reports."""

from __future__ import annotations

import threading
from typing import Any

from storage_app.node import Node, current_node
from sync_app.core.membership import Membership
from sync_app.core.peers import learned_from_every_seed
from sync_app.core.protocol import MemberInfo
from sync_app.core.replication import PeerStatus, Replica


class SyncState:
    """Replication's view of one ``Node``: its ``Replica``, runsync's last report, counter-app pushes."""

    def __init__(self, node: Node) -> None:
        self.node = node
        config = node.config
        self.membership = Membership(
            config.node_id,
            config.advertise_url,
            config.members_path,
            member_timeout=config.member_timeout,
            reuses_id=config.reuse_id,
        )
        self.replica = Replica(node.store, config.node_id, config.tokenizer, membership=self.membership, ledger=node)
        self.replica.on_clash = node.mark_clash
        self._lock = threading.Lock()
        self._report: dict[str, Any] = {}
        # Address of each counter-app peer that pushed its full state to this process.
        self._legacy_pushes: set[str] = set()

    def note_legacy_push(self, address: str) -> None:
        """A counter-app peer at ``address`` pushed its full state (which holds its copy of our slot)."""
        with self._lock:
            self._legacy_pushes.add(address)

    def take_report(self, report: dict[str, Any]) -> bool:
        """Keep runsync's report: the members its peers told of, who answered; fold pending increments
        once the slot is learned from every seed (True if so)."""
        with self._lock:
            self._report = report
            pushes = set(self._legacy_pushes)
        for peer in report.get("peers", []):
            node_id, members, last_success = peer.get("node_id"), peer.get("members"), peer.get("last_success")
            if members and last_success:
                # The members the peer told of in its answer at its last successful round (a report
                # repeats them until the next one, so they are news only as of then).
                told = (MemberInfo.from_list(item) for item in members)
                self.membership.learn(told, sender=node_id, heard_at=float(last_success))
            if node_id is not None and last_success:
                self.membership.heard_from(int(node_id), float(last_success))
            if peer.get("clash"):
                self.node.mark_clash(str(peer["clash"]))
        self.membership.mark_down_if_silent()
        node = self.node
        if node.unproven is None:
            return False
        incarnation = f"{self.replica.incarnation:016x}"
        if not learned_from_every_seed(node.config.seeds, list(report.get("peers", [])), incarnation, pushes):
            return False
        return node.fold_pending()

    def cluster_status(self) -> dict[str, Any]:
        """This node and what runsync last reported of its peers (GET /cluster)."""
        node, store = self.node, self.node.store
        with self._lock:
            report = dict(self._report)
        return {
            "node": {
                "node_id": node.config.node_id,
                "incarnation": f"{self.replica.incarnation:016x}",
                "sequence": self.replica.journal.sequence,
                "keys": len(store),
                "slots": store.width,
                "tokenizer": node.config.tokenizer,
                "ready": node.ready,
                "clash": node.clash,
                "pending": node.pending_status(),
                "idempotency": {"keys": len(node.idempotency), "evicted": node.idempotency.evicted},
            },
            "reported_at": report.get("reported_at"),
            "leaving_since": report.get("leaving_since"),
            "peers": self._peers(list(report.get("peers", []))),
        }

    def _peers(self, reported: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every member and every seed: runsync's view of the link, and the member's state."""
        members = {member.node_id: member for member in self.membership.members()}
        peers = []
        for peer in reported:
            node_id = peer.get("node_id")
            if peer.get("mode") == "forgotten" or (
                node_id is not None and self.membership.state_of(int(node_id)) == "forgotten"
            ):
                continue
            member = members.pop(int(node_id), None) if node_id is not None else None
            if member is not None:
                state = member.state
            else:
                state = "up" if peer.get("reachable") or peer.get("mode") == "self" else "down"
            peers.append({**peer, "state": state})
        for member in members.values():  # known through gossip, not (yet) in runsync's report
            peers.append({**PeerStatus(url=member.url, node_id=member.node_id).as_dict(), "state": member.state})
        return peers


_current: SyncState | None = None
_current_lock = threading.Lock()


def current_sync() -> SyncState:
    """The sync state of the process's current node."""
    global _current
    node = current_node()
    state = _current
    if state is None or state.node is not node:
        with _current_lock:
            if _current is None or _current.node is not node:
                _current = SyncState(node)
            state = _current
    return state
