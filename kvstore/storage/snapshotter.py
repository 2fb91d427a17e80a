"""Snapshot files: one Raft snapshot (metadata + the state machine's bytes) per file.

File name ``<index>-<term>.snap`` (16 hex digits each), so names sort by index. Contents
(integers little-endian)::

    magic "KVSNAP" | version u8 | index u64 | term u64
    | voters: count u32, ids u64... | learners: count u32, ids u64...
    | data length u64 | data | crc32 u32 (zlib CRC-32 of everything before it)

A file is created atomically (temporary file, fsync, rename, fsync of the directory), so
after a crash it is either absent or complete; the checksum catches later damage. Loading
takes the newest file that verifies; a damaged one is renamed ``*.broken`` (kept for
inspection, never loaded again) and the next older one is tried.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
import zlib
from pathlib import Path

from kvstore.raft.types import ConfState, Snapshot, SnapshotMetadata

from .errors import CorruptionError
from .fsutil import ensure_dir, fsync_dir, write_file_atomically

log = logging.getLogger(__name__)

DEFAULT_KEEP = 5
"""How many snapshot files to keep: older ones are deleted after each save."""

MAGIC = b"KVSNAP"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<6sBQQ")
_COUNT = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


def encode_snapshot(snap: Snapshot) -> bytes:
    """The file contents for ``snap`` (pure)."""
    md = snap.metadata
    parts = [_HEAD.pack(MAGIC, FORMAT_VERSION, md.index, md.term)]
    for ids in (md.conf_state.voters, md.conf_state.learners):
        parts.append(_COUNT.pack(len(ids)))
        parts.extend(_U64.pack(i) for i in sorted(ids))
    parts.append(_U64.pack(len(snap.data)))
    parts.append(snap.data)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode_snapshot(data: bytes, path: Path | str = "<memory>") -> Snapshot:
    """Parse file contents; CorruptionError (naming ``path`` and the offset) if invalid."""
    if len(data) < _HEAD.size + _CRC.size:
        raise CorruptionError(path, len(data), "snapshot file is too short")
    body, (crc,) = data[: -_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(body) != crc:
        raise CorruptionError(path, len(body), "snapshot checksum mismatch")
    try:
        magic, version, index, term = _HEAD.unpack_from(body)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise CorruptionError(path, 0, f"not a snapshot file (magic {magic!r}, v{version})")
        offset = _HEAD.size
        groups: list[frozenset[int]] = []
        for _ in range(2):
            (count,) = _COUNT.unpack_from(body, offset)
            offset += _COUNT.size
            ids = struct.unpack_from(f"<{count}Q", body, offset)
            offset += 8 * count
            groups.append(frozenset(ids))
        (length,) = _U64.unpack_from(body, offset)
        offset += _U64.size
    except struct.error as exc:
        raise CorruptionError(path, 0, f"malformed snapshot header: {exc}") from exc
    if offset + length != len(body):
        raise CorruptionError(path, offset, "snapshot data length does not match the file")
    conf = ConfState(voters=groups[0], learners=groups[1])
    return Snapshot(SnapshotMetadata(index, term, conf), body[offset:])


def snapshot_name(index: int, term: int) -> str:
    """The file name of the snapshot at (index, term)."""
    return f"{index:016x}-{term:016x}.snap"


class Snapshotter:
    """Saves and loads snapshot files in one directory."""

    def __init__(self, directory: Path | str, *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = Path(directory)
        ensure_dir(self.directory)
        self._keep = keep
        self._lock = threading.Lock()
        for tmp in self.directory.glob("*.snap.tmp"):
            tmp.unlink()

    def files(self) -> list[Path]:
        """Snapshot files, oldest (lowest index) first."""
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def save(self, snap: Snapshot) -> Path:
        """Write ``snap`` durably (atomic create), then delete all but the newest ``keep``
        files. Returns the new file's path."""
        path = self.directory / snapshot_name(snap.metadata.index, snap.metadata.term)
        data = encode_snapshot(snap)
        with self._lock:  # a member's own snapshot and a leader's may be saved at once
            write_file_atomically(path, data)
            self._purge()
        return path

    def load_newest(self) -> Snapshot | None:
        """The newest snapshot whose file verifies, or None when there is none.

        A damaged file is renamed to ``*.broken`` and logged, then older files are tried.
        """
        for path in reversed(self.files()):
            try:
                return decode_snapshot(path.read_bytes(), path)
            except CorruptionError as exc:
                log.error("snapshot: %s; moving it aside and trying an older one", exc)
                path.rename(path.with_name(path.name + ".broken"))
                fsync_dir(self.directory)
        return None

    def _purge(self) -> None:
        files = self.files()
        doomed = files[: max(0, len(files) - self._keep)]
        for path in doomed:
            path.unlink()
        if doomed:
            fsync_dir(self.directory)
