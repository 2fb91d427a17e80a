"""The Raft state machine: one node's role, term, log and the rules that move them.

``Raft.step`` is the single entry point. It first applies the rules that hold for every
role (term comparison, leader lease, votes), then hands the message to the step function of
the current role (``_step_leader``, ``_step_candidate``, ``_step_follower``), chosen when the
role changes. ``Raft.tick`` advances logical time. Nothing is sent: outgoing messages are
queued in ``msgs`` and ReadIndex answers in ``read_states``, for ``RawNode`` to hand out.

Naming follows the Raft paper and Ongaro's thesis; section numbers refer to the thesis.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from . import confchange, quorum
from .codec import decode_conf_change
from .config import RaftConfig, RandomSource, SplitMix64, draw
from .errors import (
    CodecError,
    CompactedError,
    ConfigError,
    InvalidConfChange,
    NotLeader,
    ProposalDropped,
    RaftError,
    SnapshotTemporarilyUnavailableError,
)
from .log import RaftLog
from .progress import ProgressState, ProgressTracker
from .read_only import ReadOnly
from .storage import LogStorage
from .types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SoftState,
    StateType,
)
from .util import entries_size

CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""Vote context marking an election forced by leadership transfer: voters skip the lease
check, since the old leader asked for it."""

_MT = MessageType


class CampaignType(enum.Enum):
    """Why a node starts an election."""

    PRE_ELECTION = 0
    ELECTION = 1
    TRANSFER = 2


def _vote_resp_type(t: MessageType) -> MessageType:
    return _MT.VOTE_RESP if t == _MT.VOTE else _MT.PRE_VOTE_RESP


class Raft:
    """One Raft node's algorithm state. Not thread-safe; driven through ``RawNode``."""

    def __init__(self, config: RaftConfig, storage: LogStorage) -> None:
        config.validate()
        self.id = config.id
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = StateType.FOLLOWER
        self.raft_log = RaftLog(storage, config.max_committed_size_per_ready)
        self.trk = ProgressTracker(config.max_inflight_msgs, config.max_inflight_bytes)
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.read_only_lease_based = config.read_only_lease_based
        self.pending_read_index_messages: list[Message] = []
        self.max_msg_size = config.max_size_per_msg
        self.max_uncommitted_size = config.max_uncommitted_entries_size
        self.uncommitted_size = 0
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.disable_proposal_forwarding = config.disable_proposal_forwarding
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee = NONE
        self.bcast_pending = False
        """Leader: appends to every follower are due before the next Ready."""
        self.read_beat_pending = False
        """Leader: a heartbeat round for new ReadIndex requests is due before the next Ready."""
        self.read_beat_ctx = b""
        """Leader: the ReadIndex context of the last heartbeat round."""
        self.pending_conf_index = 0
        """Leader: index of the last conf change (or of the first entry of its term) that
        must be applied before another conf change may be proposed."""
        self.is_learner = False
        self.rng: RandomSource = config.rng if config.rng is not None else SplitMix64(config.id)
        self._tick: Callable[[], None] = self._tick_election
        self._step: Callable[[Message], None] = self._step_follower

        hs, cs = storage.initial_state()
        confchange.restore(self.trk, cs, self.raft_log.last_index() + 1)
        self.is_learner = self.id in self.trk.learners
        if hs != HardState():
            self._load_state(hs)
        if config.applied > 0:
            # What the driver applied is committed by definition, even if the persisted
            # commit index lags (it is written without a sync when only it changes).
            self.raft_log.commit_to(config.applied)
            self.raft_log.applied_to(config.applied)
        self.become_follower(self.term, NONE)

    # -- state --------------------------------------------------------------------------

    def _load_state(self, hs: HardState) -> None:
        # A commit index below the snapshot is possible when an unsynced hard state was
        # lost in a crash: the snapshot is committed by definition, so keep its index.
        if hs.commit > self.raft_log.last_index():
            raise RaftError(
                f"persisted commit {hs.commit} is beyond the last index "
                f"{self.raft_log.last_index()}: the log lost entries it had acknowledged"
            )
        self.raft_log.committed = max(hs.commit, self.raft_log.committed)
        self.term = hs.term
        self.vote = hs.vote

    def hard_state(self) -> HardState:
        """What must be persisted before dependent messages are sent."""
        return HardState(self.term, self.vote, self.raft_log.committed)

    def soft_state(self) -> SoftState:
        """Leader and role, for reporting."""
        return SoftState(self.lead, self.state)

    def conf_state(self) -> ConfState:
        """The current membership."""
        return confchange.conf_state(self.trk)

    def promotable(self) -> bool:
        """Whether this node may become leader: a voter, and not installing a snapshot."""
        return self.id in self.trk.voters and self.raft_log.unstable.snapshot is None

    def _reset_randomized_election_timeout(self) -> None:
        et = self.election_timeout
        self.randomized_election_timeout = draw(self.rng, et, 2 * et)

    def _past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.lead_transferee = NONE
        self.bcast_pending = False
        self.read_beat_pending = False
        self.trk.reset_votes()
        last = self.raft_log.last_index()
        for nid, pr in list(self.trk.progress.items()):
            fresh = self.trk.new_progress(last + 1, pr.is_learner)
            if nid == self.id:
                fresh.match = last
            self.trk.progress[nid] = fresh
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only.reset()
        self.pending_read_index_messages = []

    def become_follower(self, term: int, lead: int) -> None:
        """Follow ``lead`` (or nobody) in ``term``."""
        self._step = self._step_follower
        self._reset(term)
        self._tick = self._tick_election
        self.lead = lead
        self.state = StateType.FOLLOWER

    def become_candidate(self) -> None:
        """Start a real election: new term, vote for self."""
        if self.state == StateType.LEADER:
            raise RaftError("a leader cannot become a candidate directly")
        self._step = self._step_candidate
        self._reset(self.term + 1)
        self._tick = self._tick_election
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_pre_candidate(self) -> None:
        """Start a pre-election: ask whether we could win, without changing term or vote
        (§9.6), so a node that cannot win does not disrupt the cluster."""
        if self.state == StateType.LEADER:
            raise RaftError("a leader cannot become a pre-candidate directly")
        self._step = self._step_candidate
        self.trk.reset_votes()
        self._tick = self._tick_election
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE

    def become_leader(self) -> None:
        """Lead this term: reset every follower to probing and append an empty entry of
        our own term, which must commit before reads or conf changes are served."""
        if self.state == StateType.FOLLOWER:
            raise RaftError("a follower cannot become leader directly")
        self._step = self._step_leader
        self._reset(self.term)
        self._tick = self._tick_heartbeat
        self.lead = self.id
        self.state = StateType.LEADER
        self.trk.progress[self.id].become_replicate()
        self._append_entries([Entry(term=0, index=0)])
        # No conf change until the entry above (our term's first) is applied.
        self.pending_conf_index = self.raft_log.last_index()

    # -- ticks --------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self._tick()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self._past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(_MT.LOCAL_HUP, from_=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(_MT.LOCAL_CHECK_QUORUM, from_=self.id))
            # A transfer that did not finish within an election timeout is abandoned.
            if self.state == StateType.LEADER and self.lead_transferee != NONE:
                self.lead_transferee = NONE
        if self.state != StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(_MT.LOCAL_BEAT, from_=self.id))

    # -- elections ----------------------------------------------------------------------

    def _has_unapplied_conf_change(self) -> bool:
        log = self.raft_log
        if log.committed <= log.applied:
            return False
        lo = max(log.applied + 1, log.first_index())
        ents = log.slice(lo, log.committed + 1, 1 << 62)
        return any(e.type == EntryType.CONF_CHANGE for e in ents)

    def _hup(self, kind: CampaignType) -> None:
        if self.state == StateType.LEADER or not self.promotable():
            return
        # A committed but unapplied conf change may change whether we are a voter.
        if self._has_unapplied_conf_change():
            return
        self._campaign(kind)

    def _campaign(self, kind: CampaignType) -> None:
        if kind == CampaignType.PRE_ELECTION:
            self.become_pre_candidate()
            vote_type = _MT.PRE_VOTE
            term = self.term + 1  # the term we would campaign in
        else:
            self.become_candidate()
            vote_type = _MT.VOTE
            term = self.term
        self.trk.record_vote(self.id, True)
        if self.trk.tally()[2] == quorum.VoteResult.WON:
            # A single-voter cluster wins at once.
            if kind == CampaignType.PRE_ELECTION:
                self._campaign(CampaignType.ELECTION)
            else:
                self.become_leader()
            return
        last = self.raft_log.last_index()
        last_term = self.raft_log.last_term()
        ctx = CAMPAIGN_TRANSFER if kind == CampaignType.TRANSFER else b""
        for nid in sorted(self.trk.voters):
            if nid == self.id:
                continue
            self.msgs.append(
                Message(
                    vote_type,
                    to=nid,
                    from_=self.id,
                    term=term,
                    index=last,
                    log_term=last_term,
                    context=ctx,
                )
            )

    # -- step ---------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Process one message (from the network or local). Raises ProposalDropped when a
        proposal (or a local read) cannot be accepted."""
        if m.term != 0 and not self._check_term(m):
            return
        t = m.type
        if t == _MT.LOCAL_HUP:
            self._hup(CampaignType.PRE_ELECTION if self.pre_vote else CampaignType.ELECTION)
        elif t in (_MT.VOTE, _MT.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step(m)

    def _check_term(self, m: Message) -> bool:
        """The rules about terms shared by every role; returns whether to go on with ``m``.

        Messages with term 0 (local ones, forwarded proposals and reads) skip this.
        """
        if m.term > self.term:
            if m.type in (_MT.VOTE, _MT.PRE_VOTE) and self._in_lease(m):
                # Leader lease (§4.2.3): we heard from a leader recently, so this vote
                # comes from a disruptive (e.g. removed or partitioned) node. Ignore it.
                return False
            if m.type == _MT.PRE_VOTE:
                pass  # never change term on a pre-vote request
            elif m.type == _MT.PRE_VOTE_RESP and not m.reject:
                pass  # a granted pre-vote carries the term we will campaign in
            elif m.type in (_MT.APP, _MT.HEARTBEAT, _MT.SNAP):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, NONE)
            return True
        if m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (_MT.HEARTBEAT, _MT.APP):
                # A stale leader (e.g. healed from a partition) learns our term from this,
                # and steps down; without it, check-quorum/pre-vote could leave it stuck.
                self.msgs.append(Message(_MT.APP_RESP, to=m.from_, from_=self.id, term=self.term))
            elif m.type == _MT.PRE_VOTE:
                self.msgs.append(
                    Message(
                        _MT.PRE_VOTE_RESP, to=m.from_, from_=self.id, term=self.term, reject=True
                    )
                )
            return False
        return True

    def _in_lease(self, m: Message) -> bool:
        """Whether a vote request must be ignored because a leader was heard from within
        the election timeout (unless the leader itself asked for the election)."""
        return (
            m.context != CAMPAIGN_TRANSFER
            and self.check_quorum
            and self.lead != NONE
            and self.election_elapsed < self.election_timeout
        )

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.from_
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == _MT.PRE_VOTE and m.term > self.term)
        )
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            # Granting: reply in the requested term (for a pre-vote, our future term).
            self.msgs.append(
                Message(_vote_resp_type(m.type), to=m.from_, from_=self.id, term=m.term)
            )
            if m.type == _MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self.msgs.append(
                Message(
                    _vote_resp_type(m.type),
                    to=m.from_,
                    from_=self.id,
                    term=self.term,
                    reject=True,
                )
            )

    # -- leader -------------------------------------------------------------------------

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == _MT.LOCAL_BEAT:
            self._bcast_read_heartbeat()
        elif t == _MT.LOCAL_CHECK_QUORUM:
            self._check_quorum_active()
        elif t == _MT.LOCAL_PROP:
            self._leader_propose(m)
        elif t == _MT.READ_INDEX:
            self._leader_read_index(m)
        elif m.from_ in self.trk.progress:
            # Anything else concerns one member; ignore nodes no longer (or not yet) in
            # the configuration.
            self._step_leader_peer(m)

    def _check_quorum_active(self) -> None:
        if not self.trk.quorum_active():
            self.become_follower(self.term, NONE)
        for nid, pr in self.trk.progress.items():
            if nid != self.id:
                pr.recent_active = False

    def _step_leader_peer(self, m: Message) -> None:
        t = m.type
        pr = self.trk.progress[m.from_]
        if t == _MT.APP_RESP:
            pr.recent_active = True
            if m.reject:
                self._handle_append_rejection(m)
            else:
                self._handle_append_ack(m)
        elif t == _MT.HEARTBEAT_RESP:
            self._handle_heartbeat_response(m)
        elif t == _MT.LOCAL_SNAP_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for a heartbeat response (or the follower's append response) before
            # sending again, rather than hammering a follower that just failed.
            pr.msg_app_flow_paused = True
        elif t == _MT.LOCAL_UNREACHABLE:
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
        elif t == _MT.TRANSFER_LEADER:
            self._leader_transfer(m.from_)

    def _handle_heartbeat_response(self, m: Message) -> None:
        pr = self.trk.progress[m.from_]
        pr.recent_active = True
        pr.msg_app_flow_paused = False
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            # The follower is alive but a full window is not draining: some appends were
            # lost. Free one slot so an append goes out; if it does not match, the
            # rejection sends the follower back to probing.
            pr.inflights.free_first_one()
        if pr.match < self.raft_log.last_index() or pr.state == ProgressState.PROBE:
            self._send_append(m.from_)
        if not self.read_only_lease_based and m.context:
            acks = self.read_only.recv_ack(m.from_, m.context)
            if acks is not None and quorum.has_quorum(self.trk.voters, acks):
                for rs in self.read_only.advance(m.context):
                    self._respond_read_index(rs.req, rs.index)

    def _leader_propose(self, m: Message) -> None:
        if not m.entries:
            raise ProposalDropped("empty proposal")
        if self.id not in self.trk.progress:
            raise ProposalDropped("this node was removed from the configuration")
        if self.lead_transferee != NONE:
            raise ProposalDropped(f"leadership is being transferred to {self.lead_transferee}")
        last = self.raft_log.last_index()
        for i, e in enumerate(m.entries):
            if e.type != EntryType.CONF_CHANGE:
                continue
            if self.pending_conf_index > self.raft_log.applied:
                raise ProposalDropped(
                    "a configuration change is pending (or the leader's first entry of its "
                    "term is not applied yet)"
                )
            try:
                confchange.validate(self.trk, decode_conf_change(e.data))
            except CodecError as exc:
                raise InvalidConfChange(f"undecodable conf change: {exc}") from exc
            except ConfigError as exc:
                raise InvalidConfChange(str(exc)) from exc
            self.pending_conf_index = last + i + 1
        if not self._append_entries(list(m.entries)):
            raise ProposalDropped("too many uncommitted bytes")
        self._bcast_append()

    def _append_entries(self, es: list[Entry]) -> bool:
        size = entries_size([e for e in es if e.data])
        if (
            self.max_uncommitted_size
            and self.uncommitted_size > 0
            and self.uncommitted_size + size > self.max_uncommitted_size
        ):
            return False
        self.uncommitted_size += size
        li = self.raft_log.last_index()
        term = self.term
        stamped = [Entry(term, li + 1 + i, e.type, e.data) for i, e in enumerate(es)]
        li = self.raft_log.append(stamped)
        self.trk.progress[self.id].maybe_update(li)
        self._maybe_commit()
        return True

    def reduce_uncommitted_size(self, ents: tuple[Entry, ...]) -> None:
        """Committed entries left the uncommitted budget (called on advance)."""
        if self.uncommitted_size == 0:
            return
        size = entries_size([e for e in ents if e.data])
        self.uncommitted_size = max(0, self.uncommitted_size - size)

    def _maybe_commit(self) -> bool:
        if not self.raft_log.maybe_commit(self.trk.committed(), self.term):
            return False
        if self.pending_read_index_messages and self._committed_entry_in_current_term():
            pending, self.pending_read_index_messages = self.pending_read_index_messages, []
            for req in pending:
                self._send_read_index_response(req)
        return True

    def _committed_entry_in_current_term(self) -> bool:
        return self.raft_log.term_or_zero(self.raft_log.committed) == self.term

    def _handle_append_rejection(self, m: Message) -> None:
        pr = self.trk.progress[m.from_]
        next_probe = m.reject_hint
        if m.log_term > 0:
            # Fast back-off: skip every entry of ours whose term is above the follower's
            # term at the hint; they cannot match.
            next_probe = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)[0]
        if pr.maybe_decr_to(m.index, next_probe):
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            self._send_append(m.from_)

    def _handle_append_ack(self, m: Message) -> None:
        pr = self.trk.progress[m.from_]
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT:
            if pr.match + 1 >= self.raft_log.first_index():
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._bcast_append()
        elif old_paused:
            self._send_append(m.from_)
        # Pipelining: keep the window full while entries remain.
        while self._maybe_send_append(m.from_, send_if_empty=False):
            pass
        if m.from_ == self.lead_transferee and pr.match == self.raft_log.last_index():
            self._send_timeout_now(m.from_)

    def _leader_read_index(self, m: Message) -> None:
        if self.trk.is_singleton():
            self._respond_read_index(m, self.raft_log.committed)
            return
        if not self._committed_entry_in_current_term():
            # Our commit index may lag the cluster's until our term's first entry commits
            # (§6.4 step 1); answer once it does.
            self.pending_read_index_messages.append(m)
            return
        self._send_read_index_response(m)

    def _send_read_index_response(self, m: Message) -> None:
        committed = self.raft_log.committed
        if self.read_only_lease_based:
            self._respond_read_index(m, committed)
            return
        self.read_only.add_request(committed, m)
        self.read_only.recv_ack(self.id, m.context)
        # One heartbeat round, sent in flush(), confirms every request that arrived before
        # it (ReadOnly.advance), so requests arriving together share it.
        self.read_beat_pending = True

    def _respond_read_index(self, req: Message, index: int) -> None:
        if req.from_ in (NONE, self.id):
            self.read_states.append(ReadState(index, req.context))
        else:
            self.msgs.append(
                Message(
                    _MT.READ_INDEX_RESP,
                    to=req.from_,
                    from_=self.id,
                    term=self.term,
                    index=index,
                    context=req.context,
                )
            )

    def _leader_transfer(self, target: int) -> None:
        pr = self.trk.progress.get(target)
        if pr is None or pr.is_learner or target == self.id:
            return
        if self.lead_transferee == target:
            return  # already in progress
        self.lead_transferee = target
        # The transfer must finish within an election timeout or it is abandoned.
        self.election_elapsed = 0
        if pr.match == self.raft_log.last_index():
            self._send_timeout_now(target)
        else:
            self._send_append(target)

    def _send_timeout_now(self, to: int) -> None:
        self.msgs.append(Message(_MT.TIMEOUT_NOW, to=to, from_=self.id, term=self.term))

    # -- replication ------------------------------------------------------------------------

    def _send_append(self, to: int) -> None:
        self._maybe_send_append(to, send_if_empty=True)

    def _maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send ``to`` the entries it lacks (or a snapshot); returns whether sent."""
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        log = self.raft_log
        prev = pr.next - 1
        try:
            prev_term = log.term(prev)
            ents = log.entries_from(pr.next, self.max_msg_size)
        except CompactedError:
            return self._send_snapshot(to)
        if not ents and not send_if_empty:
            return False
        self.msgs.append(
            Message(
                _MT.APP,
                to=to,
                from_=self.id,
                term=self.term,
                index=prev,
                log_term=prev_term,
                entries=tuple(ents),
                commit=log.committed,
            )
        )
        pr.sent_entries(len(ents), entries_size(ents) if ents else 0)
        return True

    def _send_snapshot(self, to: int) -> bool:
        pr = self.trk.progress[to]
        if not pr.recent_active:
            return False
        try:
            snap = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snap.is_empty:
            raise RaftError("entries are compacted but there is no snapshot to send")
        self.msgs.append(Message(_MT.SNAP, to=to, from_=self.id, term=self.term, snapshot=snap))
        pr.become_snapshot(snap.metadata.index)
        return True

    def _bcast_append(self) -> None:
        """Schedule appends to every follower. They are built in :meth:`flush`, just
        before the next Ready, so that every proposal and commit advance since the last
        Ready travels in one append per follower (batching)."""
        self.bcast_pending = True

    def flush(self) -> None:
        """Send what was scheduled since the last Ready: the appends of
        :meth:`_bcast_append` (one carrying the new entries or just the commit index, then
        more while the follower's window allows: pipelining), and one heartbeat round for
        the ReadIndex requests that arrived meanwhile."""
        if (
            self.read_beat_pending
            and self.state == StateType.LEADER
            and self.read_beat_ctx not in self.read_only.pending
        ):
            self._bcast_read_heartbeat()
        if not self.bcast_pending:
            return
        self.bcast_pending = False
        if self.state != StateType.LEADER:
            return
        for nid in self.trk.members():
            if nid != self.id:
                self._send_append(nid)
                while self._maybe_send_append(nid, send_if_empty=False):
                    pass

    def _bcast_read_heartbeat(self) -> None:
        """A heartbeat round carrying the newest pending ReadIndex context. One round is in
        flight at a time: requests arriving meanwhile wait for its answers and share the
        next (the periodic heartbeat re-sends the newest context should a round be lost)."""
        self.read_beat_pending = False
        self.read_beat_ctx = self.read_only.last_pending_ctx()
        self._bcast_heartbeat(self.read_beat_ctx)

    def _bcast_heartbeat(self, ctx: bytes) -> None:
        committed = self.raft_log.committed
        for nid in self.trk.members():
            if nid == self.id:
                continue
            pr = self.trk.progress[nid]
            # Never tell a follower to commit beyond what it is known to hold.
            self.msgs.append(
                Message(
                    _MT.HEARTBEAT,
                    to=nid,
                    from_=self.id,
                    term=self.term,
                    commit=min(pr.match, committed),
                    context=ctx,
                )
            )

    # -- candidate ----------------------------------------------------------------------

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = _MT.PRE_VOTE_RESP if self.state == StateType.PRE_CANDIDATE else _MT.VOTE_RESP
        if t in (_MT.LOCAL_PROP, _MT.READ_INDEX):
            raise NotLeader(NONE)
        if t == _MT.APP:
            self.become_follower(m.term, m.from_)
            self._handle_append(m)
        elif t == _MT.HEARTBEAT:
            self.become_follower(m.term, m.from_)
            self._handle_heartbeat(m)
        elif t == _MT.SNAP:
            self.become_follower(m.term, m.from_)
            self._handle_snapshot(m)
        elif t == my_resp:
            self.trk.record_vote(m.from_, not m.reject)
            result = self.trk.tally()[2]
            if result == quorum.VoteResult.WON:
                if self.state == StateType.PRE_CANDIDATE:
                    self._campaign(CampaignType.ELECTION)
                else:
                    self.become_leader()
                    self._bcast_append()
            elif result == quorum.VoteResult.LOST:
                self.become_follower(self.term, NONE)

    # -- follower -----------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == _MT.LOCAL_PROP:
            if self.lead == NONE:
                raise NotLeader(NONE)
            if self.disable_proposal_forwarding:
                raise NotLeader(self.lead)
            self.msgs.append(
                Message(_MT.LOCAL_PROP, to=self.lead, from_=m.from_, entries=m.entries)
            )
        elif t == _MT.APP:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_append(m)
        elif t == _MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_heartbeat(m)
        elif t == _MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_snapshot(m)
        elif t == _MT.TRANSFER_LEADER:
            if self.lead != NONE:
                self.msgs.append(
                    Message(_MT.TRANSFER_LEADER, to=self.lead, from_=m.from_, term=self.term)
                )
        elif t == _MT.TIMEOUT_NOW:
            # The leader asks us to take over: skip pre-vote and the lease (§3.10).
            self._hup(CampaignType.TRANSFER)
        elif t == _MT.READ_INDEX:
            if self.lead == NONE:
                raise NotLeader(NONE)
            self.msgs.append(
                Message(_MT.READ_INDEX, to=self.lead, from_=m.from_, context=m.context)
            )
        elif t == _MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        log = self.raft_log
        if m.index < log.committed:
            self.msgs.append(
                Message(
                    _MT.APP_RESP, to=m.from_, from_=self.id, term=self.term, index=log.committed
                )
            )
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self.msgs.append(
                Message(_MT.APP_RESP, to=m.from_, from_=self.id, term=self.term, index=last_new)
            )
            return
        hint_index, hint_term = log.find_conflict_by_term(
            min(m.index, log.last_index()), m.log_term
        )
        self.msgs.append(
            Message(
                _MT.APP_RESP,
                to=m.from_,
                from_=self.id,
                term=self.term,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(min(m.commit, self.raft_log.last_index()))
        self.msgs.append(
            Message(
                _MT.HEARTBEAT_RESP, to=m.from_, from_=self.id, term=self.term, context=m.context
            )
        )

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is not None and self._restore(snap):
            index = self.raft_log.last_index()
        else:
            index = self.raft_log.committed
        self.msgs.append(
            Message(_MT.APP_RESP, to=m.from_, from_=self.id, term=self.term, index=index)
        )

    def _restore(self, snap: Snapshot) -> bool:
        """Install a leader's snapshot unless our log already covers it."""
        md = snap.metadata
        if md.index <= self.raft_log.committed:
            return False
        cs = md.conf_state
        # A joining member may receive a snapshot taken before it was added: it installs
        # it anyway (it is not promotable then) and learns of itself from the entries
        # that follow.
        if self.raft_log.match_term(md.index, md.term):
            # We have the entry: just fast-forward the commit index.
            self.raft_log.commit_to(md.index)
            return False
        self.raft_log.restore(snap)
        confchange.restore(self.trk, cs, self.raft_log.last_index() + 1)
        self.is_learner = self.id in self.trk.learners
        return True

    # -- membership ---------------------------------------------------------------------

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change; returns the new membership."""
        # New members start probing at our last index, so the first probe carries an
        # entry and goes out at once instead of waiting for the next proposal.
        cs = confchange.apply(self.trk, cc, max(self.raft_log.last_index(), 1))
        self.is_learner = self.id in self.trk.learners
        if self.id not in self.trk.progress or self.is_learner:
            if self.state == StateType.LEADER:
                # Removed (or demoted): step down so the rest elect a leader promptly.
                self.become_follower(self.term, NONE)
            return cs
        if self.state != StateType.LEADER:
            return cs
        if self.lead_transferee != NONE and self.lead_transferee not in self.trk.voters:
            self.lead_transferee = NONE
        if self._maybe_commit():
            # Removing a voter can shrink the quorum and commit pending entries.
            self._bcast_append()
        else:
            for nid in self.trk.members():
                if nid != self.id:
                    self._maybe_send_append(nid, send_if_empty=False)
        return cs
