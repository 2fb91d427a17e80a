"""Errors raised by the Raft core.

The tree::

    RaftError
    ├── ProposalDropped          a proposal was not appended (no leader, transfer in progress,
    │   ├── NotLeader            conf change pending, ...); NotLeader carries the leader hint
    │   └── InvalidConfChange    (also a ConfigError) a proposed change that is not allowed
    ├── ConfigError              an invalid RaftConfig or ConfChange
    ├── StorageError             what a LogStorage may raise
    │   ├── CompactedError       the requested index is below the first available index
    │   ├── UnavailableError     the requested index is above the last index
    │   ├── SnapshotOutOfDateError  a snapshot older than the one already held
    │   └── SnapshotTemporarilyUnavailableError  the snapshot is being built; retry later
    ├── StepLocalMessageError    a LOCAL_* message arrived from the network
    └── CodecError               bytes that are not a valid encoding

Callers catch ``ProposalDropped`` to retry or redirect a client; storage errors are part of
the ``LogStorage`` contract so that any implementation (memory or disk) reports the same
conditions to the core.
"""

from __future__ import annotations

from .types import NONE


class RaftError(Exception):
    """Base class of every error the core raises."""


class ProposalDropped(RaftError):
    """The proposal was not appended to the log; the client may retry it."""


class NotLeader(ProposalDropped):
    """This node is not the leader and cannot (or may not) forward; ``leader`` is the id of
    the leader it knows about, or ``NONE`` (0) when there is none."""

    def __init__(self, leader: int = NONE) -> None:
        super().__init__(f"not the leader (leader hint: {leader or 'none'})")
        self.leader = leader


class ConfigError(RaftError):
    """A configuration value or a membership change is invalid."""


class InvalidConfChange(ProposalDropped, ConfigError):
    """A proposed membership change is not allowed (demoting a voter directly, removing
    the last voter, an undecodable change). Both a dropped proposal (so a driver that
    handles ProposalDropped answers the client) and a ConfigError (it is the caller's
    mistake, retrying will not help)."""


class StorageError(RaftError):
    """Base class of the conditions a ``LogStorage`` reports to the core."""


class CompactedError(StorageError):
    """The requested index has been compacted into a snapshot."""


class UnavailableError(StorageError):
    """The requested index is not in the log (yet)."""


class SnapshotOutOfDateError(StorageError):
    """The snapshot is older than the one the storage already holds."""


class SnapshotTemporarilyUnavailableError(StorageError):
    """The storage is building a snapshot; the leader retries on the next round."""


class StepLocalMessageError(RaftError):
    """A message type reserved for the local node was handed to ``step`` from the network."""


class CodecError(RaftError):
    """Bytes that do not decode to a value of this codec version (truncated, trailing
    garbage, unknown version or enum value)."""
