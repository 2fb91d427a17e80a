"""Unit tests of the core's small modules, several against naive reference versions."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvstore.raft
from kvstore.raft import (
    CompactedError,
    ConfigError,
    MemoryStorage,
    RaftConfig,
    RaftError,
    RawNode,
    SnapshotOutOfDateError,
    SplitMix64,
    StepLocalMessageError,
    UnavailableError,
)
from kvstore.raft.config import draw
from kvstore.raft.log import RaftLog
from kvstore.raft.progress import Inflights, ProgressState, ProgressTracker
from kvstore.raft.quorum import VoteResult, committed_index, has_quorum, vote_result
from kvstore.raft.types import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
    StateType,
)
from kvstore.raft.util import ENTRY_OVERHEAD, limit_size

# -- quorum against naive definitions ---------------------------------------------------------

voter_sets = st.frozensets(st.integers(min_value=1, max_value=9), min_size=1, max_size=7)


@settings(deadline=None)
@given(voter_sets, st.data())
def test_committed_index_matches_the_naive_definition(
    voters: frozenset[int], data: st.DataObject
) -> None:
    match = {v: data.draw(st.integers(min_value=0, max_value=20)) for v in voters}
    # Naive: the largest index that at least a majority of voters have reached.
    naive = max(i for i in range(21) if sum(m >= i for m in match.values()) > len(voters) / 2)
    assert committed_index(voters, match) == naive


@settings(deadline=None)
@given(voter_sets, st.data())
def test_vote_result_matches_enumerating_the_missing_votes(
    voters: frozenset[int], data: st.DataObject
) -> None:
    votes = {v: data.draw(st.sampled_from([True, False, None])) for v in voters}
    cast = {v: g for v, g in votes.items() if g is not None}
    missing = [v for v, g in votes.items() if g is None]
    # Naive: won if a majority already granted; lost if no completion of the missing
    # votes could win; pending otherwise.
    outcomes = set()
    for fill in itertools.product([True, False], repeat=len(missing)):
        full = {**cast, **dict(zip(missing, fill, strict=True))}
        outcomes.add(sum(full.values()) > len(voters) / 2)
    if sum(cast.values()) > len(voters) / 2:
        expected = VoteResult.WON
    elif outcomes == {False}:
        expected = VoteResult.LOST
    else:
        expected = VoteResult.PENDING
    assert vote_result(voters, cast) == expected


def test_has_quorum() -> None:
    assert has_quorum({1, 2, 3}, {1, 3})
    assert not has_quorum({1, 2, 3}, {3, 4, 5})
    assert not has_quorum({1, 2, 3, 4}, {1, 2})


# -- inflights and progress -------------------------------------------------------------------


def test_inflights_bound_by_count_and_bytes() -> None:
    inf = Inflights(size=3, max_bytes=100)
    inf.add(5, 10)
    inf.add(7, 10)
    assert not inf.full()
    inf.add(9, 90)
    assert inf.full() and inf.bytes == 110
    inf.free_le(7)
    assert inf.count() == 1 and inf.bytes == 90 and not inf.full()
    inf.add(10, 10)
    assert inf.full()  # 100 bytes
    inf.free_first_one()
    assert inf.count() == 1 and inf.bytes == 10
    inf.free_le(100)
    assert inf.count() == 0 and inf.bytes == 0


def test_progress_probe_pauses_after_one_append_and_replicate_pipelines() -> None:
    trk = ProgressTracker(max_inflight=2, max_inflight_bytes=0)
    pr = trk.new_progress(10, is_learner=False)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(3, 30)
    assert pr.is_paused() and pr.next == 10  # probing does not advance optimistically
    assert pr.maybe_update(12)
    pr.become_replicate()
    assert pr.next == 13 and not pr.is_paused()
    pr.sent_entries(2, 20)
    pr.sent_entries(2, 20)
    assert pr.next == 17 and pr.is_paused()
    # A stale rejection (below match) is ignored; a real one falls back to match + 1.
    assert not pr.maybe_decr_to(11, 0)
    assert pr.maybe_decr_to(14, 0)
    assert pr.next == 13


def test_progress_probe_uses_the_reject_hint() -> None:
    pr = ProgressTracker(8, 0).new_progress(50, is_learner=False)
    assert not pr.maybe_decr_to(30, 5)  # not the index we probed: stale
    assert pr.maybe_decr_to(49, 20)
    assert pr.next == 21


def test_progress_snapshot_state() -> None:
    pr = ProgressTracker(8, 0).new_progress(5, is_learner=False)
    pr.become_snapshot(40)
    assert pr.is_paused() and pr.pending_snapshot == 40
    pr.become_probe()
    assert pr.next == 41 and pr.state == ProgressState.PROBE


# -- storage and log --------------------------------------------------------------------------


def ents(*pairs: tuple[int, int]) -> list[Entry]:
    return [Entry(term=t, index=i, data=b"%d" % i) for i, t in pairs]


def test_memory_storage_bounds_and_compaction() -> None:
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 1), (3, 2), (4, 2)))
    assert (s.first_index(), s.last_index()) == (1, 4)
    assert s.term(3) == 2
    s.create_snapshot(3, ConfState(frozenset({1})), b"snap")
    s.compact(3)
    assert (s.first_index(), s.last_index()) == (4, 4)
    assert s.term(3) == 2  # the term just before the first entry stays known
    with pytest.raises(CompactedError):
        s.term(2)
    with pytest.raises(CompactedError):
        s.entries(3, 5, 1 << 20)
    with pytest.raises(UnavailableError):
        s.entries(4, 6, 1 << 20)
    with pytest.raises(UnavailableError):
        s.term(5)
    with pytest.raises(SnapshotOutOfDateError):
        s.apply_snapshot(Snapshot(SnapshotMetadata(2, 1)))
    # Appending a conflicting suffix replaces it; entries below the snapshot are skipped.
    s.append(ents((3, 2), (4, 3), (5, 3)))
    assert [(e.index, e.term) for e in s.entries(4, 6, 1 << 20)] == [(4, 3), (5, 3)]


def test_size_limits_always_return_at_least_one_entry() -> None:
    big = [Entry(1, i, data=b"x" * 100) for i in range(1, 6)]
    assert len(limit_size(big, 1)) == 1
    assert len(limit_size(big, 2 * (100 + ENTRY_OVERHEAD))) == 2
    s = MemoryStorage()
    s.append(big)
    assert len(s.entries(1, 6, 0)) == 1


def test_log_spans_storage_and_unstable_and_finds_conflicts() -> None:
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 1), (3, 2)))
    log = RaftLog(s)
    log.append(ents((4, 2), (5, 3), (6, 3)))
    assert log.last_index() == 6 and log.first_index() == 1
    assert [e.index for e in log.slice(2, 6, 1 << 20)] == [2, 3, 4, 5]
    assert log.find_conflict(ents((3, 2), (4, 2))) == 0
    assert log.find_conflict(ents((4, 2), (5, 4))) == 5
    assert log.find_conflict(ents((6, 3), (7, 3))) == 7
    # Fast back-off: the last index <= 6 whose term is <= 2.
    assert log.find_conflict_by_term(6, 2) == (4, 2)
    assert log.find_conflict_by_term(6, 0) == (0, 0)
    assert log.is_up_to_date(6, 3) and log.is_up_to_date(1, 4)
    assert not log.is_up_to_date(7, 2)


def test_log_refuses_to_overwrite_committed_entries() -> None:
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 1)))
    log = RaftLog(s)
    log.commit_to(2)
    with pytest.raises(RaftError):
        log.maybe_append(1, 1, 2, ents((2, 5)))
    assert log.maybe_append(1, 2, 2, ents((2, 5))) is None  # term mismatch: reject


def test_log_commits_only_entries_of_the_given_term() -> None:
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 2), (3, 3)))
    log = RaftLog(s)
    assert not log.maybe_commit(2, 3)
    assert log.maybe_commit(3, 3) and log.committed == 3
    with pytest.raises(RaftError):
        log.commit_to(9)


def test_unstable_entries_stabilize_only_if_terms_match() -> None:
    log = RaftLog(MemoryStorage())
    log.append(ents((1, 1), (2, 1)))
    log.stable_to(2, 7)  # persisted a different term (entry was replaced meanwhile)
    assert log.unstable_entries() and log.unstable.offset == 1
    log.stable_to(1, 1)
    assert [e.index for e in log.unstable_entries()] == [2]


# -- config and RawNode surface ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": 0},
        {"id": 1, "heartbeat_tick": 0},
        {"id": 1, "election_tick": 1, "heartbeat_tick": 1},
        {"id": 1, "max_inflight_msgs": 0},
        {"id": 1, "max_inflight_bytes": 10, "max_size_per_msg": 100},
        {"id": 1, "read_only_lease_based": True, "check_quorum": False},
    ],
)
def test_invalid_configs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RaftConfig(**kwargs).validate()  # type: ignore[arg-type]


def test_generators_of_either_kind_draw_in_range() -> None:
    class FloatOnly:
        def __init__(self) -> None:
            self.r = random.Random(3)

        def random(self) -> float:
            return self.r.random()

    for rng in (random.Random(1), SplitMix64(7), FloatOnly()):
        got = {draw(rng, 10, 20) for _ in range(500)}
        assert got <= set(range(10, 20)) and len(got) > 5
    assert [SplitMix64(9).randrange(0, 1000) for _ in range(3)] == [
        SplitMix64(9).randrange(0, 1000) for _ in range(3)
    ]


def single_node() -> tuple[RawNode, MemoryStorage]:
    s = MemoryStorage(ConfState(voters=frozenset({1})))
    return RawNode(RaftConfig(id=1, rng=random.Random(0)), s), s


def test_ready_cycle_on_a_single_node() -> None:
    node, storage = single_node()
    node.campaign()
    rd = node.ready()
    assert rd.soft_state is not None and rd.soft_state.state == StateType.LEADER
    assert rd.hard_state == HardState(term=1, vote=1, commit=1)
    assert rd.must_sync and [(e.index, e.term) for e in rd.entries] == [(1, 1)]
    assert [e.index for e in rd.committed_entries] == [1]
    with pytest.raises(RaftError, match="advance"):
        node.ready()
    storage.set_hard_state(rd.hard_state)
    storage.append(rd.entries)
    node.advance(rd)
    assert not node.has_ready()
    node.propose(b"a")
    node.propose(b"b")
    rd = node.ready()
    assert [e.data for e in rd.entries] == [b"a", b"b"]
    assert [e.data for e in rd.committed_entries] == [b"a", b"b"]
    assert rd.hard_state == HardState(1, 1, 3) and rd.must_sync
    storage.append(rd.entries)
    node.advance(rd)
    st_ = node.status()
    assert st_.applied == 3 and st_.progress[1].match == 3
    node.read_index(b"r")
    rd = node.ready()
    assert [(r.index, r.request_ctx) for r in rd.read_states] == [(3, b"r")]
    assert not rd.must_sync
    node.advance(rd)


def test_a_commit_only_change_does_not_need_a_sync() -> None:
    """Term, vote and entries must be synced before sending; a commit index alone need not
    be (it is re-learned from the leader after a crash)."""
    s2 = MemoryStorage(ConfState(voters=frozenset({1, 2, 3})))
    n2 = RawNode(RaftConfig(id=2, rng=random.Random(0)), s2)
    n2.step(Message(MessageType.APP, to=2, from_=1, term=1, entries=(Entry(1, 1),), commit=0))
    rd = n2.ready()
    assert rd.must_sync and rd.hard_state == HardState(term=1, vote=0, commit=0)
    s2.append(rd.entries)
    n2.advance(rd)
    n2.step(Message(MessageType.HEARTBEAT, to=2, from_=1, term=1, commit=1))
    rd = n2.ready()
    assert rd.hard_state == HardState(term=1, vote=0, commit=1)
    assert not rd.must_sync
    assert [e.index for e in rd.committed_entries] == [1]


def test_local_message_types_cannot_come_from_the_network() -> None:
    node, _ = single_node()
    for t in (MessageType.LOCAL_HUP, MessageType.LOCAL_BEAT, MessageType.LOCAL_CHECK_QUORUM):
        with pytest.raises(StepLocalMessageError):
            node.step(Message(t, to=1, from_=2, term=5))


def test_public_surface() -> None:
    """Everything exported exists, and the driver API named in the contract is there."""
    for name in kvstore.raft.__all__:
        assert hasattr(kvstore.raft, name), name
    for method in (
        "tick",
        "step",
        "propose",
        "propose_conf_change",
        "apply_conf_change",
        "read_index",
        "transfer_leader",
        "campaign",
        "has_ready",
        "ready",
        "advance",
        "report_unreachable",
        "report_snapshot",
        "status",
    ):
        assert callable(getattr(RawNode, method)), method
