"""Targeted scenarios for each feature of the Raft core, on a hand-driven network."""

from __future__ import annotations

import pytest

from kvstore.raft import (
    ConfigError,
    InvalidConfChange,
    NotLeader,
    ProgressState,
    ProposalDropped,
)
from kvstore.raft.types import (
    ConfChange,
    ConfChangeType,
    EntryType,
    Message,
    MessageType,
    StateType,
)

from .network import Cluster

ADD = ConfChangeType.ADD_NODE
LEARNER = ConfChangeType.ADD_LEARNER
REMOVE = ConfChangeType.REMOVE_NODE


def commit_own_term(c: Cluster, lead: int) -> None:
    """Let a fresh leader commit and apply its empty entry (gate for conf changes)."""
    c.settle()
    raft = c[lead].node.raft
    assert raft.raft_log.applied == raft.raft_log.last_index()


# -- election -------------------------------------------------------------------------------


def test_a_leader_is_elected_by_timeout_and_is_unique() -> None:
    c = Cluster([1, 2, 3])
    for _ in range(40):
        c.tick_all()
        if c.leaders():
            break
    assert len(c.leaders()) == 1
    lead = c.leaders()[0]
    term = c[lead].term
    assert term == 2  # bootstrap term 1, one election (pre-vote does not bump terms)
    assert all(c[n].node.raft.lead == lead for n in (1, 2, 3))
    # Followers keep it: many more ticks with a working network change nothing.
    c.tick_all(50)
    assert c.leaders() == [lead]
    assert c[lead].term == term


def test_a_node_with_a_shorter_log_cannot_win() -> None:
    """Votes go only to candidates whose log is at least as up to date (§5.4.1). Without
    check-quorum there is no lease, so only the log comparison decides."""
    c = Cluster([1, 2, 3], check_quorum=False)
    c.elect(1)
    c.isolated.add(3)
    c[1].node.propose(b"x")
    c.settle()
    c.heal()
    c[3].node.campaign()
    c.settle()
    assert c[3].state != StateType.LEADER
    assert c.leaders() == [1]
    c[2].node.campaign()
    c.settle()
    assert c.leaders() == [2]


def test_pre_vote_keeps_an_isolated_node_from_inflating_terms() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    term = c[1].term
    c.isolated.add(3)
    c.tick_all(100)
    assert c[3].term == term, "pre-vote must not bump the term of an isolated node"
    assert c[3].state == StateType.PRE_CANDIDATE
    c.isolated.clear()
    c.tick_all(5)
    assert c.leaders() == [1]
    assert c[1].term == term, "rejoining must not depose the leader"


def test_without_pre_vote_the_isolated_node_disrupts_the_cluster() -> None:
    """The contrast that shows the test above can fail."""
    c = Cluster([1, 2, 3], pre_vote=False)
    c.elect(1)
    term = c[1].term
    c.isolated.add(3)
    c.tick_all(100)
    assert c[3].term > term + 3
    c.isolated.clear()
    c.tick_all(30)
    assert all(c[n].term > term for n in (1, 2, 3))


def test_check_quorum_makes_an_isolated_leader_step_down() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolated.add(1)
    timeout = c[1].node.raft.election_timeout
    # The first check after isolation may still see the activity of the last window.
    c.tick_all(timeout - 1)
    c.tick_all(timeout + 1)
    assert c[1].state == StateType.FOLLOWER
    # The others elect a new leader among themselves.
    c.tick_all(40)
    assert c.leaders() and c.leaders()[0] in (2, 3)


def test_without_check_quorum_an_isolated_leader_stays_leader() -> None:
    c = Cluster([1, 2, 3], check_quorum=False)
    c.elect(1)
    c.isolated.add(1)
    c.tick_all(50)
    assert c[1].state == StateType.LEADER


def test_leader_lease_ignores_a_disruptive_vote_request() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.elect(1)
    term = c[1].term
    # Node 3 campaigns while 2 has heard from the leader recently: 2 ignores it.
    c[3].node.campaign()
    c.process(3)
    vote_reqs = [m for m in c.queue if m.type == MessageType.VOTE]
    assert vote_reqs and all(m.term == term + 1 for m in vote_reqs)
    c.settle()
    assert c[2].term == term
    assert c[2].node.raft.vote == 1


# -- replication ----------------------------------------------------------------------------


def test_proposals_replicate_and_apply_everywhere_in_order() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for i in range(20):
        c[1 + i % 3].node.propose(b"v%d" % i)  # followers forward to the leader
    c.settle()
    for n in (1, 2, 3):
        assert sorted(c[n].data()) == sorted(b"v%d" % i for i in range(20))
        assert c[n].data() == c[1].data()


def test_batching_puts_many_entries_in_one_append() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.drop_types.add(MessageType.APP)  # hold appends back while proposals pile up
    for i in range(50):
        c[1].node.propose(b"v%d" % i)
    c.settle()
    c.heal()
    c.sent.clear()
    c.tick_all()  # heartbeat responses reveal the lag; the leader catches up
    apps = [m for m in c.sent_of(MessageType.APP) if m.to == 2 and m.entries]
    assert apps and max(len(m.entries) for m in apps) >= 50
    assert len(c[2].data()) == 50


def test_pipelining_is_bounded_by_the_inflight_count() -> None:
    c = Cluster([1, 2, 3], max_size_per_msg=1, max_inflight_msgs=3)
    c.elect(1)
    c.drop_types.add(MessageType.APP_RESP)  # no acknowledgements: the window fills up
    for i in range(10):
        c[1].node.propose(b"v%d" % i)
    c.process(1)
    to2 = [m for m in c.queue if m.type == MessageType.APP and m.to == 2 and m.entries]
    assert len(to2) == 3, "exactly max_inflight_msgs appends may be in flight"
    assert [m.index for m in to2] == [to2[0].index + i for i in range(3)]
    pr = c[1].node.raft.trk.progress[2]
    assert pr.state == ProgressState.REPLICATE and pr.inflights.full()
    c.heal()
    c.settle()
    c.tick_all(3)
    assert len(c[2].data()) == 10


def test_pipelining_is_bounded_by_inflight_bytes() -> None:
    c = Cluster([1, 2, 3], max_size_per_msg=100, max_inflight_msgs=100, max_inflight_bytes=250)
    c.elect(1)
    c.drop_types.add(MessageType.APP_RESP)
    for i in range(10):
        c[1].node.propose(b"x" * 76 + b"%02d" % i)  # 100 budget bytes per entry
    c.process(1)
    to2 = [m for m in c.queue if m.type == MessageType.APP and m.to == 2 and m.entries]
    assert len(to2) == 3  # the third crosses 250 bytes; then the window is full
    c.heal()
    c.settle()
    c.tick_all(3)
    assert len(c[2].data()) == 10


def test_uncommitted_bytes_are_bounded_on_the_leader() -> None:
    c = Cluster([1, 2, 3], max_uncommitted_entries_size=500)
    c.elect(1)
    c.isolated.update({2, 3})
    accepted = 0
    with pytest.raises(ProposalDropped, match="uncommitted"):
        for _ in range(100):
            c[1].node.propose(b"x" * 76)  # 100 budget bytes each
            accepted += 1
    assert accepted == 5
    c.heal()
    c.tick_all(2)
    assert len(c[1].data()) == 5
    c[1].node.propose(b"room again")


def test_an_unreachable_follower_is_probed_again() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)

    def state() -> ProgressState:
        return c[1].node.status().progress[2].state

    assert state() == ProgressState.REPLICATE
    c[1].node.report_unreachable(2)
    assert state() == ProgressState.PROBE
    c[1].node.propose(b"v")
    c.settle()
    c.tick_all()
    assert state() == ProgressState.REPLICATE
    assert c[2].data() == [b"v"]


def test_commit_requires_a_quorum() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolated.update({2, 3})
    c[1].node.propose(b"lonely")
    c.settle()
    assert b"lonely" not in c[1].data()
    c.isolated.clear()
    c.tick_all()
    assert b"lonely" in c[1].data()


def test_an_old_term_entry_is_not_committed_by_counting_replicas() -> None:
    """Raft §5.4.2 (Figure 8): a leader may not commit an entry of an earlier term just
    because a majority holds it; only its own term's entries commit by counting."""
    c = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    c.elect(1)
    c.isolated.update({2, 3})
    c[1].node.propose(b"old")  # a term-2 entry only node 1 holds
    c.settle()
    old_index = c[1].node.raft.raft_log.last_index()
    c.heal()
    c.drop_types.add(MessageType.APP)  # votes pass, appends do not
    c[1].node.raft.become_follower(c[1].term, 0)
    c[1].node.campaign()
    c.settle()
    raft = c[1].node.raft
    assert raft.state == StateType.LEADER and raft.term == 3
    assert raft.raft_log.term(old_index) == 2
    # A majority (1 and 2) now holds the old entry, but not yet the leader's own entry.
    raft.trk.progress[2].maybe_update(old_index)
    assert raft.trk.committed() == old_index
    assert not raft._maybe_commit()
    assert raft.raft_log.committed < old_index
    # Once the term-3 entry after it is on a majority, both commit.
    raft.trk.progress[2].maybe_update(old_index + 1)
    assert raft._maybe_commit()
    assert raft.raft_log.committed == old_index + 1


def test_a_conflicting_follower_log_is_repaired_with_fast_back_off() -> None:
    c = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    c.elect(1)
    # Node 1, isolated, appends 30 entries no one else gets (they will be overwritten).
    c.isolated.add(1)
    for i in range(30):
        c[1].node.propose(b"stale%d" % i)
    c.settle()
    c.elect(2)
    for i in range(5):
        c[2].node.propose(b"new%d" % i)
    c.settle()
    c.elect(3)  # its probe to node 1 starts past the point where 1's log diverges
    c[3].node.propose(b"newer")
    c.settle()
    c.isolated.clear()
    c.sent.clear()
    c.tick_all(3)
    assert c.log(1) == c.log(3)
    assert c[1].data() == c[3].data()
    assert all(not d.startswith(b"stale") for d in c[1].data())
    rejections = [m for m in c.sent_of(MessageType.APP_RESP) if m.from_ == 1 and m.reject]
    # The hint skips the whole stale term at once instead of one index per round trip
    # (without it, there would be one rejection per divergent index: 6 here).
    assert len(rejections) == 1


# -- reads ----------------------------------------------------------------------------------


def test_read_index_on_the_leader_waits_for_a_heartbeat_quorum() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c[1].node.propose(b"w")
    c.settle()
    committed = c[1].node.raft.raft_log.committed
    c.drop_types.add(MessageType.HEARTBEAT_RESP)
    c[1].node.read_index(b"ctx-1")
    c.settle()
    assert c[1].read_states == [], "no answer without a quorum of heartbeat responses"
    c.heal()
    c[1].node.read_index(b"ctx-2")
    c.settle()
    # One read round is in flight at a time, and ctx-1's never came back: ctx-2 waits for
    # the next periodic heartbeat, which carries the newest context and answers both.
    assert c[1].read_states == []
    c.tick(1)
    c.settle()
    assert [(rs.index, rs.request_ctx) for rs in c[1].read_states] == [
        (committed, b"ctx-1"),
        (committed, b"ctx-2"),
    ]


def test_a_leader_round_answered_late_by_a_paused_follower_holds_no_later_read_back() -> None:
    """A round whose answers are lost or late (one follower's dropped, the other follower
    paused past the round) must not stall the reads behind it: the periodic heartbeat is
    the round's deadline (``heartbeat_tick`` ticks) and carries the newest context, and a
    late answer to the old round serves only the reads that round covered."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c[1].node.propose(b"w")
    c.settle()
    committed = c[1].node.raft.raft_log.committed
    c.down.add(2)  # paused: receives nothing, answers nothing
    c.cut(1, 3)  # 3's answers to this round are lost
    c[1].node.read_index(b"old")
    c.settle()
    c.heal()
    c.down.clear()
    c[1].node.read_index(b"new")
    c.process(1)
    late = Message(MessageType.HEARTBEAT_RESP, to=1, from_=2, term=c[1].term, context=b"old")
    c[1].node.step(late)  # the paused follower resumes and answers the old round
    c.process(1)
    assert [rs.request_ctx for rs in c[1].read_states] == [b"old"]
    c.tick(1)  # the next periodic heartbeat: a fresh round with the newest context
    c.settle()
    assert [(rs.index, rs.request_ctx) for rs in c[1].read_states] == [
        (committed, b"old"),
        (committed, b"new"),
    ]


def test_a_leader_drops_reads_on_losing_leadership_and_serves_new_ones_after() -> None:
    """Requests a leader held when it stepped down are gone with its term (the driver
    retries them under a new context); later reads on any member complete."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c[1].node.propose(b"w")
    c.settle()
    c.isolated.add(1)
    c[1].node.read_index(b"lost")
    c.tick_all(30)  # check-quorum: the isolated leader steps down; 2 or 3 takes over
    assert c[1].state != StateType.LEADER
    assert c[1].node.raft.read_only.pending == {}
    c.heal()
    c.tick_all(5)
    assert len(c.leaders()) == 1
    for nid, ctx in ((1, b"r1"), (2, b"r2"), (3, b"r3")):
        c[nid].node.read_index(ctx)
    c.settle()
    c.tick_all(1)
    for nid, ctx in ((1, b"r1"), (2, b"r2"), (3, b"r3")):
        assert ctx in [rs.request_ctx for rs in c[nid].read_states], nid


def test_read_index_requests_arriving_during_a_round_share_the_next_one() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c[1].node.propose(b"w")
    c.settle()
    c.sent.clear()
    c[1].node.read_index(b"first")
    c.process(1)  # the first round goes out
    for ctx in (b"second", b"third", b"fourth"):
        c[1].node.read_index(ctx)
        c.process(1)  # while the first round is out, no other starts
    c.settle()
    rounds = [m.context for m in c.sent_of(MessageType.HEARTBEAT) if m.to == 2]
    assert rounds == [b"first", b"fourth"], "one round for the three that waited"
    assert [rs.request_ctx for rs in c[1].read_states] == [b"first", b"second", b"third", b"fourth"]


def test_read_index_on_a_follower_is_forwarded_to_the_leader() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c[2].node.propose(b"w")
    c.settle()
    c[3].node.read_index(b"follower-read")
    c.settle()
    assert [(rs.index, rs.request_ctx) for rs in c[3].read_states] == [
        (c[1].node.raft.raft_log.committed, b"follower-read")
    ]


def test_read_index_waits_for_the_leaders_first_commit_in_its_term() -> None:
    c = Cluster([1, 2, 3])
    c.drop_types.add(MessageType.APP_RESP)  # the leader's empty entry cannot commit
    c[1].node.campaign()
    c.settle()
    assert c[1].state == StateType.LEADER
    c[1].node.read_index(b"early")
    c.settle()
    assert c[1].read_states == []
    c.heal()
    c.tick_all(2)
    assert [rs.request_ctx for rs in c[1].read_states] == [b"early"]
    assert c[1].read_states[0].index == c[1].node.raft.raft_log.committed


def test_read_index_without_a_leader_raises_not_leader() -> None:
    c = Cluster([1, 2, 3])
    with pytest.raises(NotLeader):
        c[2].node.read_index(b"x")


def test_an_isolated_leader_cannot_serve_reads() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolated.add(1)
    c[1].node.read_index(b"stale?")
    c.tick_all(5)
    assert c[1].read_states == []


# -- leadership transfer --------------------------------------------------------------------


def test_leadership_transfer_to_an_up_to_date_follower() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    term = c[1].term
    c[1].node.transfer_leader(2)
    c.settle()
    assert c.leaders() == [2]
    assert c[2].term == term + 1
    assert c.sent_of(MessageType.TIMEOUT_NOW)


def test_leadership_transfer_catches_a_lagging_target_up_first() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolated.add(3)
    for i in range(5):
        c[1].node.propose(b"v%d" % i)
    c.settle()
    c.isolated.clear()
    c[1].node.transfer_leader(3)
    assert c[1].node.status().lead_transferee == 3
    with pytest.raises(ProposalDropped):
        c[1].node.propose(b"during transfer")
    c.settle()
    assert c.leaders() == [3]
    assert len(c[3].data()) == 5


def test_a_transfer_that_cannot_finish_is_abandoned() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolated.add(3)
    c[1].node.transfer_leader(3)
    c.tick_all(c[1].node.raft.election_timeout + 1)
    assert c[1].state == StateType.LEADER
    assert c[1].node.status().lead_transferee == 0
    c[1].node.propose(b"accepted again")


def test_transfer_requested_on_a_follower_is_forwarded() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c[3].node.transfer_leader(3)
    c.settle()
    assert c.leaders() == [3]


# -- membership -----------------------------------------------------------------------------


def test_a_new_leader_refuses_conf_changes_until_its_own_entry_is_applied() -> None:
    c = Cluster([1, 2, 3])
    c.drop_types.add(MessageType.APP_RESP)
    c[1].node.campaign()
    c.settle()
    assert c[1].state == StateType.LEADER
    with pytest.raises(ProposalDropped):
        c[1].node.propose_conf_change(ConfChange(REMOVE, 3))
    c.heal()
    c.tick_all(2)
    c[1].node.propose_conf_change(ConfChange(REMOVE, 3))
    # One at a time: a second change waits until the first is applied.
    with pytest.raises(ProposalDropped):
        c[1].node.propose_conf_change(ConfChange(LEARNER, 4))
    c.settle()
    assert c[1].conf.voters == {1, 2}
    c[1].node.propose_conf_change(ConfChange(LEARNER, 4))


def test_add_a_learner_then_promote_it() -> None:
    c = Cluster([1, 2, 3], election_tick=5)
    c.elect(1)
    commit_own_term(c, 1)
    c.add_empty(4)
    c[1].node.propose_conf_change(ConfChange(LEARNER, 4))
    for i in range(5):
        c[1].node.propose(b"v%d" % i)
    c.settle()
    c.tick_all(3)
    assert c[4].data() == c[1].data() and len(c[4].data()) == 5
    assert c[4].node.raft.is_learner
    assert c[1].conf.learners == {4} and c[1].conf.voters == {1, 2, 3}
    # A learner does not count: with 2 and 3 down, nothing commits even though 4 acks.
    c.isolated.update({2, 3})
    c[1].node.propose(b"needs a voter quorum")
    c.settle()
    assert b"needs a voter quorum" not in c[1].data()
    assert b"needs a voter quorum" not in c[4].data()
    c.isolated.clear()
    c.tick_all(2)
    # A learner never campaigns.
    c.isolated.update({1})
    c.tick_all(40, settle=True)
    assert c[4].state == StateType.FOLLOWER
    assert c[4].term <= max(c[2].term, c[3].term)
    c.isolated.clear()
    c.tick_all(10)
    lead = c.leaders()[0]
    commit_own_term(c, lead)
    c[lead].node.propose_conf_change(ConfChange(ADD, 4))
    c.settle()
    assert c[4].conf.voters == {1, 2, 3, 4}
    assert not c[4].node.raft.is_learner
    # Now a voter, it can lead.
    c[lead].node.transfer_leader(4)
    c.settle()
    assert c.leaders() == [4]


def test_demoting_a_voter_directly_is_refused() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    commit_own_term(c, 1)
    with pytest.raises(InvalidConfChange) as err:
        c[1].node.propose_conf_change(ConfChange(LEARNER, 2))
    # Both kinds, so a driver handling either answers the client.
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ProposalDropped)


def test_remove_a_follower_shrinks_the_quorum() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    commit_own_term(c, 1)
    c[1].node.propose_conf_change(ConfChange(REMOVE, 3))
    c.settle()
    assert c[1].conf.voters == {1, 2}
    c.down.add(3)
    c.isolated.add(2)
    c[1].node.propose(b"two voters need both")
    c.settle()
    assert b"two voters need both" not in c[1].data()
    c.isolated.clear()
    c.tick_all()
    assert b"two voters need both" in c[1].data()
    # The removed node cannot disrupt: it is not promotable.
    c.down.discard(3)
    c.tick_all(40)
    assert c.leaders() == [1]


def test_removing_the_leader_makes_it_step_down_and_others_take_over() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    commit_own_term(c, 1)
    c[1].node.propose_conf_change(ConfChange(REMOVE, 1))
    c.settle()
    assert c[1].state == StateType.FOLLOWER
    c.tick_all(40)
    assert c.leaders() and c.leaders()[0] in (2, 3)
    lead = c.leaders()[0]
    c[lead].node.propose(b"after removal")
    c.settle()
    assert b"after removal" in c[2].data() and b"after removal" in c[3].data()


def test_removing_the_last_voter_is_refused() -> None:
    c = Cluster([1])
    c.elect(1)
    commit_own_term(c, 1)
    with pytest.raises(InvalidConfChange):
        c[1].node.propose_conf_change(ConfChange(REMOVE, 1))


# -- snapshots ------------------------------------------------------------------------------


def compact_leader(c: Cluster, lead: int) -> int:
    """Snapshot the leader's state at its applied index and drop the log behind it."""
    m = c[lead]
    applied = m.node.raft.raft_log.applied
    m.storage.create_snapshot(applied, m.conf, b"state@%d" % applied)
    m.storage.compact(applied)
    return applied


def test_a_lagging_follower_gets_a_snapshot_after_compaction() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolated.add(3)
    for i in range(10):
        c[1].node.propose(b"v%d" % i)
    c.settle()
    snap_index = compact_leader(c, 1)
    c.isolated.clear()
    c.tick_all()
    snaps = c.sent_of(MessageType.SNAP)
    assert [m.to for m in snaps] == [3]
    # The follower's answer to the snapshot already moved it back to replicating.
    assert c[1].node.raft.trk.progress[3].state == ProgressState.REPLICATE
    assert c[3].storage.snapshot().metadata.index == snap_index
    assert c[3].storage.snapshot().data == b"state@%d" % snap_index
    c[1].node.report_snapshot(3, ok=True)
    c[1].node.propose(b"after snapshot")
    c.settle()
    c.tick_all(2)
    assert c[3].data() == [b"after snapshot"]
    assert c[1].node.raft.trk.progress[3].state == ProgressState.REPLICATE
    assert c.log(3) == c.log(1)


def test_a_failed_snapshot_is_retried() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolated.add(3)
    for i in range(5):
        c[1].node.propose(b"v%d" % i)
    c.settle()
    compact_leader(c, 1)
    c.drop_types.add(MessageType.SNAP)
    c.isolated.clear()
    c.tick_all()
    c[1].node.report_snapshot(3, ok=False)
    assert c[1].node.raft.trk.progress[3].state == ProgressState.PROBE
    c.heal()
    c.tick_all(3)
    assert len(c.sent_of(MessageType.SNAP)) >= 2
    assert c[3].storage.snapshot().metadata.index == c[1].storage.snapshot().metadata.index


def test_a_joining_node_is_bootstrapped_by_snapshot() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    commit_own_term(c, 1)
    for i in range(5):
        c[1].node.propose(b"v%d" % i)
    c.settle()
    c.add_empty(4)
    c[1].node.propose_conf_change(ConfChange(ADD, 4))
    c.settle()
    compact_leader(c, 1)
    c.tick_all(3)
    c[1].node.propose(b"hello 4")
    c.settle()
    assert c[4].conf.voters == {1, 2, 3, 4}
    assert c[4].data()[-1] == b"hello 4"
    assert c.log(4)[-1] == c.log(1)[-1]


# -- restart --------------------------------------------------------------------------------


def test_a_restarted_node_keeps_its_vote_and_term() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c[1].node.campaign()
    c.process(1)
    c.queue = [m for m in c.queue if m.to == 2]
    c.settle()  # 2 votes for 1 (and persists it)
    assert c[2].node.raft.vote == 1
    term = c[2].term
    c.restart(2)
    assert (c[2].term, c[2].node.raft.vote) == (term, 1)
    # A competing candidate in the same term is refused by the restarted node.
    c[3].node.raft.term = term - 1
    c[3].node.raft.become_follower(term - 1, 0)
    c[3].node.campaign()
    c.process(3)
    for m in list(c.queue):
        if m.to == 2 and m.type == MessageType.VOTE:
            c.queue = [m]
            c.settle()
    resp = [m for m in c.sent_of(MessageType.VOTE_RESP) if m.from_ == 2 and m.to == 3]
    assert resp and resp[-1].reject


def test_committed_entries_are_applied_again_after_a_restart() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c[1].node.propose(b"durable")
    c.settle()
    c.tick_all()
    m = c.restart(2)
    m.applied.clear()
    c.process(2)
    assert b"durable" in m.data()
    assert all(e.type == EntryType.NORMAL for e in m.applied)


# -- options --------------------------------------------------------------------------------


def test_lease_based_reads_skip_the_heartbeat_round() -> None:
    c = Cluster([1, 2, 3])
    for m in c.members.values():
        m.node.raft.read_only_lease_based = True
    c.elect(1)
    c.sent.clear()
    c[1].node.read_index(b"lease")
    c.process(1)
    assert [rs.request_ctx for rs in c[1].read_states] == [b"lease"]
    assert not c.sent_of(MessageType.HEARTBEAT)


def test_followers_refuse_proposals_when_forwarding_is_disabled() -> None:
    c = Cluster([1, 2, 3])
    for m in c.members.values():
        m.node.raft.disable_proposal_forwarding = True
    c.elect(1)
    with pytest.raises(NotLeader) as err:
        c[2].node.propose(b"x")
    assert err.value.leader == 1


def test_committed_entries_are_handed_out_within_the_ready_budget() -> None:
    c = Cluster([1])
    c.elect(1)
    m = c[1]
    m.node.raft.raft_log.max_applying_size = 3 * (100 + 24)
    for i in range(10):
        m.node.propose(b"%03d" % i + b"x" * 97)
    sizes = []
    while m.node.has_ready():
        rd = m.node.ready()
        m.storage.append(rd.entries)
        if rd.committed_entries:
            sizes.append(len([e for e in rd.committed_entries if e.data]))
        m.node.advance(rd)
    assert sum(sizes) == 10 and max(sizes) <= 3 and len(sizes) >= 4
