"""The file ``etcdctl snapshot save`` writes: an etcd bbolt database followed by the
SHA-256 of it, as etcd's Maintenance.Snapshot streams it.

etcd's database is a whole number of pages, so its size is a multiple of 512 and a file
whose size is 32 more than such a multiple carries the hash; ``snapshot restore`` checks
it unless told ``--skip-hash-check`` (which also accepts a bare database, such as an etcd
member's ``member/snap/db``). The checks and their messages are etcdctl's.

Building the file from a member (:func:`export`) reads the state a slice of keys at a time
on the event loop, then encodes and writes it in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.server.etcd_snapshot import (
    EtcdSnapshotError,
    EtcdState,
    from_database,
    to_buckets,
)
from kvstore.server.statemachine import StateMachine
from kvstore.storage.bbolt import BboltError, Database, write_db
from kvstore.storage.mvcc import HistoryReader

HASH_SIZE = 32
SLICE_KEYS = 2_000
"""Keys read before other work may run (a few milliseconds)."""
OLD_MAGIC = b"KVSNAP01"
"""The store's earlier snapshot layout (never restorable; recognised to say so)."""


class SnapshotFileError(ValueError):
    """The file is not a usable snapshot; the message says why, as etcdctl would."""


def has_hash(size: int) -> bool:
    """Whether a file of ``size`` bytes ends in a SHA-256 (etcdctl's test)."""
    return size % 512 == HASH_SIZE


def database_of(data: bytes | memoryview, skip_hash_check: bool = False) -> memoryview:
    """The database inside a snapshot file, its hash checked (etcdctl's rules)."""
    view = memoryview(data)
    if view[: len(OLD_MAGIC)] == OLD_MAGIC:
        raise SnapshotFileError(
            "this is a snapshot in kvstore's earlier format (KVSNAP01), which cannot be "
            "restored; save a new one from a running member (etcdctl snapshot save)"
        )
    if has_hash(len(view)):
        db, digest = view[:-HASH_SIZE], bytes(view[-HASH_SIZE:])
        if not skip_hash_check:
            actual = hashlib.sha256(db).digest()
            if actual != digest:
                raise SnapshotFileError(f"expected sha256 {digest.hex()}, got {actual.hex()}")
        return db
    if not skip_hash_check:
        raise SnapshotFileError("snapshot missing hash but --skip-hash-check=false")
    return view


def read(data: bytes | memoryview, skip_hash_check: bool = False) -> EtcdState:
    """The state an etcd snapshot file holds. Raises SnapshotFileError for any damage."""
    db = database_of(data, skip_hash_check)
    try:
        return from_database(Database(db))
    except (BboltError, EtcdSnapshotError) as exc:
        raise SnapshotFileError(str(exc)) from None
    except struct.error as exc:
        raise SnapshotFileError(f"database damaged: {exc}") from None


def write(out: BinaryIO, state: EtcdState) -> tuple[int, bytes]:
    """Write ``state`` as an etcd database to ``out`` (seekable, at its start); returns
    (database size, its SHA-256). The hash is not written: the stream sends it last."""
    size = write_db(out, to_buckets(state))
    out.seek(0)
    h = hashlib.sha256()
    while chunk := out.read(1 << 20):
        h.update(chunk)
    out.seek(0)
    return size, h.digest()


@dataclass(slots=True)
class Exported:
    """A snapshot written to an unnamed temporary file, ready to stream."""

    file: BinaryIO
    size: int
    """Bytes of the database (the hash not counted)."""
    digest: bytes
    revision: int


def capture(sm: StateMachine) -> tuple[HistoryReader, EtcdState]:
    """Everything but the key versions, copied now; the reader collects those."""
    reader = HistoryReader(sm.kv)
    state = EtcdState(
        revision=reader.revision,
        compact_revision=reader.compact_revision,
        leases=reader.leases,
        consistent_index=reader.applied_index,
        term=sm.header().raft_term,
        members=[_copy(sm.members[i]) for i in sorted(sm.members)],
        removed_members=sorted(sm.removed),
        alarms=sorted(sm.alarms),
        auth=sm.auth.snapshot(),
    )
    return reader, state


def _copy(m: internal_pb2.MemberInfo) -> internal_pb2.MemberInfo:
    out = internal_pb2.MemberInfo()
    out.CopyFrom(m)
    return out


async def export(sm: StateMachine, directory: Path | None = None) -> Exported:
    """A consistent snapshot of ``sm`` as of the call, without holding the event loop for
    more than a slice of keys at a time. The file is unnamed (gone once closed) and made in
    ``directory``: the member's data directory has room for it, where the system's
    temporary directory may not (in Kubernetes it is a small in-memory volume)."""
    reader, state = capture(sm)
    try:
        while not reader.collect(SLICE_KEYS):
            await asyncio.sleep(0)
    finally:
        reader.close()
    full = replace(state, versions=reader.versions)
    out = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (the caller closes it)
    try:
        size, digest = await asyncio.to_thread(write, out, full)
    except BaseException:
        out.close()
        raise
    return Exported(out, size, digest, state.revision)
