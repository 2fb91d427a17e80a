"""Errors raised by the storage layer: the WAL, snapshot files and the MVCC store.

The tree::

    StorageError
    ├── CorruptionError           bytes on disk fail their checksum or framing where a torn
    │                             write cannot explain it; carries the file and byte offset
    ├── SnapshotNotFoundError     the log refers to a snapshot that no valid file holds
    ├── WalClosedError            the log was used after close()
    └── MvccError                 a request the state machine rejects (deterministically:
        │                         every replica rejects the same request the same way)
        ├── CompactedError        a read or compaction at a revision already compacted
        ├── FutureRevisionError   a read or compaction at a revision not yet written
        ├── KeyNotFoundError      put with ignore_value/ignore_lease on a missing key
        ├── LeaseNotFoundError    a put (or revoke) names a lease that does not exist
        ├── LeaseExistsError      a grant reuses the id of a live lease
        ├── InvalidRequestError   a malformed request (duplicate keys in a txn, value given
        │                         with ignore_value, empty key, undecodable bytes, ...)
        └── ...

The log-facing conditions the Raft core expects from a ``LogStorage`` (compacted or
unavailable index) are *not* here: ``DiskStorage`` raises the core's own errors from
``kvstore.raft.errors`` so that every storage reports them identically. The server maps the
``MvccError`` subtypes to etcd's gRPC status codes and messages in one place.
"""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Base class of every error raised by ``kvstore.storage``."""


class CorruptionError(StorageError):
    """Data on disk is damaged in a way recovery must not paper over.

    ``path`` and ``offset`` name the first bad byte so an operator can inspect (or restore)
    the file; ``reason`` says what check failed.
    """

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt data in {path} at byte offset {offset}: {reason}")
        self.path = Path(path)
        self.offset = offset
        self.reason = reason


class SnapshotNotFoundError(StorageError):
    """The write-ahead log needs a snapshot (its entries start after one) that no valid
    snapshot file provides."""


class WalClosedError(StorageError):
    """The write-ahead log was used after ``close()``."""


class MvccError(StorageError):
    """A request the MVCC state machine rejects without changing any state."""


class CompactedError(MvccError):
    """The requested revision has been compacted away."""

    def __init__(self, revision: int, compact_revision: int) -> None:
        super().__init__(
            f"required revision {revision} has been compacted (compacted at {compact_revision})"
        )
        self.revision = revision
        self.compact_revision = compact_revision


class FutureRevisionError(MvccError):
    """The requested revision is newer than the store's current revision."""

    def __init__(self, revision: int, current_revision: int) -> None:
        super().__init__(
            f"required revision {revision} is a future revision (current {current_revision})"
        )
        self.revision = revision
        self.current_revision = current_revision


class KeyNotFoundError(MvccError):
    """A put with ``ignore_value`` or ``ignore_lease`` names a key that does not exist."""


class LeaseNotFoundError(MvccError):
    """The request names a lease id that is not granted."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id} not found")
        self.lease_id = lease_id


class LeaseExistsError(MvccError):
    """A lease grant reuses the id of a lease that is still granted."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id} already exists")
        self.lease_id = lease_id


class InvalidRequestError(MvccError):
    """The request is malformed or breaks a rule of the data model."""
