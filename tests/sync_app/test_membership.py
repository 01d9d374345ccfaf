"""Membership: learned through exchanges, first-hand news wins, left is final, down after silence, kept on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage_app.core.store import GCounterStore
from sync_app.core.membership import Membership
from sync_app.core.protocol import MemberInfo
from sync_app.core.replication import DuplicateNodeId, PeerSession, Replica
from tests.sync_app.test_replication import LoopbackPeer


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def states(membership: Membership) -> dict[int, tuple[str, str]]:
    return {member.node_id: (member.url, member.state) for member in membership.members()}


def test_members_are_learned_second_hand_and_updated_first_hand(tmp_path: Path) -> None:
    clock = Clock()
    ours = Membership(0, "http://a:1", tmp_path / "members.json", member_timeout=60, clock=clock)
    assert ours.learn(
        [MemberInfo(1, "http://b:1"), MemberInfo(0, "http://elsewhere:1"), MemberInfo(2, "http://c:1")], 1
    )
    assert states(ours) == {1: ("http://b:1", "up"), 2: ("http://c:1", "up")}, "this node is never its own member"
    assert not ours.learn([MemberInfo(2, "http://c-old:1")], sender=1), "only the member itself says where it is"
    assert ours.learn([MemberInfo(2, "http://c-new:1")], sender=2)
    assert states(ours)[2] == ("http://c-new:1", "up")
    assert ours.advertised()[0] == MemberInfo(0, "http://a:1", "up", started_ms=int(clock.now * 1000))


def test_a_silent_member_goes_down_and_comes_back_up(tmp_path: Path) -> None:
    clock = Clock()
    ours = Membership(0, "http://a:1", None, member_timeout=60, clock=clock)
    ours.learn([MemberInfo(1, "http://b:1")], sender=1)
    clock.now += 59
    assert ours.mark_down_if_silent() == []
    clock.now += 1
    assert ours.mark_down_if_silent() == [1]
    assert states(ours)[1][1] == "down"
    ours.heard_from(1, clock.now)
    assert states(ours)[1][1] == "up"


def test_left_is_final_and_forget_drops_a_member(tmp_path: Path) -> None:
    ours = Membership(0, "http://a:1", None)
    ours.learn([MemberInfo(1, "http://b:1"), MemberInfo(2, "http://c:1")], sender=1)
    ours.learn([MemberInfo(1, "http://b:1", "left")], sender=2)
    ours.learn([MemberInfo(1, "http://b:1", "up")], sender=1)
    ours.heard_from(1, 1.0)
    assert states(ours)[1][1] == "left", "a member that left does not come back by gossip"
    assert ours.forget(2) and not ours.forget(2)
    assert set(states(ours)) == {1}


def test_membership_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "node-0.members.json"
    first = Membership(0, "http://a:1", path)
    first.learn([MemberInfo(1, "http://b:1"), MemberInfo(2, "http://c:1", "left")], sender=1)
    again = Membership(0, "http://a:1", path)
    assert states(again) == {1: ("http://b:1", "up"), 2: ("http://c:1", "left")}
    path.write_text("{not json")
    assert states(Membership(0, "http://a:1", path)) == {}, "a damaged file is reported and ignored"


def test_two_replicas_tell_each_other_their_members_in_an_exchange() -> None:
    a = Replica(GCounterStore(), 0, "words", membership=Membership(0, "http://a:1"))
    b = Replica(GCounterStore(), 1, "words", membership=Membership(1, "http://b:1"))
    assert b.membership is not None and a.membership is not None
    b.membership.learn([MemberInfo(2, "http://c:1")], sender=2)
    session = PeerSession(LoopbackPeer(b), anti_entropy_interval=3600)
    session.advertised = a.membership.advertised
    session.run_round(a)
    assert states(b.membership) == {0: ("http://a:1", "up"), 2: ("http://c:1", "up")}
    told = [MemberInfo.from_list(item) for item in session.status.members or []]
    assert [(info.node_id, info.url, info.state) for info in told] == [
        (1, "http://b:1", "up"),
        (0, "http://a:1", "up"),
        (2, "http://c:1", "up"),
    ]
    assert told[0].started_ms == b.membership.started_ms > 0 and told[1].started_ms == 0


def test_an_old_success_does_not_bring_a_down_member_back() -> None:
    clock = Clock()
    ours = Membership(0, "http://a:1", None, member_timeout=60, clock=clock)
    ours.learn([MemberInfo(1, "http://b:1")], sender=1)
    last_success = clock.now
    ours.heard_from(1, last_success)
    clock.now += 61
    assert ours.mark_down_if_silent() == [1]
    ours.heard_from(1, last_success)  # runsync reports the same last success again
    ours.learn([MemberInfo(1, "http://b:1")], sender=1, heard_at=last_success)  # and the members it heard then
    assert states(ours)[1][1] == "down"
    ours.learn([MemberInfo(1, "http://b:1")], sender=1, heard_at=clock.now)
    assert states(ours)[1][1] == "up"


def test_of_two_processes_with_one_id_the_later_is_the_newcomer_both_ways() -> None:
    clock = Clock()
    older = Replica(GCounterStore(), 0, "words", membership=Membership(0, "http://a:1", clock=clock))
    clock.now += 5
    newer = Replica(GCounterStore(), 0, "words", membership=Membership(0, "http://b:1", clock=clock))
    clashes: list[str] = []
    newer.on_clash = clashes.append
    older.on_clash = lambda reason: pytest.fail(f"the older process must keep its writes: {reason}")
    assert older.membership is not None and newer.membership is not None

    from_newer = PeerSession(LoopbackPeer(older), anti_entropy_interval=3600)
    from_newer.advertised = newer.membership.advertised
    with pytest.raises(DuplicateNodeId) as refused:
        from_newer.run_round(newer)
    assert refused.value.sender_is_newcomer and clashes == []

    from_older = PeerSession(LoopbackPeer(newer), anti_entropy_interval=3600)
    from_older.advertised = older.membership.advertised
    with pytest.raises(DuplicateNodeId) as refused:
        from_older.run_round(older)
    assert not refused.value.sender_is_newcomer
    assert len(clashes) == 1 and "this process started later" in clashes[0]
