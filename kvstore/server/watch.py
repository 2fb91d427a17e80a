"""The watch hub: fans applied events out to watchers, in revision order, without gaps.

Apply runs on the event loop and calls :meth:`WatchHub.publish` synchronously for every
revision it creates; creating a watcher (including its catch-up from ``start_revision``) is
synchronous too, so no revision can slip between the catch-up and the live feed. History
for catch-up comes from the MVCC store (every version since the last compaction); a watch
that starts below the compaction revision is cancelled with ``compact_revision`` set, as
etcd does. One that starts at it is served: that is where every etcd client resumes after
such a cancel. Replayed history is packed into few responses (up to 1,000 revisions
each, as etcd's catch-up does) rather than one response per revision.

A watcher whose stream has no room (its client reads slower than the store changes) leaves
the live feed instead of queueing without bound: it keeps the first revision it has not
been sent, and :meth:`WatchHub.catch_up` replays from history once the stream drained, as
far as there is room, until it is level and rejoins the live feed (etcd's unsynced
watchers). It misses nothing unless its history is compacted past it meanwhile; then it
is cancelled with ``compact_revision``, as a watch started there would be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.server.keyrange import in_range

FILTER_NOPUT = 0
FILTER_NODELETE = 1
CATCH_UP_MAX_REVISIONS = 1000
"""Revisions one catch-up response carries at most, as in etcd (its watchBatchMaxRevs)."""
CATCH_UP_MAX_BYTES = 1024 * 1024
"""Event bytes past which a catch-up response is closed even below the revision limit
(always after a whole revision), so a backlog of large values never makes a message
bigger than clients accept by default (4 MiB in gRPC)."""

Deliver = Callable[["Watcher", list[kv_pb2.Event], int], None]
"""Called with a watcher, its events and their revision; a negative revision with no events
means the watcher was cancelled because history below ``-revision`` was compacted."""


@dataclass(slots=True, eq=False)
class Watcher:
    """One watcher on one stream."""

    watch_id: int
    key: bytes
    range_end: bytes
    prev_kv: bool
    filters: frozenset[int]
    progress_notify: bool
    deliver: Deliver
    has_room: Callable[[], bool] = lambda: True
    """Whether the stream can take another response now."""
    next_rev: int = 0
    last_sent_rev: int = 0
    cancelled: bool = field(default=False)

    def select(self, events: Sequence[kv_pb2.Event]) -> list[kv_pb2.Event]:
        """The events this watcher wants, shaped by its options."""
        chosen: list[kv_pb2.Event] = []
        for ev in events:
            if not in_range(ev.kv.key, self.key, self.range_end):
                continue
            if ev.type == kv_pb2.Event.PUT and FILTER_NOPUT in self.filters:
                continue
            if ev.type == kv_pb2.Event.DELETE and FILTER_NODELETE in self.filters:
                continue
            if not self.prev_kv and ev.HasField("prev_kv"):
                trimmed = kv_pb2.Event()
                trimmed.CopyFrom(ev)
                trimmed.ClearField("prev_kv")
                chosen.append(trimmed)
            else:
                chosen.append(ev)
        return chosen


@dataclass(slots=True)
class _Batch:
    """Catch-up events of consecutive revisions bound for one response."""

    events: list[kv_pb2.Event] = field(default_factory=list)
    revisions: int = 0
    size: int = 0
    first_rev: int = 0
    last_rev: int = 0

    def add(self, revision: int, events: list[kv_pb2.Event]) -> None:
        if not self.revisions:
            self.first_rev = revision
        self.events.extend(events)
        self.revisions += 1
        self.size += sum(ev.ByteSize() for ev in events)
        self.last_rev = revision

    def full(self) -> bool:
        return self.revisions >= CATCH_UP_MAX_REVISIONS or self.size >= CATCH_UP_MAX_BYTES

    def clear(self) -> None:
        self.events = []
        self.revisions = self.size = 0


def _by_revision(events: Iterable[kv_pb2.Event]) -> Iterator[tuple[int, list[kv_pb2.Event]]]:
    """History events (oldest first) grouped by the revision that made them."""
    group: list[kv_pb2.Event] = []
    for ev in events:
        if group and ev.kv.mod_revision != group[0].kv.mod_revision:
            yield group[0].kv.mod_revision, group
            group = []
        group.append(ev)
    if group:
        yield group[0].kv.mod_revision, group


class CompactedWatch(Exception):
    """The requested start revision is no longer available; ``revision`` is the oldest kept
    compaction point a client should restart after."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted (compact revision {revision})")
        self.revision = revision


History = Callable[[int, bytes, bytes], list[kv_pb2.Event]]
"""Events at revisions >= start in a key range, oldest first (raises CompactedWatch)."""


class WatchHub:
    """All watchers of one member."""

    def __init__(self, history: History) -> None:
        self._watchers: set[Watcher] = set()
        self._lagging: set[Watcher] = set()
        self._history = history

    def __len__(self) -> int:
        return len(self._watchers) + len(self._lagging)

    @property
    def lagging(self) -> int:
        """Watchers that fell behind and catch up from history."""
        return len(self._lagging)

    def is_lagging(self, watcher: Watcher) -> bool:
        """Whether ``watcher`` left the live feed and still catches up from history."""
        return watcher in self._lagging

    def publish(self, revision: int, events: list[kv_pb2.Event]) -> None:
        """Hand the events of ``revision`` to matching watchers."""
        if not events:
            return
        for watcher in list(self._watchers):
            if watcher.cancelled or revision < watcher.next_rev:
                continue
            chosen = watcher.select(events)
            if chosen and not watcher.has_room():
                self._watchers.discard(watcher)
                self._lagging.add(watcher)
                continue
            watcher.next_rev = revision + 1
            if chosen:
                watcher.last_sent_rev = revision
                watcher.deliver(watcher, chosen, revision)

    def add(self, watcher: Watcher, start_revision: int, current: int, compacted: int) -> None:
        """Register ``watcher`` from ``start_revision`` (0 = next revision), replaying the
        history it missed. Raises CompactedWatch when the start was compacted away."""
        start = start_revision if start_revision > 0 else current + 1
        if start < compacted:
            raise CompactedWatch(compacted)
        watcher.next_rev = start
        if self._replay(watcher, current):
            self._watchers.add(watcher)
        else:
            self._lagging.add(watcher)

    def catch_up(self, watchers: Iterable[Watcher], current: int, compacted: int) -> None:
        """Replay history to those of ``watchers`` that fell behind, as far as their
        stream has room; the ones that reach ``current`` rejoin the live feed."""
        for watcher in watchers:
            if watcher not in self._lagging or not watcher.has_room():
                continue
            if watcher.next_rev < compacted:
                self._lagging.discard(watcher)
                watcher.cancelled = True
                watcher.deliver(watcher, [], -compacted)
            elif self._replay(watcher, current):
                self._lagging.discard(watcher)
                self._watchers.add(watcher)

    def _replay(self, watcher: Watcher, current: int) -> bool:
        """Send ``watcher`` the history from its next revision up to ``current`` while its
        stream has room, packed as etcd packs it (up to :data:`CATCH_UP_MAX_REVISIONS`
        revisions a response); True once it is level with ``current``."""
        if watcher.next_rev <= current:
            batch = _Batch()
            for revision, events in _by_revision(
                self._history(watcher.next_rev, watcher.key, watcher.range_end)
            ):
                chosen = watcher.select(events)
                if not chosen:
                    continue
                if batch.full() and not self._flush(watcher, batch):
                    return False
                batch.add(revision, chosen)
            if batch.revisions and not self._flush(watcher, batch):
                return False
        # A start beyond ``current`` (a client resuming on a member that lags) stays where
        # it is: the events below it were delivered already, by another member.
        watcher.next_rev = max(watcher.next_rev, current + 1)
        return True

    @staticmethod
    def _flush(watcher: Watcher, batch: _Batch) -> bool:
        """Deliver ``batch`` in one response, or leave the watcher at its first revision
        when the stream has no room."""
        if not watcher.has_room():
            watcher.next_rev = batch.first_rev
            return False
        watcher.last_sent_rev = batch.last_rev
        watcher.next_rev = batch.last_rev + 1
        watcher.deliver(watcher, batch.events, batch.last_rev)
        batch.clear()
        return True

    def resync(self, current: int, compacted: int) -> None:
        """After the state was replaced by a snapshot: bring every watcher up to
        ``current`` from history, or cancel the ones whose next revision was compacted."""
        for watcher in [*self._watchers, *self._lagging]:
            if watcher.next_rev > current:
                continue
            self._watchers.discard(watcher)
            self._lagging.discard(watcher)
            try:
                self.add(watcher, watcher.next_rev, current, compacted)
            except CompactedWatch as exc:
                watcher.cancelled = True
                watcher.deliver(watcher, [], -exc.revision)

    def remove(self, watcher: Watcher) -> None:
        """Stop feeding ``watcher``."""
        watcher.cancelled = True
        self._watchers.discard(watcher)
        self._lagging.discard(watcher)
