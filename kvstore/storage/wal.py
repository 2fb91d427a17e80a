"""The write-ahead log: Raft entries, hard state and snapshot markers in segment files.

Layout: a directory of segments named ``<seq>-<first index>.wal`` (16 hex digits each).
``seq`` counts segments from 0; ``first index`` is one past the last log index at the
moment the segment was created, which is what makes releasing old segments safe (see
:meth:`Wal.release_to`). Every segment starts with a header record, the owner's metadata
and the hard state current at its creation, so deleting older segments never loses them.
Record framing and payloads are in :mod:`kvstore.storage.record`.

Durability (group commit): ``append_*`` only buffers and returns a log sequence number
(LSN); :meth:`Wal.sync` writes everything buffered, fsyncs once and returns the highest LSN
now durable. Callers that must not act before their records are on disk (granting a vote,
acknowledging an append, replying to a client) wait for ``sync() >= their LSN``. Threads
may append while another thread's fsync is in flight; the next ``sync`` covers them all.

Recovery (:meth:`Wal.open`) replays every segment in order:

- damage in the **last** segment with nothing valid after it (or an all-zero hole where a
  record header should be) is a torn write of data never acknowledged: the tail is
  truncated, logged, and the log continues from there;
- damage anywhere else, or damage followed by valid records, means acknowledged data is
  lost: :class:`~kvstore.storage.errors.CorruptionError` names the file and byte offset and
  the node refuses to start rather than silently forget a vote or a committed entry;
- an entry whose index is at or below the last one replayed overwrites it and everything
  after it (Raft truncating an uncommitted suffix), exactly as it did when first written.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kvstore.raft.types import Entry, HardState

from . import record
from .errors import CorruptionError, SnapshotNotFoundError, WalClosedError
from .fsutil import ensure_dir, fsync_dir, write_all, write_file_atomically
from .record import FrameError, Metadata, Record, SegmentHeader, SnapshotMarker

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024
"""Rotate to a new segment once the current one holds this many bytes."""
FLUSH_THRESHOLD = 4 * 1024 * 1024
"""Write the buffer to the file (without fsync) once it holds this many bytes."""

_SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment file."""

    seq: int
    first_index: int
    path: Path


def segment_name(seq: int, first_index: int) -> str:
    """The file name of segment ``seq`` created when the log ended at ``first_index - 1``."""
    return f"{seq:016x}-{first_index:016x}.wal"


@dataclass(slots=True)
class Replay:
    """What recovery found: the state the log describes on top of the snapshot base."""

    metadata: bytes
    hard_state: HardState
    entries: list[Entry]
    """Contiguous entries from ``base_index + 1``, after applying every overwrite."""
    snapshot: SnapshotMarker | None = None
    """The last snapshot marker replayed, if any."""
    truncated: tuple[Path, int] | None = None
    """(file, offset) where a torn tail was cut off, if one was."""
    term_at_base: int | None = None
    """The term of the last entry written at ``base_index``, if the log still holds one:
    the owner checks it against its snapshot's term."""


@dataclass(slots=True)
class _Replayer:
    """Folds records into the log they describe (pure; no I/O)."""

    base_index: int
    metadata: bytes | None = None
    hard_state: HardState = field(default_factory=HardState)
    entries: list[Entry] = field(default_factory=list)
    snapshot: SnapshotMarker | None = None
    term_at_base: int | None = None

    def feed(self, path: Path, offset: int, rec: Record) -> None:
        if isinstance(rec, Entry):
            pos = rec.index - self.base_index - 1
            if pos < 0:
                # Covered by the snapshot, but it still cuts off whatever followed it.
                self.entries.clear()
                if rec.index == self.base_index:
                    self.term_at_base = rec.term
                return
            if pos > len(self.entries):
                expected = self.base_index + len(self.entries) + 1
                raise CorruptionError(
                    path, offset, f"entry {rec.index} follows a gap (expected <= {expected})"
                )
            if pos < len(self.entries):
                del self.entries[pos:]
            self.entries.append(rec)
        elif isinstance(rec, HardState):
            self.hard_state = rec
        elif isinstance(rec, SnapshotMarker):
            self.snapshot = rec
            if rec.reset:
                self.term_at_base = None
                if rec.index > self.base_index:
                    raise SnapshotNotFoundError(
                        f"{path} at offset {offset}: the log was replaced by a snapshot at "
                        f"index {rec.index}, but the newest valid snapshot is at "
                        f"{self.base_index}"
                    )
                self.entries.clear()
        elif isinstance(rec, Metadata) and self.metadata is None:
            self.metadata = rec.data


class Wal:
    """An open write-ahead log. Create with :meth:`open`; thread-safe."""

    def __init__(
        self,
        directory: Path,
        *,
        segments: list[Segment],
        fd: int,
        size: int,
        metadata: bytes,
        hard_state: HardState,
        last_index: int,
        segment_size: int,
        fsync_observer: Callable[[float], None] | None,
    ) -> None:
        self._dir = directory
        self._segments = segments
        self._fd = fd
        self._size = size
        self._metadata = metadata
        self._segment_size = segment_size
        self._observe = fsync_observer
        # _lock guards the buffer and the appended state; _sync_lock serialises writes to
        # the file, fsyncs and rotation. Order: _sync_lock, then _lock; never the reverse.
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._buf = bytearray()
        self._appended = 0
        self._durable = 0
        self._hard_state = hard_state
        self._last_index = last_index
        # What the file holds once the buffer is written: a new segment starts from these.
        self._written_hard_state = hard_state
        self._written_last_index = last_index
        self._closed = False

    # -- opening and recovery ---------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        base_index: int = 0,
        metadata: bytes = b"",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        fsync_observer: Callable[[float], None] | None = None,
    ) -> tuple[Wal, Replay]:
        """Open (creating if empty) the log in ``directory`` and replay it.

        ``base_index`` is the index of the snapshot the caller restored: entries at or
        below it are skipped. ``metadata`` is written into a new log and ignored for an
        existing one (the stored value is returned in the replay). ``fsync_observer`` is
        called with the duration of every fsync (for a latency histogram).

        Raises CorruptionError (with file and offset) for damage that is not a torn tail,
        and SnapshotNotFoundError if the log needs a newer snapshot than ``base_index``.
        """
        path = Path(directory)
        ensure_dir(path)
        for tmp in path.glob("*.wal.tmp"):
            tmp.unlink()
        segments = _list_segments(path)
        if not segments:
            seg = Segment(0, base_index + 1, path / segment_name(0, base_index + 1))
            hs = HardState()
            fd, size = _create_segment(seg, metadata, hs)
            wal = cls(
                path,
                segments=[seg],
                fd=fd,
                size=size,
                metadata=metadata,
                hard_state=hs,
                last_index=base_index,
                segment_size=segment_size,
                fsync_observer=fsync_observer,
            )
            return wal, Replay(metadata, hs, [])

        replayer = _Replayer(base_index)
        truncated: tuple[Path, int] | None = None
        size = 0
        for i, seg in enumerate(segments):
            is_last = i == len(segments) - 1
            data = seg.path.read_bytes()
            end = _scan_segment(seg, data, is_last, replayer)
            if is_last:
                size = end
                if end < len(data):
                    _truncate(seg.path, end)
                    truncated = (seg.path, end)
                    log.warning(
                        "wal: cut a torn tail off %s at byte offset %d (%d bytes dropped)",
                        seg.path,
                        end,
                        len(data) - end,
                    )
        stored_metadata = replayer.metadata if replayer.metadata is not None else metadata
        last_index = base_index + len(replayer.entries)
        fd = os.open(segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        wal = cls(
            path,
            segments=segments,
            fd=fd,
            size=size,
            metadata=stored_metadata,
            hard_state=replayer.hard_state,
            last_index=last_index,
            segment_size=segment_size,
            fsync_observer=fsync_observer,
        )
        replay = Replay(
            stored_metadata,
            replayer.hard_state,
            replayer.entries,
            replayer.snapshot,
            truncated,
            replayer.term_at_base,
        )
        return wal, replay

    # -- appending --------------------------------------------------------------------

    def append_entries(self, entries: Sequence[Entry]) -> int:
        """Buffer ``entries`` (contiguous; the first may be at or below the last index to
        overwrite a suffix). Returns the LSN to wait for with :meth:`sync`."""
        if not entries:
            return self._append((), None, None)
        return self._append(entries, None, entries[-1].index)

    def append_hard_state(self, hard_state: HardState) -> int:
        """Buffer a new hard state (term, vote, commit)."""
        return self._append((hard_state,), hard_state, None)

    def append_snapshot(self, index: int, term: int, *, reset: bool) -> int:
        """Buffer a snapshot marker. ``reset`` when the snapshot replaced the whole log
        (the log then ends at ``index``)."""
        marker = SnapshotMarker(index, term, reset)
        return self._append((marker,), None, index if reset else None)

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool) -> int:
        """Buffer entries then the hard state (one batch) and, if ``sync``, make them
        durable before returning. Returns the batch's LSN."""
        records: list[Record] = list(entries)
        if hard_state is not None:
            records.append(hard_state)
        last = entries[-1].index if entries else None
        lsn = self._append(records, hard_state, last)
        if sync:
            self.sync()
        return lsn

    def _append(
        self, records: Iterable[Record], hard_state: HardState | None, last_index: int | None
    ) -> int:
        with self._lock:
            if self._closed:
                raise WalClosedError("write-ahead log is closed")
            buf = self._buf
            n = 0
            for rec in records:
                buf += record.encode(rec)
                n += 1
            self._appended += n
            if hard_state is not None:
                self._hard_state = hard_state
            if last_index is not None:
                self._last_index = last_index
            lsn = self._appended
            big = len(buf) >= FLUSH_THRESHOLD
        if big:
            with self._sync_lock:
                self._write_buffer()
        return lsn

    # -- durability -------------------------------------------------------------------

    @property
    def appended_lsn(self) -> int:
        """The LSN of the last record appended."""
        return self._appended

    @property
    def durable_lsn(self) -> int:
        """Every record with an LSN up to this one is on disk."""
        return self._durable

    def sync(self) -> int:
        """Write and fsync everything appended so far; returns the durable LSN.

        One fsync covers every record appended before the call, by any thread (group
        commit). A call that finds its records already made durable by another thread's
        sync returns at once.
        """
        with self._sync_lock:
            if self._closed:
                raise WalClosedError("write-ahead log is closed")
            lsn = self._write_buffer()
            if lsn > self._durable:
                started = time.perf_counter()
                _fdatasync(self._fd)
                if self._observe is not None:
                    self._observe(time.perf_counter() - started)
                self._durable = lsn
            if self._size >= self._segment_size:
                self._rotate()
            return self._durable

    def _write_buffer(self) -> int:
        """Move the buffer into the file (caller holds ``_sync_lock``); returns its LSN."""
        with self._lock:
            data = self._buf
            self._buf = bytearray()
            lsn = self._appended
            hard_state = self._hard_state
            last_index = self._last_index
        if data:
            write_all(self._fd, data)
            self._size += len(data)
        self._written_hard_state = hard_state
        self._written_last_index = last_index
        return lsn

    def _rotate(self) -> None:
        """Start the next segment (caller holds ``_sync_lock``; the current one is synced).

        The new file is complete and fsynced (with its directory entry) before anything
        is appended to it, so a crash never leaves a segment without its header.
        """
        prev = self._segments[-1]
        seg = Segment(
            prev.seq + 1,
            self._written_last_index + 1,
            self._dir / segment_name(prev.seq + 1, self._written_last_index + 1),
        )
        fd, size = _create_segment(seg, self._metadata, self._written_hard_state)
        os.close(self._fd)
        self._fd = fd
        self._size = size
        self._segments.append(seg)

    # -- maintenance ------------------------------------------------------------------

    @property
    def segments(self) -> list[Segment]:
        """The live segment files, oldest first."""
        with self._sync_lock:
            return list(self._segments)

    @property
    def metadata(self) -> bytes:
        """The owner's metadata stored in the log."""
        return self._metadata

    @staticmethod
    def read_metadata(directory: Path | str) -> bytes | None:
        """The owner's metadata of an existing log (None if there is none), read from the
        head of its oldest segment without replaying anything: a member learns who it is
        before it opens its storage for real."""
        path = Path(directory)
        segments = _list_segments(path) if path.is_dir() else []
        if not segments:
            return None
        with segments[0].path.open("rb") as f:
            head = f.read(_METADATA_PROBE_BYTES)
        try:
            for _, rec, _ in record.iter_records(head):
                if isinstance(rec, Metadata):
                    return rec.data
        except FrameError:
            pass  # cut off inside a record (or damaged): Wal.open decides which
        raise CorruptionError(segments[0].path, 0, "no metadata record at the segment head")

    def release_to(self, snapshot_index: int) -> list[Path]:
        """Delete the segments a durable snapshot at ``snapshot_index`` makes unnecessary.

        Segments ``0..k`` can go when segment ``k+1`` was created while the log ended at or
        before ``snapshot_index``: every entry after the snapshot was appended later, so
        it lives in segment ``k+1`` or after, and every segment repeats the hard state and
        metadata. The current segment is never deleted. Returns the deleted paths.
        """
        with self._sync_lock:
            keep_from = 0
            for i in range(1, len(self._segments)):
                if self._segments[i].first_index - 1 <= snapshot_index:
                    keep_from = i
            doomed = self._segments[:keep_from]
            for seg in doomed:
                seg.path.unlink()
            if doomed:
                fsync_dir(self._dir)
            self._segments = self._segments[keep_from:]
            return [seg.path for seg in doomed]

    def close(self) -> None:
        """Sync what is buffered and close the file. Further use raises WalClosedError."""
        with self._sync_lock:
            if self._closed:
                return
        self.sync()
        with self._sync_lock, self._lock:
            self._closed = True
            os.close(self._fd)


_METADATA_PROBE_BYTES = 1 << 20
"""A segment's header and metadata records come first and are small."""


def _list_segments(directory: Path) -> list[Segment]:
    segments: list[Segment] = []
    for entry in directory.iterdir():
        m = _SEGMENT_NAME.match(entry.name)
        if m:
            segments.append(Segment(int(m.group(1), 16), int(m.group(2), 16), entry))
    segments.sort(key=lambda s: s.seq)
    for prev, seg in itertools.pairwise(segments):
        if seg.seq != prev.seq + 1:
            raise CorruptionError(seg.path, 0, f"segment {prev.seq + 1} is missing before it")
    return segments


def _create_segment(seg: Segment, metadata: bytes, hard_state: HardState) -> tuple[int, int]:
    data = (
        record.encode(SegmentHeader(seg.seq))
        + record.encode(Metadata(metadata))
        + record.encode(hard_state)
    )
    write_file_atomically(seg.path, data)
    fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    return fd, len(data)


def _scan_segment(seg: Segment, data: bytes, is_last: bool, replayer: _Replayer) -> int:
    """Feed every valid record of one segment to ``replayer``; returns the offset where
    valid data ends (the file length unless a torn tail must be cut)."""
    if not data:
        raise CorruptionError(seg.path, 0, "empty segment (no header)")
    entries = replayer.entries
    base = replayer.base_index
    try:
        for offset, rec, _ in record.iter_records(data):
            # Fast path for the common record: the next entry in sequence.
            if offset and type(rec) is Entry and rec.index - base - 1 == len(entries):
                entries.append(rec)
            elif offset == 0:
                if not isinstance(rec, SegmentHeader) or rec.seq != seg.seq:
                    raise CorruptionError(seg.path, 0, f"segment header does not say seq {seg.seq}")
            else:
                replayer.feed(seg.path, offset, rec)
    except FrameError as exc:
        offset = exc.offset
        if offset == 0:
            raise CorruptionError(seg.path, 0, f"bad segment header: {exc.reason}") from exc
        if not is_last:
            raise CorruptionError(seg.path, offset, exc.reason) from exc
        if record.is_hole(data, offset) or record.find_next_frame(data, offset) is None:
            return offset
        raise CorruptionError(
            seg.path, offset, f"{exc.reason}, and valid records follow (not a torn write)"
        ) from exc
    return len(data)


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
