"""etcd's snapshot: the buckets of its bbolt database, written from and read into a
member's state (pure; the bbolt layer is :mod:`kvstore.storage.bbolt`).

The buckets etcd 3.4/3.5 keep, and what this store puts in each:

========================  =====================================================================
``key``                   ``main rev (u64 BE) | '_' | sub rev (u64 BE) [| 't']`` ->
                          ``mvccpb.KeyValue``; every stored version, in revision order; ``t``
                          marks a tombstone, whose value holds the key alone
``meta``                  ``consistent_index`` and ``term`` (u64 BE), ``scheduledCompactRev`` and
                          ``finishedCompactRev`` (revision bytes, main only) once compacted
``lease``                 lease id (i64 BE) -> ``leasepb.Lease{ID=1, TTL=2, RemainingTTL=3}``
``members``               member id (hex) -> JSON ``{"id", "peerURLs", "isLearner", "name",
                          "clientURLs"}``
``members_removed``       member id (hex) -> ``removed``
``cluster``               ``clusterVersion`` -> e.g. ``3.5.0``
``alarm``                 ``etcdserverpb.AlarmMember`` -> empty
``auth``                  ``authEnabled`` -> ``\\x01``/``\\x00``; ``authRevision`` -> u64 BE
``authUsers``/``authRoles``  name -> ``authpb.User`` / ``authpb.Role``
========================  =====================================================================

etcd 3.5 writes no ``storageVersion`` (3.6 does, and 3.6 reads files without it as 3.5).
"""

from __future__ import annotations

import heapq
import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError

from kvstore.api.gen.authpb import auth_pb2
from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.server.auth_store import AuthSnapshot
from kvstore.server.version import ETCD_CLUSTER_VERSION
from kvstore.storage.bbolt import BboltError, Bucket, BucketView, Database
from kvstore.storage.mvcc import VersionRow

KEY = b"key"
META = b"meta"
LEASE = b"lease"
ALARM = b"alarm"
CLUSTER = b"cluster"
MEMBERS = b"members"
MEMBERS_REMOVED = b"members_removed"
AUTH = b"auth"
AUTH_USERS = b"authUsers"
AUTH_ROLES = b"authRoles"
CONSISTENT_INDEX = b"consistent_index"
TERM = b"term"
SCHEDULED_COMPACT = b"scheduledCompactRev"
FINISHED_COMPACT = b"finishedCompactRev"
CLUSTER_VERSION_KEY = b"clusterVersion"
AUTH_ENABLED = b"authEnabled"
AUTH_REVISION = b"authRevision"

_REV = struct.Struct(">QcQ")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


class EtcdSnapshotError(ValueError):
    """The database is valid bbolt but not a usable etcd snapshot; says which bucket and key."""


@dataclass(frozen=True, slots=True)
class EtcdState:
    """Everything an etcd snapshot carries, in this store's terms."""

    revision: int
    compact_revision: int = 0
    versions: Sequence[VersionRow] = ()
    """Every stored version (any order when writing; revision order when read)."""
    leases: Sequence[tuple[int, int]] = ()
    """(id, TTL) of every granted lease."""
    consistent_index: int = 0
    term: int = 0
    members: Sequence[internal_pb2.MemberInfo] = ()
    removed_members: Sequence[int] = ()
    alarms: Sequence[tuple[int, int]] = ()
    """(member id, alarm type)."""
    cluster_version: str = ETCD_CLUSTER_VERSION
    auth: AuthSnapshot = field(default_factory=AuthSnapshot)
    scheduled_compact_revision: int = 0
    """A compaction etcd had begun but not finished (0: none); a restore completes it."""


# -- encodings ----------------------------------------------------------------------------


def revision_key(main: int, sub: int, tombstone: bool = False) -> bytes:
    """The ``key`` bucket key of a version."""
    return _REV.pack(main, b"_", sub) + (b"t" if tombstone else b"")


def parse_revision_key(key: bytes) -> tuple[int, int, bool]:
    """(main, sub, tombstone) of a ``key`` bucket key."""
    if len(key) not in (17, 18) or key[8:9] != b"_" or (len(key) == 18 and key[17:] != b"t"):
        raise EtcdSnapshotError(f"key bucket: malformed revision key {key.hex()}")
    main, _, sub = _REV.unpack_from(key)
    return main, sub, len(key) == 18


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_lease(lease_id: int, ttl: int, remaining_ttl: int = 0) -> bytes:
    """``leasepb.Lease`` (int64 fields 1-3; zero fields are omitted, as proto3 does)."""
    out = b""
    for number, value in ((1, lease_id), (2, ttl), (3, remaining_ttl)):
        if value:
            out += bytes([number << 3]) + _varint(value)
    return out


def decode_lease(data: bytes) -> tuple[int, int]:
    """(ID, TTL) of a ``leasepb.Lease``; unknown fields are skipped."""
    fields = {1: 0, 2: 0, 3: 0}
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= len(data) or shift > 63:
                raise EtcdSnapshotError(f"lease bucket: malformed lease {data.hex()}")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while pos < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value = varint()
            fields[number] = value - (1 << 64) if value >= 1 << 63 else value
        elif wire == 2:
            length = varint()  # (not `pos += varint()`: that adds to the old pos)
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise EtcdSnapshotError(f"lease bucket: malformed lease {data.hex()}")
        if pos > len(data):
            raise EtcdSnapshotError(f"lease bucket: truncated lease {data.hex()}")
    return fields[1], fields[2]


def _member_json(m: internal_pb2.MemberInfo) -> bytes:
    doc: dict[str, object] = {"id": m.id, "peerURLs": list(m.peer_urls)}
    if m.is_learner:
        doc["isLearner"] = True
    if m.name:
        doc["name"] = m.name
    if m.client_urls:
        doc["clientURLs"] = list(m.client_urls)
    return json.dumps(doc, separators=(",", ":")).encode()


def _kv_value(row: VersionRow) -> bytes:
    mod, _, key, create, version, value, lease = row
    if version == 0:
        return kv_pb2.KeyValue(key=key).SerializeToString()
    return kv_pb2.KeyValue(
        key=key,
        create_revision=create,
        mod_revision=mod,
        version=version,
        value=value,
        lease=lease,
    ).SerializeToString()


# -- writing ------------------------------------------------------------------------------


_RUN = 2_000


def in_revision_order(versions: Sequence[VersionRow]) -> Iterator[VersionRow]:
    """``versions`` sorted by revision (rows start with it, and no two share one). Short
    runs are sorted and then merged, because one sort of the whole list is a single call
    that holds the interpreter lock throughout (a tenth of a second for 100k versions),
    stalling the event loop meanwhile."""
    runs = [sorted(versions[i : i + _RUN]) for i in range(0, len(versions), _RUN)]
    if len(runs) == 1:
        return iter(runs[0])
    return heapq.merge(*runs)


def to_buckets(state: EtcdState) -> list[tuple[bytes, Bucket]]:
    """The top-level buckets of an etcd database holding ``state`` (names ascending)."""
    keys: list[tuple[bytes, bytes | Bucket]] = [
        (revision_key(row[0], row[1], row[4] == 0), _kv_value(row))
        for row in in_revision_order(state.versions)
    ]
    meta: dict[bytes, bytes] = {
        CONSISTENT_INDEX: _U64.pack(state.consistent_index),
        TERM: _U64.pack(state.term),
    }
    if state.compact_revision:
        meta[FINISHED_COMPACT] = revision_key(state.compact_revision, 0)
        scheduled = max(state.scheduled_compact_revision, state.compact_revision)
        meta[SCHEDULED_COMPACT] = revision_key(scheduled, 0)
    leases = sorted((_I64.pack(i), encode_lease(i, ttl)) for i, ttl in state.leases)
    members = sorted((f"{m.id:x}".encode(), _member_json(m)) for m in state.members)
    removed = sorted((f"{i:x}".encode(), b"removed") for i in state.removed_members)
    alarms = sorted(
        (rpc_pb2.AlarmMember(memberID=mid, alarm=alarm).SerializeToString(), b"")  # type: ignore[arg-type]
        for mid, alarm in state.alarms
    )
    auth = state.auth
    buckets: dict[bytes, Bucket] = {
        KEY: Bucket(keys),
        META: Bucket(sorted(meta.items())),
        LEASE: Bucket(list(leases)),
        MEMBERS: Bucket(list(members)),
        MEMBERS_REMOVED: Bucket(list(removed)),
        CLUSTER: Bucket([(CLUSTER_VERSION_KEY, state.cluster_version.encode())]),
        ALARM: Bucket(list(alarms)),
        AUTH: Bucket(
            [
                (AUTH_ENABLED, b"\x01" if auth.enabled else b"\x00"),
                (AUTH_REVISION, _U64.pack(auth.revision)),
            ]
        ),
        AUTH_USERS: Bucket(sorted((u.name, u.SerializeToString()) for u in auth.users)),
        AUTH_ROLES: Bucket(sorted((r.name, r.SerializeToString()) for r in auth.roles)),
    }
    return sorted(buckets.items())


# -- reading ------------------------------------------------------------------------------


def _plain(view: BucketView | None, name: bytes) -> Iterator[tuple[bytes, bytes]]:
    if view is None:
        return
    for key, value in view.items():
        if not isinstance(value, bytes):
            raise EtcdSnapshotError(f"{name.decode()} bucket: {key!r} is a nested bucket")
        yield key, value


def _u64(bucket: bytes, key: bytes, value: bytes) -> int:
    if len(value) != 8:
        raise EtcdSnapshotError(f"{bucket.decode()} bucket: {key.decode()} is not 8 bytes")
    return int(_U64.unpack(value)[0])


def _versions(view: BucketView | None) -> Iterator[VersionRow]:
    for key, value in _plain(view, KEY):
        main, sub, tombstone = parse_revision_key(key)
        try:
            kv = kv_pb2.KeyValue.FromString(value)
        except DecodeError:
            raise EtcdSnapshotError(f"key bucket: revision {main}.{sub}: bad KeyValue") from None
        if not kv.key:
            raise EtcdSnapshotError(f"key bucket: revision {main}.{sub}: empty key")
        if tombstone:
            yield (main, sub, kv.key, 0, 0, b"", 0)
        elif kv.mod_revision != main or kv.version < 1:
            raise EtcdSnapshotError(
                f"key bucket: revision {main}.{sub}: mod_revision {kv.mod_revision}, "
                f"version {kv.version}"
            )
        else:
            yield (main, sub, kv.key, kv.create_revision, kv.version, kv.value, kv.lease)


M = TypeVar("M", auth_pb2.User, auth_pb2.Role)


def _messages(view: BucketView | None, bucket: bytes, kind: type[M]) -> tuple[M, ...]:
    """Every value of an auth bucket, decoded as ``kind``."""
    out = []
    for key, value in _plain(view, bucket):
        try:
            out.append(kind.FromString(value))
        except DecodeError:
            raise EtcdSnapshotError(f"{bucket.decode()} bucket: {key!r} does not decode") from None
    return tuple(out)


def _members(view: BucketView | None) -> list[internal_pb2.MemberInfo]:
    out = []
    for key, value in _plain(view, MEMBERS):
        try:
            doc = json.loads(value)
            out.append(
                internal_pb2.MemberInfo(
                    id=int(doc["id"]),
                    name=str(doc.get("name", "")),
                    peer_urls=[str(u) for u in doc.get("peerURLs") or []],
                    client_urls=[str(u) for u in doc.get("clientURLs") or []],
                    is_learner=bool(doc.get("isLearner", False)),
                )
            )
        except (ValueError, KeyError, TypeError):
            raise EtcdSnapshotError(f"members bucket: {key!r} is not a member record") from None
    return out


def _removed(view: BucketView | None) -> list[int]:
    out = []
    for key, _ in _plain(view, MEMBERS_REMOVED):
        try:
            out.append(int(key, 16))
        except ValueError:
            raise EtcdSnapshotError(f"members_removed bucket: {key!r} is not an id") from None
    return out


def _meta_u64(meta: dict[bytes, bytes], bucket: bytes, key: bytes) -> int:
    return _u64(bucket, key, meta[key]) if key in meta else 0


def from_database(db: Database) -> EtcdState:
    """The state an etcd database holds. Raises EtcdSnapshotError (or BboltError) naming
    what is wrong; a file without a ``key`` bucket is not an etcd snapshot."""
    buckets = dict(db.buckets())
    if KEY not in buckets:
        raise EtcdSnapshotError("not an etcd snapshot: the database has no 'key' bucket")
    versions = list(_versions(buckets[KEY]))
    meta = dict(_plain(buckets.get(META), META))
    finished = scheduled = 0
    if FINISHED_COMPACT in meta:
        finished = parse_revision_key(meta[FINISHED_COMPACT])[0]
    if SCHEDULED_COMPACT in meta:
        scheduled = parse_revision_key(meta[SCHEDULED_COMPACT])[0]
    leases = []
    for key, value in _plain(buckets.get(LEASE), LEASE):
        lease_id, ttl = decode_lease(value)
        if len(key) != 8 or _I64.unpack(key)[0] != lease_id:
            raise EtcdSnapshotError(f"lease bucket: key {key.hex()} differs from lease {lease_id}")
        leases.append((lease_id, ttl))
    alarms = []
    for key, _ in _plain(buckets.get(ALARM), ALARM):
        try:
            am = rpc_pb2.AlarmMember.FromString(key)
        except DecodeError:
            raise EtcdSnapshotError(f"alarm bucket: key {key.hex()} does not decode") from None
        alarms.append((am.memberID, int(am.alarm)))
    auth_kv = dict(_plain(buckets.get(AUTH), AUTH))
    auth = AuthSnapshot(
        enabled=auth_kv.get(AUTH_ENABLED) == b"\x01",
        revision=_meta_u64(auth_kv, AUTH, AUTH_REVISION),
        users=_messages(buckets.get(AUTH_USERS), AUTH_USERS, auth_pb2.User),
        roles=_messages(buckets.get(AUTH_ROLES), AUTH_ROLES, auth_pb2.Role),
    )
    cluster = dict(_plain(buckets.get(CLUSTER), CLUSTER))
    last = versions[-1][0] if versions else 0
    return EtcdState(
        revision=max(last, finished, 1),
        compact_revision=finished,
        versions=versions,
        leases=leases,
        consistent_index=_meta_u64(meta, META, CONSISTENT_INDEX),
        term=_meta_u64(meta, META, TERM),
        members=_members(buckets.get(MEMBERS)),
        removed_members=_removed(buckets.get(MEMBERS_REMOVED)),
        alarms=alarms,
        cluster_version=cluster.get(CLUSTER_VERSION_KEY, b"").decode(errors="replace"),
        auth=auth,
        scheduled_compact_revision=scheduled if scheduled > finished else 0,
    )


__all__ = [
    "BboltError",
    "EtcdSnapshotError",
    "EtcdState",
    "from_database",
    "to_buckets",
]
