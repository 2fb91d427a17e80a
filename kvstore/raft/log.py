"""The Raft log as the core sees it: persisted entries in storage plus an unstable tail.

``Unstable`` holds what the core has accepted but the driver has not yet persisted (new
entries, or a snapshot received from the leader); ``RaftLog`` joins it with the read-only
storage and tracks the commit and apply positions.

Invariants (checked where they change):
    applied <= applying <= committed <= last_index()
    first_index() - 1 <= applied  (the snapshot is always applied)
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import CompactedError, RaftError, UnavailableError
from .storage import LogStorage
from .types import Entry, Snapshot
from .util import limit_size

NO_LIMIT = 1 << 62
"""A size budget that never limits."""


class Unstable:
    """Entries (and maybe a snapshot) not yet persisted by the driver.

    ``entries[i]`` has index ``offset + i``. A pending ``snapshot`` always precedes the
    entries: when present, ``offset == snapshot.metadata.index + 1``.
    """

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        """The first log index if a pending snapshot determines it."""
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        """The last log index if the unstable part determines it."""
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, index: int) -> int | None:
        """The term of ``index`` if the unstable part knows it."""
        if index < self.offset:
            snap = self.snapshot
            if snap is not None and snap.metadata.index == index:
                return snap.metadata.term
            return None
        i = index - self.offset
        if i < len(self.entries):
            return self.entries[i].term
        return None

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to ``index`` (at ``term``): drop them.

        Ignored if the entry was since replaced by one of another term (a newer leader's),
        since the persisted one is then not what the log holds.
        """
        t = self.maybe_term(index)
        if t is None or t != term or index < self.offset:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        """The driver persisted the pending snapshot at ``index``."""
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        """Replace everything by a snapshot received from the leader."""
        self.offset = snap.metadata.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        """Append ``ents``, dropping any unstable suffix they conflict with."""
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replaces the whole unstable part (and, through offset, anything stable after it).
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)


class RaftLog:
    """The log: storage (persisted) + unstable (not yet persisted), with commit/apply marks."""

    __slots__ = (
        "applied",
        "applying",
        "committed",
        "max_applying_size",
        "storage",
        "unstable",
    )

    def __init__(self, storage: LogStorage, max_applying_size: int = NO_LIMIT) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applying = first - 1
        self.applied = first - 1
        self.max_applying_size = max_applying_size

    # -- positions ----------------------------------------------------------------------

    def first_index(self) -> int:
        """The first index whose entry is available (after any snapshot)."""
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        """The index of the last entry (or of the snapshot if there are none)."""
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def last_term(self) -> int:
        """The term of the last entry."""
        return self.term(self.last_index())

    def term(self, index: int) -> int:
        """The term of ``index``; raises CompactedError/UnavailableError outside the log."""
        t = self.unstable.maybe_term(index)
        if t is not None:
            return t
        if index < self.first_index() - 1:
            raise CompactedError(f"index {index} is compacted")
        if index > self.last_index():
            raise UnavailableError(f"index {index} is beyond the last index")
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        """The term of ``index``, or 0 when it is compacted or not in the log."""
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def match_term(self, index: int, term: int) -> bool:
        """Whether the log has an entry at ``index`` with ``term``."""
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a log ending at (``last_index``, ``term``) is at least as up to date as
        ours (Raft §5.4.1): the later last term wins, then the longer log."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and last_index >= self.last_index())

    # -- appending ----------------------------------------------------------------------

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: Sequence[Entry]
    ) -> int | None:
        """Follower side of an append: if our entry at ``index`` has ``log_term``, append
        ``ents`` (dropping any conflicting suffix), advance the commit index, and return the
        index of the last new entry; otherwise return None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        conflict = self.find_conflict(ents)
        if conflict:
            if conflict <= self.committed:
                raise RaftError(
                    f"entry {conflict} conflicts with committed entry (committed {self.committed})"
                )
            self.append(ents[conflict - ents[0].index :])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: Sequence[Entry]) -> int:
        """Append entries to the unstable tail; returns the new last index."""
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise RaftError(f"appending at {ents[0].index} would overwrite committed entries")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """The index of the first entry of ``ents`` that is new or whose term differs from
        ours, or 0 if we already hold them all."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= ``index`` whose term is <= ``term``, with that term.

        Used for fast back-off: a rejection hints the leader to an index where our log may
        match, skipping a whole term of conflicting entries in one round trip.
        """
        while index > 0:
            try:
                t = self.term(index)
            except (CompactedError, UnavailableError):
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # -- reading ------------------------------------------------------------------------

    def slice(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries ``[lo, hi)`` within ``max_size`` bytes (at least one).

        Raises CompactedError if ``lo`` is compacted.
        """
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"slice [{lo}, {hi}) is out of bounds")
        off = self.unstable.offset
        out: list[Entry] = []
        if lo < off:
            out = self.storage.entries(lo, min(hi, off), max_size)
            if len(out) < min(hi, off) - lo:
                return out  # storage already hit the size limit
        if hi > off:
            u = self.unstable.entries[max(lo, off) - off : hi - off]
            if out:
                out.extend(u)
                return limit_size(out, max_size)
            return limit_size(u, max_size)
        return out

    def entries_from(self, index: int, max_size: int) -> list[Entry]:
        """Entries from ``index`` to the end within ``max_size`` bytes."""
        if index > self.last_index():
            return []
        return self.slice(index, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        """Every available entry (tests and invariant checks)."""
        return self.entries_from(self.first_index(), NO_LIMIT)

    def snapshot(self) -> Snapshot:
        """The pending snapshot if any, else the storage's."""
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    # -- commit and apply ---------------------------------------------------------------

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Leader: commit up to ``max_index`` if that entry is of ``term`` (the current
        term). Raft only commits earlier terms' entries indirectly (§5.4.2)."""
        if max_index > self.committed and self.term_or_zero(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def commit_to(self, index: int) -> None:
        """Advance the commit index (never backwards)."""
        if index > self.committed:
            if index > self.last_index():
                raise RaftError(f"commit {index} is beyond the last index {self.last_index()}")
            self.committed = index

    def has_next_committed_ents(self) -> bool:
        """Whether committed entries wait to be handed to the driver."""
        return self.committed > self.applying and self.unstable.snapshot is None

    def next_committed_ents(self) -> list[Entry]:
        """The committed entries not yet handed to the driver, within the apply budget."""
        if not self.has_next_committed_ents():
            return []
        lo = max(self.applying + 1, self.first_index())
        return self.slice(lo, self.committed + 1, self.max_applying_size)

    def accepted_applying(self, index: int) -> None:
        """Entries up to ``index`` were handed to the driver in a Ready."""
        self.applying = max(self.applying, index)

    def applied_to(self, index: int) -> None:
        """The driver applied entries up to ``index``."""
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise RaftError(f"applied {index} out of range [{self.applied}, {self.committed}]")
        self.applied = index
        self.applying = max(self.applying, index)

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to ``index``."""
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        """The driver persisted the snapshot at ``index``."""
        self.unstable.stable_snap_to(index)

    def restore(self, snap: Snapshot) -> None:
        """Follower: replace the log by a leader's snapshot (it is committed by definition)."""
        self.committed = snap.metadata.index
        self.unstable.restore(snap)

    def unstable_entries(self) -> list[Entry]:
        """The entries the driver must persist next."""
        return list(self.unstable.entries)
