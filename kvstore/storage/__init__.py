"""Durable storage: the write-ahead log, snapshot files and the MVCC state machine.

The pieces, bottom up (details and on-disk formats in docs/storage.md):

- :mod:`.record`: the WAL record codec (length, type, CRC-32 on every record);
- :mod:`.wal`: segment files, group commit, rotation, recovery, segment release;
- :mod:`.snapshotter`: atomic, checksummed snapshot files;
- :mod:`.disk_storage`: ``DiskStorage``, the durable ``LogStorage`` for the Raft core;
- :mod:`.mvcc` (with :mod:`.mvcc_types`, :mod:`.mvcc_codec`, :mod:`.keys`): the state
  machine with etcd's data model, and the request encoding carried in Raft entries;
- :mod:`.errors`: the exception tree.
"""

from .disk_storage import DiskStorage
from .errors import (
    CompactedError,
    CorruptionError,
    FutureRevisionError,
    MvccError,
    SnapshotNotFoundError,
    StorageError,
)
from .mvcc import ApplyResult, MvccStore
from .mvcc_codec import decode_request, encode_request
from .snapshotter import Snapshotter
from .wal import Wal

__all__ = [
    "ApplyResult",
    "CompactedError",
    "CorruptionError",
    "DiskStorage",
    "FutureRevisionError",
    "MvccError",
    "MvccStore",
    "SnapshotNotFoundError",
    "Snapshotter",
    "StorageError",
    "Wal",
    "decode_request",
    "encode_request",
]
