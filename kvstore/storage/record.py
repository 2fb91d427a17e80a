"""The write-ahead log's record codec: framing, checksums and payloads. Pure (no I/O).

Every record on disk is::

    +-----------+-------------+---------+-----------------+
    | crc (u32) | length (u32)| type(u8)| payload (length)|
    +-----------+-------------+---------+-----------------+
      little-endian; crc = CRC-32 (zlib) over length, type and payload

The checksum covers the length and type as well as the payload, so a damaged length field
cannot make a wrong slice of bytes look valid. Type 0 is never written: a run of zero bytes
(a page the disk never received) can therefore never parse as a record, which is what lets
recovery tell an unwritten hole from a real record.

Payloads, by type (all integers little-endian):

- ``SEGMENT_HEADER``: magic ``KVWAL``, format version (u8), segment sequence number (u64).
  The first record of every segment; ties the file to its place in the sequence.
- ``METADATA``: opaque bytes from the owner (the server stores node and cluster ids).
- ``ENTRY``: term (u64), index (u64), entry type (u8), data.
- ``HARD_STATE``: term, vote, commit (u64 each).
- ``SNAPSHOT``: index (u64), term (u64), reset flag (u8). ``reset`` marks a follower that
  replaced its whole log by a leader's snapshot; otherwise a local snapshot was taken.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from kvstore.raft.types import Entry, EntryType, HardState

HEADER = struct.Struct("<IIB")
"""crc, length, type."""
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 1 << 30
"""No single record is larger than this; a length above it is corruption, not data."""

_LENGTH_TYPE = struct.Struct("<IB")
_ENTRY = struct.Struct("<QQB")
_HARD_STATE = struct.Struct("<QQQ")
_SNAPSHOT = struct.Struct("<QQB")
_SEGMENT = struct.Struct("<5sBQ")
MAGIC = b"KVWAL"
FORMAT_VERSION = 1


class RecordType(enum.IntEnum):
    """What a record's payload holds. 0 is reserved so that zero bytes never parse."""

    SEGMENT_HEADER = 1
    METADATA = 2
    ENTRY = 3
    HARD_STATE = 4
    SNAPSHOT = 5


_VALID_TYPES = frozenset(int(t) for t in RecordType)


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """The first record of a segment."""

    seq: int
    version: int = FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class Metadata:
    """Opaque owner data, repeated at the start of every segment."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SnapshotMarker:
    """A snapshot at (index, term) was saved; ``reset`` when it replaced the whole log."""

    index: int
    term: int
    reset: bool = False


Record = SegmentHeader | Metadata | Entry | HardState | SnapshotMarker


def frame(rtype: RecordType, payload: bytes) -> bytes:
    """Wrap ``payload`` in a checksummed frame."""
    lt = _LENGTH_TYPE.pack(len(payload), rtype)
    crc = zlib.crc32(payload, zlib.crc32(lt))
    return struct.pack("<I", crc) + lt + payload


def encode(record: Record) -> bytes:
    """The framed bytes of one record."""
    if isinstance(record, Entry):
        payload = _ENTRY.pack(record.term, record.index, record.type) + record.data
        return frame(RecordType.ENTRY, payload)
    if isinstance(record, HardState):
        return frame(
            RecordType.HARD_STATE, _HARD_STATE.pack(record.term, record.vote, record.commit)
        )
    if isinstance(record, SnapshotMarker):
        payload = _SNAPSHOT.pack(record.index, record.term, 1 if record.reset else 0)
        return frame(RecordType.SNAPSHOT, payload)
    if isinstance(record, SegmentHeader):
        return frame(RecordType.SEGMENT_HEADER, _SEGMENT.pack(MAGIC, record.version, record.seq))
    return frame(RecordType.METADATA, record.data)


class FrameError(ValueError):
    """A frame that does not parse; ``offset`` is where it starts."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"{reason} at offset {offset}")
        self.offset = offset
        self.reason = reason


def decode_payload(rtype: int, payload: bytes | memoryview, offset: int) -> Record:
    """Turn a checksummed payload into its record; FrameError if its shape is wrong."""
    try:
        if rtype == RecordType.ENTRY:
            term, index, etype = _ENTRY.unpack_from(payload)
            return Entry(term, index, EntryType(etype), bytes(payload[_ENTRY.size :]))
        if rtype == RecordType.HARD_STATE:
            term, vote, commit = _HARD_STATE.unpack(payload)
            return HardState(term, vote, commit)
        if rtype == RecordType.SNAPSHOT:
            index, term, reset = _SNAPSHOT.unpack(payload)
            return SnapshotMarker(index, term, bool(reset))
        if rtype == RecordType.SEGMENT_HEADER:
            magic, version, seq = _SEGMENT.unpack(payload)
            if magic != MAGIC or version != FORMAT_VERSION:
                raise FrameError(offset, f"bad segment header (magic {magic!r}, v{version})")
            return SegmentHeader(seq, version)
        if rtype == RecordType.METADATA:
            return Metadata(bytes(payload))
    except (struct.error, ValueError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(offset, f"malformed {RecordType(rtype).name} payload: {exc}") from exc
    raise FrameError(offset, f"unknown record type {rtype}")


def decode_at(buf: bytes | memoryview, offset: int) -> tuple[Record, int]:
    """Decode the record starting at ``offset``; returns it and the offset after it.

    Raises FrameError when the bytes there are not a whole, valid record (short header,
    impossible length, unknown type or checksum mismatch).
    """
    end = len(buf)
    if end - offset < HEADER_SIZE:
        raise FrameError(offset, "truncated record header")
    crc, length, rtype = HEADER.unpack_from(buf, offset)
    if rtype not in _VALID_TYPES:
        raise FrameError(offset, f"invalid record type {rtype}")
    if length > MAX_PAYLOAD or offset + HEADER_SIZE + length > end:
        raise FrameError(offset, f"record length {length} runs past the end of the data")
    view = memoryview(buf)
    start = offset + HEADER_SIZE
    payload = view[start : start + length]
    if zlib.crc32(payload, zlib.crc32(view[offset + 4 : start])) != crc:
        raise FrameError(offset, "checksum mismatch")
    return decode_payload(rtype, payload, offset), start + length


_ENTRY_TYPES = tuple(EntryType)


def iter_records(buf: bytes, offset: int = 0) -> Iterator[tuple[int, Record, int]]:
    """Yield (offset, record, next offset) for consecutive records from ``offset``.

    The same checks as :func:`decode_at`, written as one loop because recovery runs it
    over every record of the log (entries take a fast path). Raises FrameError at the
    first record that does not decode.
    """
    view = memoryview(buf)
    end = len(buf)
    unpack_header = HEADER.unpack_from
    unpack_entry = _ENTRY.unpack_from
    crc32 = zlib.crc32
    entry_types = _ENTRY_TYPES
    while offset < end:
        if end - offset < HEADER_SIZE:
            raise FrameError(offset, "truncated record header")
        crc, length, rtype = unpack_header(buf, offset)
        start = offset + HEADER_SIZE
        stop = start + length
        if rtype not in _VALID_TYPES:
            raise FrameError(offset, f"invalid record type {rtype}")
        if length > MAX_PAYLOAD or stop > end:
            raise FrameError(offset, f"record length {length} runs past the end of the data")
        if crc32(view[offset + 4 : stop]) != crc:
            raise FrameError(offset, "checksum mismatch")
        rec: Record
        if rtype == RecordType.ENTRY and length >= _ENTRY.size:
            term, index, etype = unpack_entry(buf, start)
            if etype >= len(entry_types):
                raise FrameError(offset, f"invalid entry type {etype}")
            rec = Entry(term, index, entry_types[etype], buf[start + _ENTRY.size : stop])
        else:
            rec = decode_payload(rtype, view[start:stop], offset)
        yield offset, rec, stop
        offset = stop


def is_hole(buf: bytes | memoryview, offset: int) -> bool:
    """Whether a whole header's worth of zero bytes sits at ``offset``: space the file
    system extended but whose data never reached the disk (never a real record)."""
    chunk = bytes(buf[offset : offset + HEADER_SIZE])
    return len(chunk) > 0 and chunk.count(0) == len(chunk)


def find_next_frame(buf: bytes | memoryview, start: int) -> int | None:
    """The first offset after ``start`` where a whole valid record begins, or None.

    Recovery uses it to tell a torn tail (nothing valid after the damage) from damage in
    the middle of the log (valid records follow, so acknowledged data would be lost).
    """
    end = len(buf)
    view = memoryview(buf)
    for pos in range(start + 1, end - HEADER_SIZE + 1):
        if view[pos + 8] not in _VALID_TYPES:
            continue
        crc, length, _ = HEADER.unpack_from(view, pos)
        if pos + HEADER_SIZE + length > end:
            continue
        body = view[pos + 4 : pos + HEADER_SIZE + length]
        if zlib.crc32(body) == crc:
            return pos
    return None
