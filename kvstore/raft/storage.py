"""The storage the core reads its log from, and an in-memory implementation.

The core only *reads* storage (``LogStorage``); the driver writes to its implementation after
each ``Ready`` (append entries, set hard state, apply a snapshot, compact). ``MemoryStorage``
is that implementation for tests and simulations; the server's durable one in
``kvstore.storage`` keeps its log in a ``MemoryStorage`` too, so both report the same
conditions with the errors named below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .errors import (
    CompactedError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from .types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from .util import limit_size


class LogStorage(Protocol):
    """The read-only view of the persisted log the core works with.

    Indexes: the storage holds the entries ``first_index()..last_index()``; the entry just
    before ``first_index()`` is covered by ``snapshot()`` and only its term is known.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership of the latest snapshot (or, for a
        fresh cluster, the bootstrap membership)."""
        ...

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries ``[lo, hi)``, limited to ``max_size`` bytes but at least one.

        Raises CompactedError if ``lo`` is below ``first_index()``; UnavailableError if
        ``hi`` is beyond ``last_index() + 1``.
        """
        ...

    def term(self, index: int) -> int:
        """The term of entry ``index``, for ``first_index() - 1 <= index <= last_index()``.

        Raises CompactedError below that range and UnavailableError above it.
        """
        ...

    def first_index(self) -> int:
        """The index of the first entry still available (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """The index of the last entry (the snapshot index when the log is empty)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot. May raise SnapshotTemporarilyUnavailableError."""
        ...


class MemoryStorage:
    """A ``LogStorage`` kept in memory, with the write methods a driver needs.

    ``_ents[0]`` is a placeholder whose index and term are those of the snapshot, so the
    term of the entry just before the first one is always known.

    Every write checks its arguments before it changes anything. The checks a durable
    storage needs are also available alone (``check_append`` and the other ``check_*``
    methods): it runs one before writing to disk, then makes the same change here.
    """

    def __init__(self, conf_state: ConfState | None = None) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot(SnapshotMetadata(conf_state=conf_state or ConfState()))
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    @classmethod
    def restored(
        cls, snapshot: Snapshot, hard_state: HardState, entries: Sequence[Entry]
    ) -> MemoryStorage:
        """A storage holding ``snapshot``, the ``entries`` after it (contiguous from the
        snapshot index + 1) and ``hard_state``: what a durable storage recovered.

        Raises UnavailableError if the entries leave a gap after the snapshot.
        """
        storage = cls()
        storage._snapshot = snapshot
        storage._ents = [Entry(term=snapshot.metadata.term, index=snapshot.metadata.index)]
        storage.append(entries)
        storage._hard_state = hard_state
        return storage

    # -- LogStorage ---------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """See :class:`LogStorage`."""
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """See :class:`LogStorage`."""
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} is compacted (first index {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to {hi - 1} requested, last is {self.last_index()}")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        """See :class:`LogStorage`."""
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(f"index {index} is compacted")
        if index - offset >= len(self._ents):
            raise UnavailableError(f"index {index} is beyond the last index {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        """See :class:`LogStorage`."""
        return self._ents[0].index + 1

    def last_index(self) -> int:
        """See :class:`LogStorage`."""
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        """See :class:`LogStorage`."""
        return self._snapshot

    # -- writes (driver side) -----------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        """The hard state last set."""
        return self._hard_state

    def set_hard_state(self, hs: HardState) -> None:
        """Record the hard state from a Ready."""
        self._hard_state = hs

    def check_apply_snapshot(self, snap: Snapshot) -> None:
        """Raise what :meth:`apply_snapshot` would for ``snap``; change nothing."""
        if snap.metadata.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {snap.metadata.index} is not newer than "
                f"{self._snapshot.metadata.index}"
            )

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by ``snap`` (a follower installing a leader's snapshot).

        Raises SnapshotOutOfDateError if it is not newer than the one held.
        """
        self.check_apply_snapshot(snap)
        self._snapshot = snap
        self._ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine at applied ``index`` (the log is kept;
        call :meth:`compact` to drop it).

        Raises SnapshotOutOfDateError if ``index`` is not after the current snapshot, and
        UnavailableError if it is beyond the last index.
        """
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(f"snapshot at {index} is not newer")
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} is beyond the last index")
        term = self._ents[index - self._ents[0].index].term
        self._snapshot = Snapshot(SnapshotMetadata(index, term, conf_state), data)
        return self._snapshot

    def check_set_snapshot(self, snap: Snapshot) -> None:
        """Raise what :meth:`set_snapshot` would for ``snap``; change nothing."""
        self.check_apply_snapshot(snap)
        if snap.metadata.index > self.last_index():
            raise UnavailableError(f"snapshot index {snap.metadata.index} is beyond the last index")

    def set_snapshot(self, snap: Snapshot) -> None:
        """Make ``snap``, taken at an index the log holds, the latest snapshot (the log is
        kept; call :meth:`compact` to drop it).

        Raises SnapshotOutOfDateError if it is not newer than the one held, and
        UnavailableError if its index is beyond the last index.
        """
        self.check_set_snapshot(snap)
        self._snapshot = snap

    def check_compact(self, compact_index: int) -> None:
        """Raise what :meth:`compact` would for ``compact_index``; change nothing."""
        if compact_index <= self._ents[0].index:
            raise CompactedError(f"index {compact_index} is already compacted")
        if compact_index > self.last_index():
            raise UnavailableError(f"compact index {compact_index} is beyond the last index")

    def compact(self, compact_index: int) -> None:
        """Drop the entries up to ``compact_index`` (which a snapshot must cover).

        Raises CompactedError if already compacted that far, UnavailableError if beyond
        the last index.
        """
        self.check_compact(compact_index)
        i = compact_index - self._ents[0].index
        head = Entry(term=self._ents[i].term, index=self._ents[i].index)
        self._ents = [head, *self._ents[i + 1 :]]

    def check_append(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries :meth:`append` would add: ``entries`` without those before
        :meth:`first_index` (already covered). Changes nothing.

        Raises UnavailableError if they would leave a gap after the last index.
        """
        ents = list(entries)
        first = self.first_index()
        if ents and ents[0].index < first:
            ents = ents[first - ents[0].index :]
        if ents and ents[0].index > self.last_index() + 1:
            raise UnavailableError(
                f"missing log entries: last {self.last_index()}, appending at {ents[0].index}"
            )
        return ents

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries`` (contiguous), replacing any conflicting suffix.

        Entries before :meth:`first_index` are ignored: they are already covered. Raises
        UnavailableError if the entries would leave a gap after the last index.
        """
        ents = self.check_append(entries)
        if ents:
            del self._ents[ents[0].index - self._ents[0].index :]
            self._ents.extend(ents)
