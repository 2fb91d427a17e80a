"""Small helpers over entries shared by the log, the leader's batching and the storage."""

from __future__ import annotations

from collections.abc import Sequence

from .types import Entry

ENTRY_OVERHEAD = 24
"""Bytes counted per entry on top of its data (index, term, type): what the wire and the
WAL spend on it, roughly. Budgets (message size, inflight bytes) count this too, so that
empty entries are not free."""


def entry_size(entry: Entry) -> int:
    """The bytes an entry counts for in every size budget."""
    return len(entry.data) + ENTRY_OVERHEAD


def entries_size(entries: Sequence[Entry]) -> int:
    """The total budget size of ``entries``."""
    return sum(len(e.data) for e in entries) + ENTRY_OVERHEAD * len(entries)


def limit_size(entries: Sequence[Entry], max_size: int) -> list[Entry]:
    """The longest prefix of ``entries`` within ``max_size`` bytes, but never empty when
    ``entries`` is not: a single oversized entry must still make progress."""
    if not entries:
        return []
    total = entry_size(entries[0])
    count = 1
    for e in entries[1:]:
        total += len(e.data) + ENTRY_OVERHEAD
        if total > max_size:
            break
        count += 1
    return list(entries[:count])
