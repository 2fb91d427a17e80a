"""The compact binary encoding of MVCC requests: the bytes the server puts in Raft entries.

Pure and deterministic: every replica decodes the same bytes to the same request. Layout
(integers little-endian; ``bytes`` = u32 length then the bytes; ``int`` = signed i64)::

    version u8 (=1) | tag u8 | fields of that request

    RANGE   key, range_end, limit, revision, sort_order u8, sort_target u8,
            flags u8 (1 keys_only, 2 count_only), min_mod, max_mod, min_create, max_create
    PUT     key, value, lease, flags u8 (1 prev_kv, 2 ignore_value, 4 ignore_lease)
    DELETE  key, range_end, flags u8 (1 prev_kv)
    TXN     n_compare u32, compares, n_success u32, ops, n_failure u32, ops
            compare = key, range_end, target u8, result u8, operand
                      (bytes for VALUE, int otherwise); op = tag u8 + fields (RANGE, PUT,
                      DELETE or TXN)
    COMPACT revision, flags u8 (1 physical)
    LEASE_GRANT   id, ttl
    LEASE_REVOKE  id

A new field is added by bumping the version byte; decoders reject versions they do not
know rather than guess.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import TypeVar

from .errors import InvalidRequestError
from .mvcc_types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    RangeRequest,
    Request,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
)

VERSION = 1
MAX_TXN_DEPTH = 64
"""Nested txns deeper than this are refused (bounds decoder recursion)."""

_E = TypeVar("_E", bound=enum.IntEnum)
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")


class Tag(enum.IntEnum):
    """Which request follows."""

    RANGE = 1
    PUT = 2
    DELETE = 3
    TXN = 4
    COMPACT = 5
    LEASE_GRANT = 6
    LEASE_REVOKE = 7


class Writer:
    """Appends encoded fields to a buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> None:
        """One unsigned byte."""
        self.buf.append(v)

    def u32(self, v: int) -> None:
        """A 32-bit unsigned count."""
        self.buf += _U32.pack(v)

    def i64(self, v: int) -> None:
        """A 64-bit signed integer (revisions, lease ids, limits)."""
        self.buf += _I64.pack(v)

    def blob(self, v: bytes) -> None:
        """Length-prefixed bytes."""
        self.buf += _U32.pack(len(v))
        self.buf += v


class Reader:
    """Reads fields back; any overrun is an InvalidRequestError, never an IndexError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise InvalidRequestError("request encoding is truncated")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u8(self) -> int:
        """One unsigned byte."""
        return self._take(1)[0]

    def u32(self) -> int:
        """A 32-bit unsigned count."""
        v: int = _U32.unpack(self._take(4))[0]
        return v

    def i64(self) -> int:
        """A 64-bit signed integer."""
        v: int = _I64.unpack(self._take(8))[0]
        return v

    def blob(self) -> bytes:
        """Length-prefixed bytes."""
        return self._take(self.u32())

    def done(self) -> None:
        """Fail if bytes are left over (a sign of a mismatched encoder)."""
        if self.pos != len(self.data):
            raise InvalidRequestError(f"{len(self.data) - self.pos} trailing bytes in request")


def encode_request(req: Request) -> bytes:
    """The entry bytes for ``req``."""
    w = Writer()
    w.u8(VERSION)
    _write(w, req)
    return bytes(w.buf)


def decode_request(data: bytes) -> Request:
    """Parse entry bytes; InvalidRequestError if they are not a valid encoding."""
    r = Reader(data)
    version = r.u8()
    if version != VERSION:
        raise InvalidRequestError(f"unknown request encoding version {version}")
    req = _read(r, 0)
    r.done()
    return req


def _write(w: Writer, req: Request) -> None:
    if isinstance(req, RangeRequest):
        w.u8(Tag.RANGE)
        w.blob(req.key)
        w.blob(req.range_end)
        w.i64(req.limit)
        w.i64(req.revision)
        w.u8(req.sort_order)
        w.u8(req.sort_target)
        w.u8((1 if req.keys_only else 0) | (2 if req.count_only else 0))
        for v in (
            req.min_mod_revision,
            req.max_mod_revision,
            req.min_create_revision,
            req.max_create_revision,
        ):
            w.i64(v)
    elif isinstance(req, PutRequest):
        w.u8(Tag.PUT)
        w.blob(req.key)
        w.blob(req.value)
        w.i64(req.lease)
        w.u8(
            (1 if req.prev_kv else 0)
            | (2 if req.ignore_value else 0)
            | (4 if req.ignore_lease else 0)
        )
    elif isinstance(req, DeleteRangeRequest):
        w.u8(Tag.DELETE)
        w.blob(req.key)
        w.blob(req.range_end)
        w.u8(1 if req.prev_kv else 0)
    elif isinstance(req, TxnRequest):
        w.u8(Tag.TXN)
        w.u32(len(req.compare))
        for c in req.compare:
            _write_compare(w, c)
        for ops in (req.success, req.failure):
            w.u32(len(ops))
            for op in ops:
                _write(w, op)
    elif isinstance(req, CompactionRequest):
        w.u8(Tag.COMPACT)
        w.i64(req.revision)
        w.u8(1 if req.physical else 0)
    elif isinstance(req, LeaseGrantRequest):
        w.u8(Tag.LEASE_GRANT)
        w.i64(req.id)
        w.i64(req.ttl)
    else:
        w.u8(Tag.LEASE_REVOKE)
        w.i64(req.id)


def _write_compare(w: Writer, c: Compare) -> None:
    w.blob(c.key)
    w.blob(c.range_end)
    w.u8(c.target)
    w.u8(c.result)
    if c.target == CompareTarget.VALUE:
        if not isinstance(c.operand, bytes):
            raise InvalidRequestError("a VALUE compare needs a bytes operand")
        w.blob(c.operand)
    else:
        if not isinstance(c.operand, int):
            raise InvalidRequestError(f"a {c.target.name} compare needs an integer operand")
        w.i64(c.operand)


def _enum(cls: type[_E], v: int) -> _E:
    try:
        return cls(v)
    except ValueError as exc:
        raise InvalidRequestError(f"invalid {cls.__name__} {v}") from exc


def _read(r: Reader, depth: int) -> Request:
    tag = r.u8()
    reader = _READERS.get(tag)
    if reader is None:
        raise InvalidRequestError(f"unknown request tag {tag}")
    return reader(r, depth)


def _read_range(r: Reader, _depth: int) -> RangeRequest:
    key, range_end = r.blob(), r.blob()
    limit, revision = r.i64(), r.i64()
    order, target, flags = _enum(SortOrder, r.u8()), _enum(SortTarget, r.u8()), r.u8()
    return RangeRequest(
        key,
        range_end,
        limit,
        revision,
        order,
        target,
        keys_only=bool(flags & 1),
        count_only=bool(flags & 2),
        min_mod_revision=r.i64(),
        max_mod_revision=r.i64(),
        min_create_revision=r.i64(),
        max_create_revision=r.i64(),
    )


def _read_put(r: Reader, _depth: int) -> PutRequest:
    key, value, lease, flags = r.blob(), r.blob(), r.i64(), r.u8()
    return PutRequest(key, value, lease, bool(flags & 1), bool(flags & 2), bool(flags & 4))


def _read_delete(r: Reader, _depth: int) -> DeleteRangeRequest:
    key, range_end, flags = r.blob(), r.blob(), r.u8()
    return DeleteRangeRequest(key, range_end, bool(flags & 1))


def _read_txn(r: Reader, depth: int) -> TxnRequest:
    if depth >= MAX_TXN_DEPTH:
        raise InvalidRequestError(f"txn nested deeper than {MAX_TXN_DEPTH}")
    compares = tuple(_read_compare(r) for _ in range(r.u32()))
    success = tuple(_read_op(r, depth + 1) for _ in range(r.u32()))
    failure = tuple(_read_op(r, depth + 1) for _ in range(r.u32()))
    return TxnRequest(compares, success, failure)


def _read_compact(r: Reader, _depth: int) -> CompactionRequest:
    revision, flags = r.i64(), r.u8()
    return CompactionRequest(revision, bool(flags & 1))


def _read_grant(r: Reader, _depth: int) -> LeaseGrantRequest:
    return LeaseGrantRequest(r.i64(), r.i64())


def _read_revoke(r: Reader, _depth: int) -> LeaseRevokeRequest:
    return LeaseRevokeRequest(r.i64())


_READERS: dict[int, Callable[[Reader, int], Request]] = {
    Tag.RANGE: _read_range,
    Tag.PUT: _read_put,
    Tag.DELETE: _read_delete,
    Tag.TXN: _read_txn,
    Tag.COMPACT: _read_compact,
    Tag.LEASE_GRANT: _read_grant,
    Tag.LEASE_REVOKE: _read_revoke,
}


def _read_op(r: Reader, depth: int) -> RequestOp:
    req = _read(r, depth)
    if not isinstance(req, RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest):
        raise InvalidRequestError(f"{type(req).__name__} is not allowed inside a txn")
    return req


def _read_compare(r: Reader) -> Compare:
    key, range_end = r.blob(), r.blob()
    target = _enum(CompareTarget, r.u8())
    result = _enum(CompareResult, r.u8())
    operand: int | bytes = r.blob() if target == CompareTarget.VALUE else r.i64()
    return Compare(key, target, result, operand, range_end)
