"""The Raft consensus core: a pure state machine driven by messages and ticks.

It imports nothing that touches the outside world (no sockets, files, clocks or threads);
``tests/kvstore/test_raft_purity.py`` enforces the rule. The driver API is ``RawNode``; see
``docs/raft.md`` for the Ready loop contract.
"""

from .codec import decode_conf_change, decode_message, encode_conf_change, encode_message
from .config import RaftConfig, RandomSource, SplitMix64
from .errors import (
    CodecError,
    CompactedError,
    ConfigError,
    InvalidConfChange,
    NotLeader,
    ProposalDropped,
    RaftError,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    StepLocalMessageError,
    StorageError,
    UnavailableError,
)
from .progress import ProgressState
from .rawnode import PeerProgress, RawNode, Status
from .storage import LogStorage, MemoryStorage

__all__ = [
    "CodecError",
    "CompactedError",
    "ConfigError",
    "InvalidConfChange",
    "LogStorage",
    "MemoryStorage",
    "NotLeader",
    "PeerProgress",
    "ProgressState",
    "ProposalDropped",
    "RaftConfig",
    "RaftError",
    "RandomSource",
    "RawNode",
    "SnapshotOutOfDateError",
    "SnapshotTemporarilyUnavailableError",
    "SplitMix64",
    "Status",
    "StepLocalMessageError",
    "StorageError",
    "UnavailableError",
    "decode_conf_change",
    "decode_message",
    "encode_conf_change",
    "encode_message",
]
