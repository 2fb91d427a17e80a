"""Deterministic, versioned binary encoding of the values that cross a process boundary.

Layout (all integers big-endian, fixed width):

* every top-level value starts with one version byte (``VERSION``); a decoder refuses any
  other version rather than guessing;
* ``bytes`` fields are a u32 length then the bytes; sets of node ids are a u32 count then
  sorted u64 ids (sorted so that equal values encode to equal bytes);
* a Message is a fixed header, its context, its entries (u32 count, then each entry), then a
  presence byte and, if 1, the snapshot.

Decoding checks every length against the remaining input and rejects trailing bytes, so a
truncated or corrupted frame fails loudly with CodecError instead of yielding a wrong value.
"""

from __future__ import annotations

import struct
from typing import TypeVar

from .errors import CodecError
from .types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

VERSION = 1
"""Bumped whenever the layout changes; peers of different versions refuse each other."""

_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MSG_HEADER = struct.Struct(">BBQQQQQQBQ")  # version, type, to, from, term, log_term,
# index, commit, reject, reject_hint
_ENTRY_HEADER = struct.Struct(">QQBI")  # term, index, type, data length
_HARD_STATE = struct.Struct(">BQQQ")  # version, term, vote, commit
_CONF_CHANGE_HEADER = struct.Struct(">BBQ")  # version, type, node id
_SNAP_HEADER = struct.Struct(">QQ")  # index, term


class _Reader:
    """A cursor over input bytes that raises CodecError instead of reading past the end."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, s: struct.Struct) -> tuple[int, ...]:
        end = self.pos + s.size
        if end > len(self.buf):
            raise CodecError(f"truncated input at offset {self.pos}")
        vals = s.unpack_from(self.buf, self.pos)
        self.pos = end
        return vals

    def raw(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise CodecError(f"truncated input at offset {self.pos} (need {n} bytes)")
        out = bytes(self.buf[self.pos : end])
        self.pos = end
        return out

    def blob(self) -> bytes:
        (n,) = self.take(_U32)
        return self.raw(n)

    def finish(self) -> None:
        if self.pos != len(self.buf):
            raise CodecError(f"{len(self.buf) - self.pos} trailing bytes")


_E = TypeVar("_E", MessageType, EntryType, ConfChangeType)


def _enum(kind: type[_E], value: int) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise CodecError(f"unknown {kind.__name__} {value}") from None


def _check_version(version: int) -> None:
    if version != VERSION:
        raise CodecError(f"unsupported encoding version {version} (expected {VERSION})")


# -- pieces ---------------------------------------------------------------------------------


def _put_blob(out: list[bytes], data: bytes) -> None:
    out.append(_U32.pack(len(data)))
    out.append(data)


def _put_ids(out: list[bytes], ids: frozenset[int]) -> None:
    out.append(_U32.pack(len(ids)))
    out.extend(_U64.pack(i) for i in sorted(ids))


def _get_ids(r: _Reader) -> frozenset[int]:
    (n,) = r.take(_U32)
    if n * _U64.size > len(r.buf) - r.pos:
        raise CodecError("id set longer than the input")
    return frozenset(r.take(_U64)[0] for _ in range(n))


def _put_entry(out: list[bytes], e: Entry) -> None:
    out.append(_ENTRY_HEADER.pack(e.term, e.index, e.type, len(e.data)))
    out.append(e.data)


def _get_entry(r: _Reader) -> Entry:
    term, index, etype, n = r.take(_ENTRY_HEADER)
    return Entry(term, index, _enum(EntryType, etype), r.raw(n))


def _put_snapshot(out: list[bytes], snap: Snapshot) -> None:
    md = snap.metadata
    out.append(_SNAP_HEADER.pack(md.index, md.term))
    _put_ids(out, md.conf_state.voters)
    _put_ids(out, md.conf_state.learners)
    _put_blob(out, snap.data)


def _get_snapshot(r: _Reader) -> Snapshot:
    index, term = r.take(_SNAP_HEADER)
    voters = _get_ids(r)
    learners = _get_ids(r)
    data = r.blob()
    return Snapshot(SnapshotMetadata(index, term, ConfState(voters, learners)), data)


# -- public ---------------------------------------------------------------------------------


def encode_message(m: Message) -> bytes:
    """The wire form of ``m``."""
    out = [
        _MSG_HEADER.pack(
            VERSION,
            m.type,
            m.to,
            m.from_,
            m.term,
            m.log_term,
            m.index,
            m.commit,
            1 if m.reject else 0,
            m.reject_hint,
        )
    ]
    _put_blob(out, m.context)
    out.append(_U32.pack(len(m.entries)))
    for e in m.entries:
        _put_entry(out, e)
    if m.snapshot is None:
        out.append(_U8.pack(0))
    else:
        out.append(_U8.pack(1))
        _put_snapshot(out, m.snapshot)
    return b"".join(out)


def decode_message(data: bytes) -> Message:
    """The Message encoded in ``data``; raises CodecError on anything malformed."""
    r = _Reader(data)
    version, mtype, to, from_, term, log_term, index, commit, reject, hint = r.take(_MSG_HEADER)
    _check_version(version)
    if reject > 1:
        raise CodecError(f"invalid reject flag {reject}")
    context = r.blob()
    (count,) = r.take(_U32)
    if count * _ENTRY_HEADER.size > len(data) - r.pos:
        raise CodecError("entry count longer than the input")
    entries = tuple(_get_entry(r) for _ in range(count))
    (has_snap,) = r.take(_U8)
    if has_snap > 1:
        raise CodecError(f"invalid snapshot flag {has_snap}")
    snapshot = _get_snapshot(r) if has_snap else None
    r.finish()
    return Message(
        type=_enum(MessageType, mtype),
        to=to,
        from_=from_,
        term=term,
        log_term=log_term,
        index=index,
        entries=entries,
        commit=commit,
        snapshot=snapshot,
        reject=bool(reject),
        reject_hint=hint,
        context=context,
    )


def encode_conf_change(cc: ConfChange) -> bytes:
    """The bytes stored as the data of a CONF_CHANGE entry."""
    out = [_CONF_CHANGE_HEADER.pack(VERSION, cc.type, cc.node_id)]
    _put_blob(out, cc.context)
    return b"".join(out)


def decode_conf_change(data: bytes) -> ConfChange:
    """The ConfChange in a CONF_CHANGE entry's data; raises CodecError if malformed."""
    r = _Reader(data)
    version, cctype, node_id = r.take(_CONF_CHANGE_HEADER)
    _check_version(version)
    context = r.blob()
    r.finish()
    return ConfChange(_enum(ConfChangeType, cctype), node_id, context)


def encode_entry(e: Entry) -> bytes:
    """A versioned encoding of one entry (for logs and WAL records)."""
    out = [_U8.pack(VERSION)]
    _put_entry(out, e)
    return b"".join(out)


def decode_entry(data: bytes) -> Entry:
    """The inverse of :func:`encode_entry`."""
    r = _Reader(data)
    _check_version(r.take(_U8)[0])
    e = _get_entry(r)
    r.finish()
    return e


def encode_hard_state(hs: HardState) -> bytes:
    """A versioned encoding of a hard state."""
    return _HARD_STATE.pack(VERSION, hs.term, hs.vote, hs.commit)


def decode_hard_state(data: bytes) -> HardState:
    """The inverse of :func:`encode_hard_state`."""
    r = _Reader(data)
    version, term, vote, commit = r.take(_HARD_STATE)
    _check_version(version)
    r.finish()
    return HardState(term, vote, commit)


def encode_snapshot(snap: Snapshot) -> bytes:
    """A versioned encoding of a snapshot (metadata, membership and data)."""
    out = [_U8.pack(VERSION)]
    _put_snapshot(out, snap)
    return b"".join(out)


def decode_snapshot(data: bytes) -> Snapshot:
    """The inverse of :func:`encode_snapshot`."""
    r = _Reader(data)
    _check_version(r.take(_U8)[0])
    snap = _get_snapshot(r)
    r.finish()
    return snap
