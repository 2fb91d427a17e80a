"""The watch hub: fans applied events out to watchers, in revision order, without gaps.

Apply runs on the event loop and calls :meth:`WatchHub.publish` synchronously for every
revision it creates; creating a watcher (including its catch-up from ``start_revision``) is
synchronous too, so no revision can slip between the catch-up and the live feed. History
for catch-up is kept in memory (the last ``history_limit`` revisions, refilled on restart by
replaying the log after the last snapshot); a watch that starts before the oldest revision
held is cancelled with ``compact_revision`` set, which etcd clients already handle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.server.keyrange import in_range

FILTER_NOPUT = 0
FILTER_NODELETE = 1
DEFAULT_HISTORY_LIMIT = 200_000

Deliver = Callable[["Watcher", list[kv_pb2.Event], int], None]
"""Called with a watcher, its events (possibly empty for progress) and their revision."""


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


class WatchHub:
    """All watchers of one member and the recent event history."""

    def __init__(self, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        self._watchers: set[Watcher] = set()
        self._history: deque[tuple[int, list[kv_pb2.Event]]] = deque()
        self._limit = history_limit
        self._oldest_known = 1
        """The oldest revision whose events the history still holds (or will hold)."""

    def __len__(self) -> int:
        return len(self._watchers)

    def reset(self, revision: int) -> None:
        """Forget history (after restoring a snapshot at ``revision``)."""
        self._history.clear()
        self._oldest_known = revision + 1

    def publish(self, revision: int, events: list[kv_pb2.Event]) -> None:
        """Record the events of ``revision`` and hand them to matching watchers."""
        if not events:
            return
        self._history.append((revision, events))
        while len(self._history) > self._limit:
            dropped, _ = self._history.popleft()
            self._oldest_known = dropped + 1
        for watcher in list(self._watchers):
            if watcher.cancelled or revision < watcher.next_rev:
                continue
            chosen = watcher.select(events)
            watcher.next_rev = revision + 1
            if chosen:
                watcher.last_sent_rev = revision
                watcher.deliver(watcher, chosen, revision)

    def add(self, watcher: Watcher, start_revision: int, current: int, compacted: int) -> None:
        """Register ``watcher`` from ``start_revision`` (0 = next revision), replaying history.

        Raises CompactedWatch when the start is at or below ``compacted`` or older than the
        history held.
        """
        start = start_revision if start_revision > 0 else current + 1
        if start <= compacted:
            raise CompactedWatch(compacted)
        if start <= current and start < self._oldest_known:
            raise CompactedWatch(max(compacted, self._oldest_known - 1))
        watcher.next_rev = start
        if start <= current:
            for revision, events in self._history:
                if revision < start:
                    continue
                chosen = watcher.select(events)
                if chosen:
                    watcher.last_sent_rev = revision
                    watcher.deliver(watcher, chosen, revision)
            watcher.next_rev = current + 1
        self._watchers.add(watcher)

    def remove(self, watcher: Watcher) -> None:
        """Stop feeding ``watcher``."""
        watcher.cancelled = True
        self._watchers.discard(watcher)
