"""``RawNode``: the driver's interface to the core.

The driver (the server, or a simulation) owns the network, the disk and the clock. Its loop:

1. feed inputs: ``tick()`` on a timer, ``step(msg)`` for each peer message, ``propose``,
   ``read_index``, ... for client requests;
2. when ``has_ready()``, take ``rd = ready()`` and, in this order: persist ``rd.hard_state``,
   ``rd.entries`` and ``rd.snapshot`` (fsync if ``rd.must_sync``); send ``rd.messages``;
   apply ``rd.snapshot`` and ``rd.committed_entries`` (calling ``apply_conf_change`` for
   CONF_CHANGE entries) and serve ``rd.read_states``; then ``advance(rd)``.

Persisting before sending is what makes votes and acknowledgements durable: a node never
tells a peer about state it could forget in a crash. Inputs may be fed between ``ready()``
and ``advance()``; their effects appear in the next Ready. ``ready()`` may not be called
again before ``advance()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .codec import encode_conf_change
from .config import RaftConfig
from .errors import ProposalDropped, RaftError, StepLocalMessageError
from .progress import ProgressState
from .raft import Raft
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
    Ready,
    SoftState,
    StateType,
)

_LOCAL_ONLY = frozenset(
    {
        MessageType.LOCAL_HUP,
        MessageType.LOCAL_BEAT,
        MessageType.LOCAL_UNREACHABLE,
        MessageType.LOCAL_SNAP_STATUS,
        MessageType.LOCAL_CHECK_QUORUM,
    }
)
_RESPONSES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
    }
)


@dataclass(frozen=True, slots=True)
class PeerProgress:
    """The leader's view of one follower, as reported by ``status()``."""

    match: int
    next: int
    state: ProgressState
    is_learner: bool
    recent_active: bool
    inflight: int


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of a node's state for health checks, metrics and tests."""

    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    conf_state: ConfState
    lead_transferee: int = NONE
    progress: dict[int, PeerProgress] = field(default_factory=dict)
    """Only on the leader."""


class RawNode:
    """A Raft node without any I/O: inputs in, ``Ready`` values out."""

    def __init__(self, config: RaftConfig, storage: LogStorage) -> None:
        self.raft = Raft(config, storage)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()
        self._outstanding = False

    # -- inputs -------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (pre-vote first if enabled)."""
        self.raft.step(Message(MessageType.LOCAL_HUP, from_=self.raft.id))

    def propose(self, data: bytes) -> None:
        """Propose ``data`` for the log. Raises ProposalDropped (NotLeader when there is no
        leader or forwarding is disabled). Forwarded proposals may still be lost; the
        driver learns about success only by seeing the entry committed."""
        self.raft.step(
            Message(
                MessageType.LOCAL_PROP,
                from_=self.raft.id,
                entries=(Entry(0, 0, EntryType.NORMAL, data),),
            )
        )

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change (one at a time; the leader refuses another while one
        is pending, and refuses any until its own term's first entry is applied)."""
        self.raft.step(
            Message(
                MessageType.LOCAL_PROP,
                from_=self.raft.id,
                entries=(Entry(0, 0, EntryType.CONF_CHANGE, encode_conf_change(cc)),),
            )
        )

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change (from ``committed_entries``); returns the new
        membership, which the driver persists with its next snapshot."""
        return self.raft.apply_conf_change(cc)

    def step(self, msg: Message) -> None:
        """Feed a message received from a peer. Local message types are refused; responses
        from nodes outside the configuration and proposals the leader drops are ignored
        (the proposer retries on its own timeout)."""
        if msg.type in _LOCAL_ONLY:
            raise StepLocalMessageError(f"{msg.type.name} may not come from the network")
        if msg.type in _RESPONSES and msg.from_ not in self.raft.trk.progress:
            return
        try:
            self.raft.step(msg)
        except ProposalDropped:
            return

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read tagged ``ctx`` (unique per request); the answer comes
        as a ReadState in a later Ready. Raises NotLeader when no leader is known."""
        self.raft.step(Message(MessageType.READ_INDEX, from_=self.raft.id, context=ctx))

    def transfer_leader(self, target: int) -> None:
        """Ask the leader to hand leadership to ``target`` (which must be a voter)."""
        self.raft.step(Message(MessageType.TRANSFER_LEADER, from_=target))

    def report_unreachable(self, node: int) -> None:
        """The driver failed to send to ``node``: the leader falls back to probing it."""
        self.raft.step(Message(MessageType.LOCAL_UNREACHABLE, from_=node))

    def report_snapshot(self, node: int, ok: bool) -> None:
        """Outcome of sending a snapshot to ``node``; on failure it is retried later."""
        self.raft.step(Message(MessageType.LOCAL_SNAP_STATUS, from_=node, reject=not ok))

    # -- outputs ------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ``ready()`` would return anything to do."""
        r = self.raft
        r.flush()
        log = r.raft_log
        if r.msgs or r.read_states or log.unstable.entries or log.unstable.snapshot:
            return True
        if log.has_next_committed_ents():
            return True
        if r.lead != self._prev_soft.lead or r.state != self._prev_soft.state:
            return True
        return (
            r.term != self._prev_hard.term
            or r.vote != self._prev_hard.vote
            or log.committed != self._prev_hard.commit
        )

    def ready(self) -> Ready:
        """What the driver must persist, send and apply now (see the module docstring)."""
        if self._outstanding:
            raise RaftError("ready() called again before advance()")
        r = self.raft
        r.flush()
        log = r.raft_log
        soft = hard = None
        if r.lead != self._prev_soft.lead or r.state != self._prev_soft.state:
            soft = r.soft_state()
            self._prev_soft = soft
        h = r.hard_state()
        if h != self._prev_hard:
            hard = h
        entries = tuple(log.unstable.entries)
        snap = log.unstable.snapshot
        committed = tuple(log.next_committed_ents())
        if committed:
            log.accepted_applying(committed[-1].index)
        must_sync = (
            bool(entries)
            or snap is not None
            or (
                hard is not None
                and (hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote)
            )
        )
        if hard is not None:
            self._prev_hard = hard
        rd = Ready(
            soft_state=soft,
            hard_state=hard,
            entries=entries,
            snapshot=snap,
            committed_entries=committed,
            messages=tuple(r.msgs),
            read_states=tuple(r.read_states),
            must_sync=must_sync,
        )
        r.msgs = []
        r.read_states = []
        self._outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver finished with ``rd``: its entries are persisted and its committed
        entries applied."""
        log = self.raft.raft_log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.metadata.index)
            log.applied_to(rd.snapshot.metadata.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
            self.raft.reduce_uncommitted_size(rd.committed_entries)
        self._outstanding = False

    def status(self) -> Status:
        """The node's current state."""
        r = self.raft
        progress: dict[int, PeerProgress] = {}
        if r.state == StateType.LEADER:
            progress = {
                nid: PeerProgress(
                    pr.match,
                    pr.next,
                    pr.state,
                    pr.is_learner,
                    pr.recent_active,
                    pr.inflights.count(),
                )
                for nid, pr in sorted(r.trk.progress.items())
            }
        return Status(
            id=r.id,
            hard_state=r.hard_state(),
            soft_state=r.soft_state(),
            applied=r.raft_log.applied,
            conf_state=r.conf_state(),
            lead_transferee=r.lead_transferee,
            progress=progress,
        )
