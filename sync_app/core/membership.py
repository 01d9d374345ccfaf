"""Cluster membership: which nodes exist, where to reach them, and whether they are up, down or gone.

Nodes tell each other about members in every sync exchange (the members
section, the sender first with its advertised URL), so a node started with
one live member as its only seed is known to every node within a few rounds,
and learns of every other node the same way. A member is ``up`` while it is
heard from, ``down`` once it has been unreachable for ``member_timeout``
seconds (it is still contacted, with backoff), and ``left`` once it
decommissioned itself (contacted no more). A member goes away only by
``forget``, which leaves a ``forgotten`` tombstone that travels like any other
news. ``left`` and ``forgotten`` are never undone by gossip. The list is kept in a JSON file in the
data directory, replaced atomically, so it survives restarts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from storage_app.core.files import write_file_atomically
from sync_app.core.protocol import MEMBER_STATES, MemberInfo

logger = logging.getLogger(__name__)

DEFAULT_MEMBER_TIMEOUT = 60.0


@dataclass
class Member:
    node_id: int
    url: str
    state: str = "up"
    # Wall time this node last heard from it (directly or through runsync), or first heard of it.
    last_seen: float | None = None


class Membership:
    """The members this node knows (itself excluded); safe to use from any thread."""

    def __init__(
        self,
        node_id: int,
        url: str,
        path: Path | None = None,
        member_timeout: float = DEFAULT_MEMBER_TIMEOUT,
        clock: Callable[[], float] = time.time,
        reuses_id: bool = False,
    ) -> None:
        self.node_id = node_id
        self.url = url
        self.started_ms = int(clock() * 1000)  # this process's start, told to peers (newest wins a clash)
        self.reuses_id = reuses_id  # this process takes over the id of a decommissioned node
        self.path = path
        self.member_timeout = member_timeout
        self.clock = clock
        self.leaving = False
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # one writer of the file at a time
        self._members: dict[int, Member] = {}
        if path is not None:
            self._load(path)

    def members(self) -> list[Member]:
        """Every member but the forgotten ones, by node id."""
        with self._lock:
            known = sorted(self._members.values(), key=_id)
            return [Member(**asdict(member)) for member in known if member.state != "forgotten"]

    def advertised(self) -> tuple[MemberInfo, ...]:
        """What this node tells a peer: itself first, then every member it knows."""
        with self._lock:
            others = [MemberInfo(m.node_id, m.url, m.state) for m in sorted(self._members.values(), key=_id)]
        own = MemberInfo(self.node_id, self.url, "left" if self.leaving else "up", self.started_ms, self.reuses_id)
        return (own, *others)

    def learn(self, infos: Iterable[MemberInfo], sender: int | None = None, heard_at: float | None = None) -> bool:
        """Take what a peer said; True if anything changed.

        ``sender`` is its node id: its own entry is first-hand (its URL, whether it
        leaves). ``heard_at`` is when it said it (default: now); a member is up
        again only on news newer than what was last heard from it.
        """
        now = self.clock()
        heard_at = now if heard_at is None else heard_at
        changed = False
        with self._lock:
            for info in infos:
                if info.node_id == self.node_id:
                    continue  # what others say of this node is for its own decommission, not for gossip
                known = self._members.get(info.node_id)
                first_hand = info.node_id == sender
                if known is None:
                    state = info.state if info.state in _FINAL else "up"
                    self._members[info.node_id] = Member(info.node_id, info.url, state, heard_at if first_hand else now)
                    if state == "up":
                        logger.info("member %d (%s) joins the cluster as this node knows it", info.node_id, info.url)
                    changed = True
                    continue
                if known.state == "left" and first_hand and info.reuses and info.state == "up":
                    # An operator gave the decommissioned id to a new node (runnode --reuse-id).
                    logger.info("node id %d, decommissioned, is reused by %s", info.node_id, info.url)
                    known.state, known.url, known.last_seen = "up", info.url, heard_at
                    changed = True
                    continue
                if known.state in _FINAL and not (known.state == "left" and info.state == "forgotten"):
                    continue  # a member that left or was forgotten never comes back by gossip
                if info.state in _FINAL:
                    known.state = info.state
                    logger.info("member %d (%s) is %s", info.node_id, known.url, info.state)
                    changed = True
                elif first_hand:
                    if known.url != info.url:
                        logger.info("member %d now advertises %s (was %s)", info.node_id, info.url, known.url)
                        known.url = info.url
                        changed = True
                    if heard_at > (known.last_seen or 0.0):
                        known.last_seen = heard_at
                        if known.state != "up":
                            known.state = "up"
                            changed = True
        if changed:
            self._save()
        return changed

    def heard_from(self, node_id: int, at: float) -> None:
        """A successful round with the member at wall time ``at``."""
        with self._lock:
            member = self._members.get(node_id)
            if member is None or member.state in _FINAL or at <= (member.last_seen or 0.0):
                return  # an old success (runsync reports its last one every time) says nothing new
            member.last_seen = at
            changed = member.state != "up"
            member.state = "up"
        if changed:
            logger.info("member %d is up again", node_id)
            self._save()

    def mark_down_if_silent(self) -> list[int]:
        """Members not heard from for ``member_timeout`` seconds become ``down``; return their ids."""
        now = self.clock()
        gone_down = []
        with self._lock:
            for member in self._members.values():
                heard = member.last_seen
                if member.state == "up" and heard is not None and now - heard >= self.member_timeout:
                    member.state = "down"
                    gone_down.append(member.node_id)
        for node_id in gone_down:
            logger.warning("member %d has been unreachable for %.0f s: it is down", node_id, self.member_timeout)
        if gone_down:
            self._save()
        return gone_down

    def state_of(self, node_id: int) -> str | None:
        with self._lock:
            member = self._members.get(node_id)
            return member.state if member is not None else None

    def forget(self, node_id: int) -> bool:
        """Drop a member for good (an operator's decision), leaving a tombstone; True if it was known."""
        with self._lock:
            member = self._members.get(node_id)
            found = member is not None and member.state != "forgotten"
            if member is None:
                self._members[node_id] = Member(node_id, "", "forgotten", self.clock())
            else:
                member.state = "forgotten"
        logger.info("member %d is forgotten", node_id)
        self._save()
        return found

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            logger.error("%s cannot be read (%s): starting with no known members", path, error)
            return
        for item in data.get("members", []) if isinstance(data, dict) else []:
            try:
                member = Member(int(item["node_id"]), str(item["url"]), str(item["state"]), item.get("last_seen"))
            except (KeyError, TypeError, ValueError):
                continue
            if member.state in MEMBER_STATES and member.node_id != self.node_id:
                self._members[member.node_id] = member

    def _save(self) -> None:
        if self.path is None:
            return
        with self._save_lock:
            with self._lock:
                record = {"members": [asdict(member) for member in sorted(self._members.values(), key=_id)]}
            try:
                write_file_atomically(self.path, json.dumps(record, indent=1).encode())
            except OSError as error:
                logger.error("cannot write %s: %s", self.path, error)


_FINAL = ("left", "forgotten")


def _id(member: Member) -> int:
    return member.node_id
