"""``python -m kvstore.verify FILE``: rerun every check on a history saved by a failed
fault-injection run, and print the verdicts (exit status 1 when something fails)."""

from __future__ import annotations

import sys
from pathlib import Path

from kvstore.verify import checks
from kvstore.verify.history import History
from kvstore.verify.linearizability import check_history
from kvstore.verify.workload import Event


def _events(raw: object) -> list[Event]:
    assert isinstance(raw, list)
    return [Event(**e) for e in raw]


def recheck(path: Path) -> list[str]:
    """Every violation the saved history and watch streams show."""
    history = History.load(path)
    failures = [
        f"key {res.key}: linearizable={res.linearizable}\n{res.detail}"
        for res in check_history(history)
        if res.linearizable is not True
    ]
    log = _events(history.meta.get("event_log", []))
    failures += checks.revisions_monotonic(history)
    failures += checks.event_log_consistent(log)
    failures += checks.acknowledged_writes_present(history, log)
    streams = history.meta.get("watch_streams", {})
    assert isinstance(streams, dict)
    for name, seen in sorted(streams.items()):
        failures += checks.watch_stream_matches(name, _events(seen), log)
    return failures


def main(argv: list[str]) -> int:
    """Check each file named on the command line."""
    if not argv:
        print("usage: python -m kvstore.verify HISTORY.json...", file=sys.stderr)
        return 2
    status = 0
    for name in argv:
        failures = recheck(Path(name))
        print(f"{name}: {'OK' if not failures else f'{len(failures)} violation(s)'}")
        for f in failures:
            print("  " + f.replace("\n", "\n  "))
        status |= bool(failures)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
