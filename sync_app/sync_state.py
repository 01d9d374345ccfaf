"""The sync side of the serving process: the node's store as peers see it, and what runsync reports."""

from __future__ import annotations

import threading
from typing import Any

from storage_app.node import Node, current_node
from sync_app.core.peers import learned_from_every_seed
from sync_app.core.replication import Replica


class SyncState:
    """Replication's view of one ``Node``: its ``Replica``, runsync's last report, counter-app pushes."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.replica = Replica(node.store, node.config.node_id, node.config.tokenizer)
        self._lock = threading.Lock()
        self._report: dict[str, Any] = {}
        # Address of each counter-app peer that pushed its full state to this process.
        self._legacy_pushes: set[str] = set()

    def note_legacy_push(self, address: str) -> None:
        """A counter-app peer at ``address`` pushed its full state (which holds its copy of our slot)."""
        with self._lock:
            self._legacy_pushes.add(address)

    def take_report(self, report: dict[str, Any]) -> bool:
        """Keep runsync's report; fold pending increments once the slot is learned from every seed (True if so)."""
        with self._lock:
            self._report = report
            pushes = set(self._legacy_pushes)
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
                "pending": node.pending_status(),
            },
            "reported_at": report.get("reported_at"),
            "peers": report.get("peers", []),
        }


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
