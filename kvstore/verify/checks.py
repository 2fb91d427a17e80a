"""The properties a history and its watch streams must have, besides linearizability.

All pure: they take what the clients recorded and the cluster's final event log (a watch
from revision 1 after every member recovered) and return human-readable violations.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from kvstore.verify.history import History, OpKind
from kvstore.verify.workload import CLIENTS_PER_WORKER, Event


def revisions_monotonic(history: History) -> list[str]:
    """Per worker, the header revisions of its completed operations never go backwards.

    A worker runs one operation at a time, so every completed operation of a later
    invocation saw a store at least as new as the previous one (reads are linearizable).
    """
    problems: list[str] = []
    by_worker: dict[int, list[tuple[float, int]]] = {}
    for op in history.ops:
        if op.completed is not None and op.revision is not None and op.client >= 0:
            worker = op.client // CLIENTS_PER_WORKER
            by_worker.setdefault(worker, []).append((op.invoked, op.revision))
    for worker, seen in sorted(by_worker.items()):
        seen.sort()
        for (t0, r0), (t1, r1) in itertools.pairwise(seen):
            if r1 < r0:
                problems.append(
                    f"worker {worker}: revision went back from {r0} (op at {t0:.6f}) "
                    f"to {r1} (op at {t1:.6f})"
                )
    return problems


def event_log_consistent(log: Sequence[Event]) -> list[str]:
    """The cluster's own event log: strictly increasing revisions (one event per revision,
    since every workload operation touches one key)."""
    problems: list[str] = []
    for a, b in itertools.pairwise(log):
        if b.revision <= a.revision:
            problems.append(f"event log: revision {b.revision} follows {a.revision}")
    return problems


def acknowledged_writes_present(history: History, log: Sequence[Event]) -> list[str]:
    """Every acknowledged write is in the final event log at the revision it was
    acknowledged with, with its key and value; and every event was written by some
    invoked operation (no value from nowhere)."""
    problems: list[str] = []
    at = {ev.revision: ev for ev in log}
    written = {(op.key, op.value) for op in history.ops if op.kind is not OpKind.READ}
    for op in history.ops:
        acked = op.completed is not None and (
            op.kind is OpKind.WRITE or (op.kind is OpKind.CAS and op.ok)
        )
        if not acked or op.revision is None:
            continue
        ev = at.get(op.revision)
        if ev is None or ev.key != op.key or ev.value != op.value:
            problems.append(
                f"acknowledged {op.kind.value} {op.key}={op.value!r} at revision "
                f"{op.revision} is not in the final log (found {ev})"
            )
    for ev in log:
        if (ev.key, ev.value) not in written:
            problems.append(f"event {ev} was written by no client")
    return problems


def watch_stream_matches(name: str, seen: Sequence[Event], log: Sequence[Event]) -> list[str]:
    """A watcher that started at revision 1 saw exactly the log's events up to the last
    revision it received: each once, in order, none missing, and it reached the end."""
    expected = [ev for ev in log if ev.revision <= (seen[-1].revision if seen else 0)]
    problems: list[str] = []
    if list(seen) != expected:
        for i, (got, want) in enumerate(zip(seen, expected, strict=False)):
            if got != want:
                problems.append(f"watcher {name}: event #{i} is {got}, the log has {want}")
                break
        else:
            problems.append(
                f"watcher {name}: saw {len(seen)} events, the log has {len(expected)} "
                "up to the same revision"
            )
    if log and (not seen or seen[-1].revision < log[-1].revision):
        last = seen[-1].revision if seen else 0
        problems.append(
            f"watcher {name}: stopped at revision {last}, the log reaches {log[-1].revision}"
        )
    return problems
