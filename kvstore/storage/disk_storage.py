"""``DiskStorage``: the durable ``LogStorage`` the server hands to the Raft core.

It makes every change durable through the write-ahead log (``<data dir>/wal``) and snapshot
files (``<data dir>/snap``) before the write method returns (when asked to sync), then makes
the same change to a ``kvstore.raft.MemoryStorage`` that holds the log for the core's reads.
Reads and their errors (``kvstore.raft.errors.CompactedError``/``UnavailableError``) are
that ``MemoryStorage``'s, so the core cannot tell the two apart; each write runs the
``MemoryStorage``'s check first, so a refused write reaches neither the disk nor the memory.

The driver, for each ``Ready``, in this order:

1. ``apply_snapshot(rd.snapshot)`` if there is one (file, then WAL marker, both synced);
2. ``save(rd.hard_state, rd.entries, must_sync=rd.must_sync)``: entries then hard state
   are appended as one batch and fsynced before ``save`` returns;
3. only then send ``rd.messages``.

Because step 3 starts after step 2 returned, a vote (or an append acknowledgement) can
never leave the node before the hard state (or entries) it depends on is on disk: a crash
at any point either loses the message too, or finds the vote on restart.

Not thread-safe: one driver thread owns it (the WAL underneath is thread-safe), except
:meth:`DiskStorage.write_snapshot`, which may run beside it (it touches only the snapshot
files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from kvstore.raft.errors import SnapshotOutOfDateError, UnavailableError
from kvstore.raft.storage import MemoryStorage
from kvstore.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

from .errors import CorruptionError
from .snapshotter import DEFAULT_KEEP, Snapshotter
from .wal import DEFAULT_SEGMENT_SIZE, Replay, Wal

WAL_DIR = "wal"
SNAP_DIR = "snap"


def _committed_through(hs: HardState, index: int) -> HardState:
    """``hs`` with a commit index of at least ``index``, the index of a snapshot: a snapshot
    only ever holds committed state, but the commit index recorded before it may lag it
    (after a crash between the two, or until the driver saves the next hard state)."""
    return hs if hs.commit >= index else replace(hs, commit=index)


class DiskStorage:
    """A durable Raft log. Open with :meth:`open`."""

    def __init__(self, wal: Wal, snapshotter: Snapshotter, snap: Snapshot, replay: Replay) -> None:
        self._wal = wal
        self._snapshotter = snapshotter
        md = snap.metadata
        entries = replay.entries
        if replay.term_at_base not in (None, md.term):
            # The log's entry at the snapshot index is from another history: a crash hit
            # between saving a leader's snapshot and logging the reset. What followed that
            # entry is stale; the snapshot wins (it holds committed state).
            entries = []
        hard_state = _committed_through(replay.hard_state, md.index)
        # The log, snapshot and hard state as on disk: the core reads them from here.
        self._memory = MemoryStorage.restored(snap, hard_state, entries)
        self.recovered = replay
        """What the WAL replay found (metadata, whether a torn tail was cut)."""

    @staticmethod
    def read_metadata(data_dir: Path | str) -> bytes | None:
        """The metadata stored when the log under ``data_dir`` was created (None if there
        is no log yet), without recovering anything."""
        return Wal.read_metadata(Path(data_dir) / WAL_DIR)

    @classmethod
    def open(
        cls,
        data_dir: Path | str,
        *,
        conf_state: ConfState | None = None,
        metadata: bytes = b"",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        keep_snapshots: int = DEFAULT_KEEP,
        fsync_observer: Callable[[float], None] | None = None,
    ) -> DiskStorage:
        """Open (or create) the storage under ``data_dir`` and recover it.

        ``conf_state`` is the bootstrap membership, used only while no snapshot exists.
        ``metadata`` is stored in a new log (the server keeps node and cluster ids there)
        and available afterwards as :attr:`metadata`. Raises
        ``kvstore.storage.errors.CorruptionError`` for damage recovery must not hide.
        """
        root = Path(data_dir)
        snapshotter = Snapshotter(root / SNAP_DIR, keep=keep_snapshots)
        snap = snapshotter.load_newest()
        if snap is None:
            snap = Snapshot(SnapshotMetadata(conf_state=conf_state or ConfState()))
        wal_dir = root / WAL_DIR
        if not snap.is_empty and not any(wal_dir.glob("*.wal")):
            # Starting a fresh log here would forget the term and vote: refuse instead.
            raise CorruptionError(wal_dir, 0, "no WAL segments, but snapshots exist")
        wal, replay = Wal.open(
            wal_dir,
            base_index=snap.metadata.index,
            metadata=metadata,
            segment_size=segment_size,
            fsync_observer=fsync_observer,
        )
        return cls(wal, snapshotter, snap, replay)

    # -- LogStorage (the in-memory log's) --------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership of the latest snapshot."""
        return self._memory.initial_state()

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries ``[lo, hi)`` within ``max_size`` bytes (at least one).

        Raises CompactedError if ``lo`` is below ``first_index()``; UnavailableError if
        ``hi`` is beyond ``last_index() + 1``.
        """
        return self._memory.entries(lo, hi, max_size)

    def term(self, index: int) -> int:
        """The term of entry ``index`` (``first_index() - 1 <= index <= last_index()``).

        Raises CompactedError below that range and UnavailableError above it.
        """
        return self._memory.term(index)

    def first_index(self) -> int:
        """The first index still held (one past the compaction point)."""
        return self._memory.first_index()

    def last_index(self) -> int:
        """The last index (the snapshot's when no entry follows it)."""
        return self._memory.last_index()

    def snapshot(self) -> Snapshot:
        """The most recent snapshot saved or applied."""
        return self._memory.snapshot()

    # -- writes (driver side): disk first, then the in-memory log --------------------------

    @property
    def hard_state(self) -> HardState:
        """The hard state last saved."""
        return self._memory.hard_state

    @property
    def metadata(self) -> bytes:
        """The metadata stored when the log was created."""
        return self._wal.metadata

    @property
    def wal(self) -> Wal:
        """The write-ahead log underneath (for metrics and group-commit callers)."""
        return self._wal

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], must_sync: bool) -> None:
        """Persist ``entries`` (overwriting any conflicting suffix) and then ``hard_state``;
        fsync before returning when ``must_sync``.

        Entries at or below the snapshot index are skipped (already covered). Raises
        UnavailableError if the entries would leave a gap after the last index.
        """
        ents = self._memory.check_append(entries)
        if hard_state == self._memory.hard_state:
            hard_state = None
        if not ents and hard_state is None:
            if must_sync:
                self._wal.sync()
            return
        self._wal.save(hard_state, ents, sync=must_sync)
        self._memory.append(ents)
        if hard_state is not None:
            self._memory.set_hard_state(hard_state)

    def sync(self) -> int:
        """Fsync everything saved so far; returns the durable LSN."""
        return self._wal.sync()

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by a leader's snapshot, durably.

        Order: the snapshot file (atomic, synced), then a reset marker in the WAL (synced),
        then the release of segments the snapshot covers. A crash before the marker leaves
        an extra snapshot file that recovery may use (it is committed state); a crash after
        it replays the reset. Raises SnapshotOutOfDateError if not newer than the current.
        """
        self._memory.check_apply_snapshot(snap)
        md = snap.metadata
        self._snapshotter.save(snap)
        self._wal.append_snapshot(md.index, md.term, reset=True)
        self._wal.sync()
        self._memory.apply_snapshot(snap)
        self._memory.set_hard_state(_committed_through(self._memory.hard_state, md.index))
        self._wal.release_to(md.index)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Save a snapshot of the state machine at applied ``index`` durably, and delete
        the WAL segments it covers. The in-memory log is kept; :meth:`compact` drops it.

        Raises SnapshotOutOfDateError if ``index`` is not after the current snapshot and
        UnavailableError if it is beyond the last index.
        """
        if index <= self.snapshot().metadata.index:
            raise SnapshotOutOfDateError(f"snapshot at {index} is not newer")
        snap = self.write_snapshot(index, self.term(index), conf_state, data)
        self.commit_snapshot(snap)
        return snap

    def write_snapshot(self, index: int, term: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """The first half of :meth:`create_snapshot`: the snapshot file alone (atomic,
        synced). Safe in another thread while the driver goes on saving entries, so a big
        snapshot does not hold up the log; :meth:`commit_snapshot` then makes it current.
        A crash in between leaves a file that recovery may use (it holds committed state).
        """
        snap = Snapshot(SnapshotMetadata(index, term, conf_state), data)
        self._snapshotter.save(snap)
        return snap

    def commit_snapshot(self, snap: Snapshot) -> None:
        """Log a snapshot written by :meth:`write_snapshot` (synced) and delete the WAL
        segments it covers. Raises SnapshotOutOfDateError if a newer one became current
        meanwhile (a leader's snapshot was applied while this one was being written)."""
        self._memory.check_set_snapshot(snap)
        md = snap.metadata
        self._wal.append_snapshot(md.index, md.term, reset=False)
        self._wal.sync()
        self._memory.set_snapshot(snap)
        self._wal.release_to(md.index)

    def compact(self, compact_index: int) -> None:
        """Drop the in-memory entries up to ``compact_index``.

        A snapshot at or after ``compact_index`` must exist (on restart the log starts
        after the newest snapshot anyway), otherwise a follower needing the dropped
        entries could only be sent an older snapshot that does not cover them. Raises
        CompactedError if already compacted that far, UnavailableError if beyond the last
        index or the latest snapshot.
        """
        self._memory.check_compact(compact_index)
        snap_index = self.snapshot().metadata.index
        if compact_index > snap_index:
            raise UnavailableError(
                f"compact index {compact_index} is beyond the latest snapshot {snap_index}"
            )
        self._memory.compact(compact_index)

    def close(self) -> None:
        """Sync and close the WAL."""
        self._wal.close()
