"""The MVCC state machine: etcd v3's key-value data model, kept in memory.

Model:

- One global ``revision``, starting at 1. Every applied request that changes something (a
  put, a delete that deletes at least one key, a txn whose chosen branch changes
  something, a lease revoke that deletes keys) increases it by exactly one; every key it
  changes gets that revision as ``mod_revision``. Reads, compaction and lease grants do
  not change it.
- Per key: ``create_revision`` (when the current incarnation was created), ``mod_revision``,
  ``version`` (puts since creation, from 1) and ``lease``. A delete appends a tombstone
  (version 0), so reads at older revisions still see the older value.
- ``compact(rev)`` forgets every version a read at ``rev`` or later cannot see: for each
  key, the versions before the newest one at or below ``rev``, and that one too if it is a
  tombstone. Reading below the compacted revision raises ``CompactedError``; reading above
  the current one ``FutureRevisionError``.
- A txn evaluates all its compares (nested ones included) against the state before it,
  then runs the chosen operations in order under one revision: a range inside it sees the
  writes made earlier in the same txn. A key may be written at most once per txn (two
  puts, or a put inside a deleted range, is ``InvalidRequestError``), which is what keeps
  "one revision per txn" unambiguous. Every check runs before the first change, so a
  rejected request changes nothing.
- Leases: the store keeps which keys each granted lease holds; a revoke deletes them.
  Expiry is decided outside (the leader proposes the revoke), so applying stays
  deterministic.

Memory layout: ``_index`` maps a key to its list of versions (oldest first, each a small
tuple) and ``_keys`` keeps the keys sorted for range scans (:class:`~.keys.SortedKeys`).
"""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple, TypeAlias

from .errors import (
    CompactedError,
    FutureRevisionError,
    InvalidRequestError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
    MvccError,
)
from .keys import SortedKeys, ranges_overlap, upper_bound
from .mvcc_codec import Reader, Writer, decode_request
from .mvcc_types import (
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseInfo,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    Request,
    RequestOp,
    Response,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)

VERSION_OVERHEAD = 64
"""Bytes counted per stored version on top of key and value, for the size estimate."""

SNAPSHOT_MAGIC = b"KVMVCC"
SNAPSHOT_VERSION = 1
"""Bumped whenever the snapshot layout changes; restore refuses other versions."""


class _Rev(NamedTuple):
    """One stored version of a key. ``version == 0`` marks a tombstone."""

    mod: int
    create: int
    version: int
    value: bytes
    lease: int
    sub: int = 0
    """Position of the change within its revision (a txn changes several keys at one
    revision); orders replayed events exactly as they were emitted."""


_mod = attrgetter("mod")


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of applying one request: the store's revision afterwards, the response
    or the error (never both), and the changes made, for watchers."""

    revision: int
    response: Response | None = None
    error: MvccError | None = None
    events: tuple[Event, ...] = ()


@dataclass(slots=True)
class _Lease:
    ttl: int
    keys: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class _Plan:
    """A txn after its compares were evaluated: the branch taken and, per op, the plan of
    a nested txn."""

    succeeded: bool
    ops: list[tuple[RequestOp, _Plan | None]]


def _kv(key: bytes, r: _Rev) -> KeyValue:
    return KeyValue(key, r.create, r.mod, r.version, r.value, r.lease)


class MvccStore:
    """The state machine. Not thread-safe: the server applies from one thread and
    serialises reads with it."""

    def __init__(self) -> None:
        self._index: dict[bytes, list[_Rev]] = {}
        self._keys = SortedKeys()
        self._rev = 1
        self._compact_rev = 0
        self._leases: dict[int, _Lease] = {}
        # Keys whose history a compaction could shrink (several versions or a tombstone).
        self._dirty: set[bytes] = set()
        self._size = 0
        self._live_keys = 0
        self._encoders = 0
        """Snapshot encoders open on this state: while any is, compaction only moves the
        compact revision and leaves the versions in place for them to read."""
        self._deferred_trim = 0
        self.applied_index = 0
        """The Raft index of the last entry applied (set by :meth:`apply`; in snapshots)."""

    # -- state ------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The current revision."""
        return self._rev

    @property
    def compact_revision(self) -> int:
        """The revision of the last compaction (0: never compacted)."""
        return self._compact_rev

    @property
    def db_size(self) -> int:
        """Approximate bytes held: keys, values and a fixed overhead per stored version
        (tombstones included). Grows with writes, shrinks on compaction; the quota is
        checked against it."""
        return self._size

    def __len__(self) -> int:
        """Number of live (not deleted) keys."""
        return self._live_keys

    # -- applying ---------------------------------------------------------------------

    def apply(self, data: bytes, index: int = 0) -> ApplyResult:
        """Apply one encoded request (the data of a committed Raft entry).

        Never raises for a bad request: the error is in the result, and the state is
        unchanged, identically on every replica. ``index`` (the entry's index) is recorded
        as :attr:`applied_index`. Empty data (the entry a new leader appends) changes
        nothing.
        """
        if index:
            self.applied_index = index
        if not data:
            return ApplyResult(self._rev)  # an empty entry (a new leader's first) is a no-op
        try:
            return self.execute(decode_request(data))
        except MvccError as exc:
            return ApplyResult(self._rev, error=exc)

    def execute(self, req: Request) -> ApplyResult:
        """Apply a decoded request. Raises an MvccError subtype, with no change made, if it
        is rejected."""
        if isinstance(req, RangeRequest):
            self._check_read(req)
            return ApplyResult(self._rev, self._range(req, self._rev))
        if isinstance(req, CompactionRequest):
            self.compact(req.revision)
            return ApplyResult(self._rev, CompactionResponse())
        if isinstance(req, LeaseGrantRequest):
            return ApplyResult(self._rev, self._grant(req))
        if isinstance(req, LeaseRevokeRequest):
            return self._revoke(req)
        if isinstance(req, TxnRequest):
            plan = self._plan(req)
            self._validate(self._flatten(plan))
            w = _Write(self)
            resp: Response = w.run_plan(plan)
        else:
            self._validate([req])
            w = _Write(self)
            resp = w.run_op(req)
        return w.finish(resp)

    def range(self, req: RangeRequest) -> RangeResponse:
        """Serve a read without going through the log (serializable reads, or linearizable
        ones once a ReadIndex is applied)."""
        self._check_read(req)
        return self._range(req, self._rev)

    def compact(self, revision: int) -> None:
        """Discard history below ``revision`` (see the module docstring).

        Raises CompactedError if already compacted at or after it, FutureRevisionError if
        it is beyond the current revision.
        """
        if revision <= self._compact_rev:
            raise CompactedError(revision, self._compact_rev)
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        self._compact_rev = revision
        if self._encoders:
            self._deferred_trim = revision
            return
        self._trim(revision)

    def _trim(self, revision: int) -> None:
        """Drop the versions a compaction at ``revision`` made unreadable. Trimming once at
        the newest of several compactions drops exactly what trimming at each would."""
        still: set[bytes] = set()
        for key in self._dirty:
            hist = self._index[key]
            i = bisect_right(hist, revision, key=_mod) - 1
            if i < 0:
                still.add(key)
                continue
            keep = i + 1 if hist[i].version == 0 else i
            if keep:
                self._size -= sum(len(key) + len(r.value) + VERSION_OVERHEAD for r in hist[:keep])
                del hist[:keep]
            if not hist:
                del self._index[key]
                self._keys.remove(key)
            elif len(hist) > 1 or hist[-1].version == 0:
                still.add(key)
        self._dirty = still

    # -- reads ------------------------------------------------------------------------

    def _check_revision(self, revision: int) -> int:
        if revision <= 0:
            return self._rev
        if revision < self._compact_rev:
            raise CompactedError(revision, self._compact_rev)
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        return revision

    def _check_read(self, req: RangeRequest) -> None:
        if not req.key:
            raise InvalidRequestError("key is not provided")
        self._check_revision(req.revision)

    @staticmethod
    def _at(hist: list[_Rev], revision: int) -> _Rev | None:
        last = hist[-1]
        if last.mod <= revision:
            r = last
        else:
            i = bisect_right(hist, revision, key=_mod) - 1
            if i < 0:
                return None
            r = hist[i]
        return r if r.version else None

    def _live(self, key: bytes, range_end: bytes, revision: int) -> list[tuple[bytes, _Rev]]:
        """Every key in the range that exists at ``revision``, ascending."""
        if not range_end:
            hist = self._index.get(key)
            r = self._at(hist, revision) if hist else None
            return [(key, r)] if r else []
        out: list[tuple[bytes, _Rev]] = []
        index = self._index
        for k in self._keys.irange(key, upper_bound(key, range_end)):
            r = self._at(index[k], revision)
            if r:
                out.append((k, r))
        return out

    def _range(self, req: RangeRequest, current: int) -> RangeResponse:
        revision = req.revision if req.revision > 0 else current
        found = self._live(req.key, req.range_end, revision)
        count = len(found)
        found = [
            (k, r)
            for k, r in found
            if (not req.min_mod_revision or r.mod >= req.min_mod_revision)
            and (not req.max_mod_revision or r.mod <= req.max_mod_revision)
            and (not req.min_create_revision or r.create >= req.min_create_revision)
            and (not req.max_create_revision or r.create <= req.max_create_revision)
        ]
        if req.count_only:
            return RangeResponse(count=count)
        order = req.sort_order
        if order == SortOrder.NONE and req.sort_target != SortTarget.KEY:
            order = SortOrder.ASCEND
        if order != SortOrder.NONE and not (
            req.sort_target == SortTarget.KEY and order == SortOrder.ASCEND
        ):
            found.sort(key=_SORT_KEYS[req.sort_target], reverse=order == SortOrder.DESCEND)
        more = False
        if req.limit > 0 and len(found) > req.limit:
            found = found[: req.limit]
            more = True
        if req.keys_only:
            kvs = tuple(KeyValue(k, r.create, r.mod, r.version, b"", r.lease) for k, r in found)
        else:
            kvs = tuple(_kv(k, r) for k, r in found)
        return RangeResponse(kvs, more, count)

    # -- txn planning and validation ---------------------------------------------------

    def _compare(self, c: Compare) -> bool:
        if (c.target == CompareTarget.VALUE) != isinstance(c.operand, bytes):
            raise InvalidRequestError(f"compare on {c.target.name} has an operand of wrong type")
        found = self._live(c.key, c.range_end, self._rev)
        if not found:
            if c.target == CompareTarget.VALUE:
                return False
            return _compare_one(_Rev(0, 0, 0, b"", 0), c)
        return all(_compare_one(r, c) for _, r in found)

    def _plan(self, txn: TxnRequest) -> _Plan:
        ok = all(self._compare(c) for c in txn.compare)
        ops = txn.success if ok else txn.failure
        return _Plan(
            ok, [(op, self._plan(op) if isinstance(op, TxnRequest) else None) for op in ops]
        )

    def _flatten(self, plan: _Plan) -> list[RequestOp]:
        out: list[RequestOp] = []
        for op, sub in plan.ops:
            if sub is not None:
                out.extend(self._flatten(sub))
            else:
                out.append(op)
        return out

    def _validate(self, ops: Iterable[RequestOp]) -> None:
        """Every check a request can fail, against the state before it; raises the first
        failure so nothing is changed."""
        puts: set[bytes] = set()
        deletes: list[tuple[bytes, bytes]] = []
        for op in ops:
            if isinstance(op, PutRequest):
                self._validate_put(op)
                if op.key in puts:
                    raise InvalidRequestError("duplicate key given in txn request")
                puts.add(op.key)
            elif isinstance(op, DeleteRangeRequest):
                if not op.key:
                    raise InvalidRequestError("key is not provided")
                deletes.append((op.key, op.range_end))
            elif isinstance(op, RangeRequest):
                self._check_read(op)
        for key in puts:
            for d in deletes:
                if ranges_overlap((key, b""), d):
                    raise InvalidRequestError("duplicate key given in txn request")

    def _validate_put(self, op: PutRequest) -> None:
        if not op.key:
            raise InvalidRequestError("key is not provided")
        if op.ignore_value and op.value:
            raise InvalidRequestError("value is provided")
        if op.ignore_lease and op.lease:
            raise InvalidRequestError("lease is provided")
        if op.lease and op.lease not in self._leases:
            raise LeaseNotFoundError(op.lease)
        if op.ignore_value or op.ignore_lease:
            hist = self._index.get(op.key)
            if not hist or not hist[-1].version:
                raise KeyNotFoundError("key not found")

    # -- leases -----------------------------------------------------------------------

    def _grant(self, req: LeaseGrantRequest) -> LeaseGrantResponse:
        if req.id <= 0:
            raise InvalidRequestError("lease id must be positive")
        if req.id in self._leases:
            raise LeaseExistsError(req.id)
        self._leases[req.id] = _Lease(req.ttl)
        return LeaseGrantResponse(req.id, req.ttl)

    def _revoke(self, req: LeaseRevokeRequest) -> ApplyResult:
        lease = self._leases.get(req.id)
        if lease is None:
            raise LeaseNotFoundError(req.id)
        w = _Write(self)
        for key in sorted(lease.keys):
            w.delete_key(key)
        del self._leases[req.id]
        return w.finish(LeaseRevokeResponse())

    def leases(self) -> list[LeaseInfo]:
        """Every granted lease with its attached keys, by id."""
        return [
            LeaseInfo(i, lease.ttl, tuple(sorted(lease.keys)))
            for i, lease in sorted(self._leases.items())
        ]

    def lease(self, lease_id: int) -> LeaseInfo:
        """One lease; LeaseNotFoundError if it is not granted."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError(lease_id)
        return LeaseInfo(lease_id, lease.ttl, tuple(sorted(lease.keys)))

    # -- history for watchers ---------------------------------------------------------

    def events_since(self, start_revision: int, key: bytes, range_end: bytes = b"") -> list[Event]:
        """Every change to keys in the range at revisions ``>= start_revision``, oldest
        first, in the order they were applied within a revision: what a watch starting in
        the past replays. Raises CompactedError below the compacted revision.

        At the compacted revision itself it answers, as etcd does (and as a Range there
        does): clients resume a watch from the ``compact_revision`` they were told. As in
        etcd, that replay can lack a delete made at exactly that revision (its tombstone goes
        with the compaction) and the ``prev_kv`` of the changes made there."""
        if start_revision < self._compact_rev:
            raise CompactedError(start_revision, self._compact_rev)
        out: list[tuple[int, int, Event]] = []
        hi = upper_bound(key, range_end)
        for k in self._keys.irange(key, hi):
            hist = self._index[k]
            start = bisect_right(hist, start_revision - 1, key=_mod)
            for i in range(start, len(hist)):
                r = hist[i]
                prev = hist[i - 1] if i > 0 and hist[i - 1].version else None
                prev_kv = _kv(k, prev) if prev else None
                if r.version:
                    ev = Event(EventType.PUT, _kv(k, r), prev_kv)
                else:
                    ev = Event(EventType.DELETE, KeyValue(k, mod_revision=r.mod), prev_kv)
                out.append((r.mod, r.sub, ev))
        out.sort(key=lambda t: (t[0], t[1]))
        return [ev for _, _, ev in out]

    # -- hashing and snapshots ----------------------------------------------------------

    def hash_kv(self, revision: int = 0) -> tuple[int, int]:
        """A CRC-32 over every stored version at or below ``revision`` (0: current) and the
        compact revision: replicas that applied the same log agree on it (HashKV).
        Returns (hash, revision hashed)."""
        rev = self._check_revision(revision)
        h = zlib.crc32(struct.pack("<q", self._compact_rev))
        pack = struct.Struct("<Iqqqqq").pack
        for key in self._keys:
            for r in self._index[key]:
                if r.mod > rev:
                    break
                h = zlib.crc32(pack(len(key), r.mod, r.sub, r.create, r.version, r.lease), h)
                h = zlib.crc32(r.value, zlib.crc32(key, h))
        return h, rev

    def snapshot(self) -> bytes:
        """The whole state as bytes (see :meth:`restore` and :class:`SnapshotEncoder`)."""
        encoder = SnapshotEncoder(self)
        while not encoder.encode(1 << 30):
            pass
        return encoder.finish()

    def _open_encoder(self) -> None:
        self._encoders += 1

    def _close_encoder(self) -> None:
        self._encoders -= 1
        if not self._encoders and self._deferred_trim:
            revision, self._deferred_trim = self._deferred_trim, 0
            self._trim(revision)

    def restore(self, data: bytes) -> None:
        """Replace the whole state by a :meth:`snapshot`'s bytes. Raises
        InvalidRequestError (state untouched) if they are damaged."""
        if len(data) < 4 or _U32_STRUCT.pack(zlib.crc32(memoryview(data)[:-4])) != data[-4:]:
            raise InvalidRequestError("MVCC snapshot checksum mismatch")
        if data[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC:
            raise InvalidRequestError("not an MVCC snapshot")
        r = Reader(data)
        r.pos = len(SNAPSHOT_MAGIC)
        if r.u8() != SNAPSHOT_VERSION:
            raise InvalidRequestError("unknown MVCC snapshot version")
        fresh = MvccStore()
        fresh._rev, fresh._compact_rev, fresh.applied_index = r.i64(), r.i64(), r.i64()
        for _ in range(r.u32()):
            lease_id = r.i64()
            fresh._leases[lease_id] = _Lease(r.i64())
        n_keys = r.u32()
        try:
            end = _decode_keys(fresh, data, r.pos, n_keys)
        except struct.error:
            raise InvalidRequestError("MVCC snapshot is truncated") from None
        if end != len(data) - 4:
            raise InvalidRequestError(f"{len(data) - 4 - end} trailing bytes in MVCC snapshot")
        # An open encoder keeps reading the replaced state, which nothing changes any more;
        # a trim deferred for it belonged to that state.
        self._deferred_trim = 0
        self._index, self._keys, self._leases = fresh._index, fresh._keys, fresh._leases
        self._rev, self._compact_rev = fresh._rev, fresh._compact_rev
        self._dirty, self._size, self.applied_index = fresh._dirty, fresh._size, fresh.applied_index
        self._live_keys = fresh._live_keys


def _decode_keys(fresh: MvccStore, data: bytes, pos: int, n_keys: int) -> int:
    """Decode a snapshot's keys into ``fresh``; returns the offset after them.

    Restart time is mostly this loop, so it reads with offsets into ``data`` (no copy of
    the whole state, no reader call per field) and, keys being stored in order, builds the
    sorted key list in one pass.
    """
    u32 = _U32_STRUCT.unpack_from
    version_at = _VERSION_STRUCT.unpack_from
    version_size = _VERSION_STRUCT.size
    index, dirty, leases = fresh._index, fresh._dirty, fresh._leases
    keys: list[bytes] = []
    size = live = 0
    limit = len(data) - 4
    for _ in range(n_keys):
        (klen,) = u32(data, pos)
        pos += 4
        key = data[pos : pos + klen]
        pos += klen
        (n_versions,) = u32(data, pos)
        pos += 4
        if pos > limit:
            raise struct.error("truncated")
        if not n_versions:
            raise InvalidRequestError("MVCC snapshot holds a key without versions")
        if keys and key <= keys[-1]:
            raise InvalidRequestError("MVCC snapshot keys are out of order")
        hist: list[_Rev] = []
        for _ in range(n_versions):
            mod, sub, create, version, lease, n = version_at(data, pos)
            pos += version_size
            hist.append(_Rev(mod, create, version, data[pos : pos + n], lease, sub))
            pos += n
            size += klen + n + VERSION_OVERHEAD
        if pos > limit:
            raise struct.error("truncated")
        keys.append(key)
        index[key] = hist
        last = hist[-1]
        if len(hist) > 1 or last.version == 0:
            dirty.add(key)
        if last.version:
            live += 1
            if last.lease:
                leases.setdefault(last.lease, _Lease(0)).keys.add(key)
    fresh._keys = SortedKeys.from_sorted(keys)
    fresh._size, fresh._live_keys = size, live
    return pos


class SnapshotEncoder:
    """Encodes the store as it is when the encoder is made, a slice of keys at a time, so
    a member can snapshot millions of keys between other work without stopping.

    It can: versions are only ever appended (each with a new revision), so the state at
    revision R is every version with ``mod <= R``; compactions leave versions in place
    while an encoder is open (:meth:`MvccStore.compact`); a restore swaps in new objects and
    leaves the old ones to the encoder. Leases are copied when it is made.

    Layout, little-endian::

        "KVMVCC" | version u8 | revision i64 | compact revision i64 | applied index i64
        | n_leases u32, (id i64, ttl i64)... | n_keys u32, per key: key (u32 len + bytes),
          n_versions u32, (mod, sub, create, version, lease: i64; value: u32 len + bytes)...
        | crc32 u32 of everything before
    """

    def __init__(self, store: MvccStore) -> None:
        self._store = store
        self._revision = store._rev
        head = Writer()
        head.buf += SNAPSHOT_MAGIC
        head.u8(SNAPSHOT_VERSION)
        head.i64(store._rev)
        head.i64(store._compact_rev)
        head.i64(store.applied_index)
        head.u32(len(store._leases))
        for lease_id, lease in sorted(store._leases.items()):
            head.i64(lease_id)
            head.i64(lease.ttl)
        self._head = head.buf
        self._keys = list(store._keys)
        self._index = store._index
        self._pos = 0
        self._written = 0
        self._body = bytearray()
        self._open = True
        store._open_encoder()

    def encode(self, max_keys: int) -> bool:
        """Encode up to ``max_keys`` more keys; True once every key is encoded."""
        rev, index, buf = self._revision, self._index, self._body
        pack = _VERSION_STRUCT.pack
        u32 = _U32_STRUCT.pack
        end = min(self._pos + max_keys, len(self._keys))
        for key in self._keys[self._pos : end]:
            hist = index[key]
            if hist[-1].mod > rev:
                hist = hist[: bisect_right(hist, rev, key=_mod)]
                if not hist:
                    continue
            buf += u32(len(key))
            buf += key
            buf += u32(len(hist))
            for r in hist:
                buf += pack(r.mod, r.sub, r.create, r.version, r.lease, len(r.value))
                buf += r.value
            self._written += 1
        self._pos = end
        return end == len(self._keys)

    def finish(self) -> bytes:
        """The encoded snapshot (call once :meth:`encode` returned True)."""
        self.close()
        return self.assemble()

    def assemble(self) -> bytes:
        """The encoded snapshot, once every key is encoded and the encoder closed. Touches
        only the encoder's own buffers, so a worker thread may do this costly part (a
        checksum and one copy of the whole state) while the store goes on changing."""
        if self._pos != len(self._keys) or self._open:
            raise RuntimeError("snapshot encoder assembled before it was done and closed")
        head = bytes(self._head + _U32_STRUCT.pack(self._written))
        crc = zlib.crc32(self._body, zlib.crc32(head))
        return b"".join((head, self._body, _U32_STRUCT.pack(crc)))

    def close(self) -> None:
        """Release the store (idempotent): deferred compactions run."""
        if self._open:
            self._open = False
            self._store._close_encoder()


VersionRow: TypeAlias = tuple[int, int, bytes, int, int, bytes, int]
"""One stored version as an export (an etcd snapshot's key bucket) sees it: ``(mod, sub,
key, create, version, value, lease)``; ``version == 0`` is a tombstone (no value) that
deleted ``key`` at ``mod``.

A plain tuple, revision first, for two reasons: rows sort by revision with no key function,
and the garbage collector stops tracking a tuple of bytes and ints (it would track a
NamedTuple), so collecting 100k of them does not set off a full collection, which stalls
the event loop for as long as it takes to walk every object of the store."""


class HistoryReader:
    """Collects every stored version as of when the reader is made, a slice of keys at a
    time, with the guarantees of :class:`SnapshotEncoder` (later writes are not seen,
    compactions wait until :meth:`close`). Leases, revision and compaction are copied
    when it is made. What it collects shares the store's (immutable) keys and values, so
    a worker thread may encode them while the store goes on changing."""

    def __init__(self, store: MvccStore) -> None:
        self._store = store
        self.revision = store._rev
        self.compact_revision = store._compact_rev
        self.applied_index = store.applied_index
        self.leases = [(i, lease.ttl) for i, lease in sorted(store._leases.items())]
        self.versions: list[VersionRow] = []
        self._keys = list(store._keys)
        self._index = store._index
        self._pos = 0
        self._open = True
        store._open_encoder()

    def collect(self, max_keys: int) -> bool:
        """Collect the versions of up to ``max_keys`` more keys; True once all are."""
        rev, index, out = self.revision, self._index, self.versions
        end = min(self._pos + max_keys, len(self._keys))
        for key in self._keys[self._pos : end]:
            for r in index[key]:
                if r.mod > rev:
                    break
                out.append((r.mod, r.sub, key, r.create, r.version, r.value, r.lease))
        self._pos = end
        return end == len(self._keys)

    def close(self) -> None:
        """Release the store (idempotent): deferred compactions run."""
        if self._open:
            self._open = False
            self._store._close_encoder()


def store_from_history(
    revision: int,
    compact_revision: int,
    versions: Iterable[VersionRow],
    leases: Iterable[tuple[int, int]],
) -> MvccStore:
    """A store holding exactly ``versions`` (each key's in ascending revision order), at
    ``revision`` and compacted at ``compact_revision``, with the granted ``leases`` (id,
    TTL). Raises InvalidRequestError for history no store could have made."""
    store = MvccStore()
    if revision < 1 or compact_revision < 0 or compact_revision > revision:
        raise InvalidRequestError(
            f"revision {revision} and compaction at {compact_revision} are inconsistent"
        )
    store._rev, store._compact_rev = revision, compact_revision
    for lease_id, ttl in leases:
        store._leases[lease_id] = _Lease(ttl)
    index = store._index
    size = 0
    for mod, sub, key, create, version, value, lease in versions:
        if mod > revision or mod < 1:
            raise InvalidRequestError(f"version of {key!r} at {mod} beyond revision {revision}")
        hist = index.get(key)
        if hist is None:
            hist = index[key] = []
        elif (hist[-1].mod, hist[-1].sub) >= (mod, sub):
            raise InvalidRequestError(f"versions of {key!r} out of revision order at {mod}")
        hist.append(_Rev(mod, create, version, value, lease, sub))
        size += len(key) + len(value) + VERSION_OVERHEAD
    keys = sorted(index)
    live = 0
    for key in keys:
        hist = index[key]
        last = hist[-1]
        if len(hist) > 1 or last.version == 0:
            store._dirty.add(key)
        if last.version:
            live += 1
            if last.lease:
                store._leases.setdefault(last.lease, _Lease(0)).keys.add(key)
    store._keys = SortedKeys.from_sorted(keys)
    store._size, store._live_keys = size, live
    return store


_VERSION_STRUCT = struct.Struct("<qqqqqI")
_U32_STRUCT = struct.Struct("<I")


_SORT_KEYS = {
    SortTarget.KEY: lambda kr: kr[0],
    SortTarget.VERSION: lambda kr: kr[1].version,
    SortTarget.CREATE: lambda kr: kr[1].create,
    SortTarget.MOD: lambda kr: kr[1].mod,
    SortTarget.VALUE: lambda kr: kr[1].value,
}


def _compare_one(r: _Rev, c: Compare) -> bool:
    actual: int | bytes
    if c.target == CompareTarget.VERSION:
        actual = r.version
    elif c.target == CompareTarget.CREATE:
        actual = r.create
    elif c.target == CompareTarget.MOD:
        actual = r.mod
    elif c.target == CompareTarget.LEASE:
        actual = r.lease
    else:
        actual = r.value
    op = c.operand
    if c.result == CompareResult.EQUAL:
        return actual == op
    if c.result == CompareResult.NOT_EQUAL:
        return actual != op
    if c.result == CompareResult.GREATER:
        return actual > op  # type: ignore[operator]
    return actual < op  # type: ignore[operator]


class _Write:
    """One atomic write at revision ``store.revision + 1``: changes go straight into the
    index (every check already passed) and the revision moves only if one was made."""

    def __init__(self, store: MvccStore) -> None:
        self.s = store
        self.rev = store._rev + 1
        self.events: list[Event] = []

    def finish(self, resp: Response) -> ApplyResult:
        if self.events:
            self.s._rev = self.rev
        return ApplyResult(self.s._rev, resp, events=tuple(self.events))

    def run_plan(self, plan: _Plan) -> TxnResponse:
        responses: list[ResponseOp] = []
        for op, sub in plan.ops:
            responses.append(self.run_plan(sub) if sub is not None else self.run_op(op))
        return TxnResponse(plan.succeeded, tuple(responses))

    def run_op(self, op: RequestOp) -> ResponseOp:
        if isinstance(op, PutRequest):
            return self.put(op)
        if isinstance(op, DeleteRangeRequest):
            return self.delete_range(op)
        if isinstance(op, RangeRequest):
            return self.s._range(op, self.rev if self.events else self.s._rev)
        raise InvalidRequestError("nested txn without a plan")

    def put(self, op: PutRequest) -> PutResponse:
        s = self.s
        hist = s._index.get(op.key)
        cur = hist[-1] if hist and hist[-1].version else None
        value = cur.value if op.ignore_value and cur else op.value
        lease = cur.lease if op.ignore_lease and cur else op.lease
        if cur:
            new = _Rev(self.rev, cur.create, cur.version + 1, value, lease, len(self.events))
        else:
            new = _Rev(self.rev, self.rev, 1, value, lease, len(self.events))
        if hist is None:
            s._index[op.key] = [new]
            s._keys.add(op.key)
        else:
            hist.append(new)
            s._dirty.add(op.key)
        if cur and cur.lease and cur.lease != lease and cur.lease in s._leases:
            s._leases[cur.lease].keys.discard(op.key)
        if lease:
            s._leases[lease].keys.add(op.key)
        s._size += len(op.key) + len(value) + VERSION_OVERHEAD
        if cur is None:
            s._live_keys += 1
        prev = _kv(op.key, cur) if cur else None
        self.events.append(Event(EventType.PUT, _kv(op.key, new), prev))
        return PutResponse(prev if op.prev_kv else None)

    def delete_range(self, op: DeleteRangeRequest) -> DeleteRangeResponse:
        keys = [k for k, _ in self.s._live(op.key, op.range_end, self.rev)]
        prevs = [self.delete_key(k) for k in keys]
        return DeleteRangeResponse(len(keys), tuple(prevs) if op.prev_kv else ())

    def delete_key(self, key: bytes) -> KeyValue:
        s = self.s
        hist = s._index[key]
        cur = hist[-1]
        hist.append(_Rev(self.rev, 0, 0, b"", 0, len(self.events)))
        s._dirty.add(key)
        if cur.lease and cur.lease in s._leases:
            s._leases[cur.lease].keys.discard(key)
        s._size += len(key) + VERSION_OVERHEAD
        s._live_keys -= 1
        prev = _kv(key, cur)
        self.events.append(Event(EventType.DELETE, KeyValue(key, mod_revision=self.rev), prev))
        return prev
