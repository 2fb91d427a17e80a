"""The watch hub: fans applied events out to watchers, in revision order, without gaps.

Apply runs on the event loop and calls :meth:`WatchHub.publish` synchronously for every
revision it creates; creating a watcher (including its catch-up from ``start_revision``) is
synchronous too, so no revision can slip between the catch-up and the live feed. History
for catch-up comes from the MVCC store (every version since the last compaction); a watch
that starts at a compacted revision is cancelled with ``compact_revision`` set, as etcd does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.server.keyrange import in_range

FILTER_NOPUT = 0
FILTER_NODELETE = 1

Deliver = Callable[["Watcher", list[kv_pb2.Event], int], None]
"""Called with a watcher, its events and their revision; a negative revision with no events
means the watcher was cancelled because history from ``-revision`` down was compacted."""


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
        self._history = history

    def __len__(self) -> int:
        return len(self._watchers)

    def publish(self, revision: int, events: list[kv_pb2.Event]) -> None:
        """Hand the events of ``revision`` to matching watchers."""
        if not events:
            return
        for watcher in list(self._watchers):
            if watcher.cancelled or revision < watcher.next_rev:
                continue
            chosen = watcher.select(events)
            watcher.next_rev = revision + 1
            if chosen:
                watcher.last_sent_rev = revision
                watcher.deliver(watcher, chosen, revision)

    def add(self, watcher: Watcher, start_revision: int, current: int, compacted: int) -> None:
        """Register ``watcher`` from ``start_revision`` (0 = next revision), replaying the
        history it missed. Raises CompactedWatch when the start was compacted away."""
        start = start_revision if start_revision > 0 else current + 1
        if start <= compacted:
            raise CompactedWatch(compacted)
        watcher.next_rev = start
        if start <= current:
            batch: list[kv_pb2.Event] = []
            batch_rev = 0
            for ev in self._history(start, watcher.key, watcher.range_end):
                rev = ev.kv.mod_revision
                if batch and rev != batch_rev:
                    self._replay(watcher, batch, batch_rev)
                    batch = []
                batch.append(ev)
                batch_rev = rev
            if batch:
                self._replay(watcher, batch, batch_rev)
            watcher.next_rev = current + 1
        self._watchers.add(watcher)

    def resync(self, current: int, compacted: int) -> None:
        """After the state was replaced by a snapshot: bring every watcher up to
        ``current`` from history, or cancel the ones whose next revision was compacted."""
        for watcher in list(self._watchers):
            if watcher.next_rev > current:
                continue
            self._watchers.discard(watcher)
            try:
                self.add(watcher, watcher.next_rev, current, compacted)
            except CompactedWatch as exc:
                watcher.cancelled = True
                watcher.deliver(watcher, [], -exc.revision)

    @staticmethod
    def _replay(watcher: Watcher, events: list[kv_pb2.Event], revision: int) -> None:
        chosen = watcher.select(events)
        if chosen:
            watcher.last_sent_rev = revision
            watcher.deliver(watcher, chosen, revision)

    def remove(self, watcher: Watcher) -> None:
        """Stop feeding ``watcher``."""
        watcher.cancelled = True
        self._watchers.discard(watcher)
