"""The values that flow in and out of the Raft core.

Everything here is an immutable (or treated-as-immutable) value: the core never hands out
an object it will mutate later, so a driver may keep a ``Ready`` while the core moves on.
These types are the contract between ``kvstore.raft`` (the algorithm), ``kvstore.storage``
(which persists entries, hard state and snapshots) and ``kvstore.server`` (which sends
messages and applies committed entries).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NONE = 0
"""The node id that means "nobody" (no vote, no leader). Real node ids are >= 1."""


class EntryType(enum.IntEnum):
    """What a log entry carries."""

    NORMAL = 0
    """Opaque application data (an encoded request for the state machine), or empty."""
    CONF_CHANGE = 1
    """An encoded :class:`ConfChange`; applied by the driver through ``apply_conf_change``."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``index`` starts at 1; ``term`` is the leader's term that created it."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """The state that must be on disk before any message that depends on it is sent.

    Losing ``vote`` after granting it would let a node vote twice in one term: the classic
    Raft safety bug. ``commit`` is persisted so a restart does not re-apply from zero.
    """

    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """The cluster membership: voters and learners (non-voting members)."""

    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()


class ConfChangeType(enum.IntEnum):
    """A single-server membership change."""

    ADD_NODE = 0
    """Add a voter, or promote an existing learner to voter."""
    REMOVE_NODE = 1
    """Remove a voter or a learner."""
    ADD_LEARNER = 2
    """Add a non-voting member that receives the log but does not count for quorum."""


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change proposal. ``context`` is opaque to Raft (the server stores the
    member's name and peer URLs there)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    """Where a snapshot sits in the log and which membership it carries."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state-machine snapshot: ``data`` is opaque to Raft (the MVCC store's encoding)."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def is_empty(self) -> bool:
        """Whether this is the zero snapshot (index 0)."""
        return self.metadata.index == 0


class MessageType(enum.IntEnum):
    """Every message the core sends or accepts. ``LOCAL_*`` never leave the node."""

    LOCAL_HUP = 0
    """Start an election (or pre-election) now."""
    LOCAL_BEAT = 1
    """Leader: send heartbeats now."""
    LOCAL_PROP = 2
    """A proposal of entries."""
    APP = 3
    """Append entries (leader to follower)."""
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    PRE_VOTE = 7
    PRE_VOTE_RESP = 8
    SNAP = 9
    """Install a snapshot (leader to follower whose needed entries were compacted)."""
    HEARTBEAT = 10
    HEARTBEAT_RESP = 11
    TRANSFER_LEADER = 12
    TIMEOUT_NOW = 13
    """Leader to transfer target: campaign now, skipping pre-vote and lease checks."""
    READ_INDEX = 14
    READ_INDEX_RESP = 15
    LOCAL_UNREACHABLE = 16
    LOCAL_SNAP_STATUS = 17
    LOCAL_CHECK_QUORUM = 18


@dataclass(frozen=True, slots=True)
class Message:
    """A message between cores. ``from_`` because ``from`` is a keyword."""

    type: MessageType
    to: int = NONE
    from_: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


class StateType(enum.IntEnum):
    """A node's role."""

    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting (metrics, health); never persisted."""

    lead: int = NONE
    state: StateType = StateType.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """The answer to a ReadIndex request: once the driver has applied up to ``index``, a
    read tagged with ``request_ctx`` may be served and is linearizable."""

    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """What the driver must do, in this order:

    1. persist ``hard_state`` (if not None), ``entries`` and ``snapshot`` (if not None),
       and fsync when ``must_sync``;
    2. send ``messages``;
    3. apply ``snapshot`` then ``committed_entries`` to the state machine, and serve the
       reads in ``read_states`` once their index is applied;
    4. call ``advance(ready)`` on the core.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False
