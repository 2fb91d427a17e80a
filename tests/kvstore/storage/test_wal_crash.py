"""Crash tests with real processes: a child appends and fsyncs, the test SIGKILLs it at a
random moment, then recovers the log and checks every promise the child made.

The child (``wal_child``) prints a line only after ``sync()`` returned. After each kill
the recovered log must hold: every entry reported durable (or, past the reported commit,
a higher-term overwrite of it, which a later batch may legitimately have written), the
reported hard state (term and commit never go back: a vote is never lost), contiguous
indexes, and for every entry exactly the bytes its (term, index) determine.

Rounds reuse one directory, so each child starts from the previous crash's recovery. The
seed is printed on failure; set ``KVSTORE_CRASH_SEED`` to replay one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvstore.raft.types import Entry
from kvstore.storage.wal import Wal
from tests.kvstore.storage.wal_child import payload
from tests.tooling import ROOT

ROUNDS = 8
SEEDS = [int(os.environ["KVSTORE_CRASH_SEED"])] if "KVSTORE_CRASH_SEED" in os.environ else [1, 2]


def _check_entry(e: Entry, seed: int) -> None:
    size = int.from_bytes(e.data[:4], "little")
    assert e.data == payload(e.term, e.index, size), f"seed {seed}: entry {e.index} corrupt"


def _run_child(directory: Path, seed: int, reports: int, linger: float) -> list[str]:
    """Start the child, read ``reports`` durability lines, wait ``linger`` s, SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kvstore.storage.wal_child", str(directory), str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while len(lines) < reports:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        time.sleep(linger)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"seed {seed}: child failed early:\n{err}"
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_never_loses_what_was_reported_durable(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    directory = tmp_path / "wal"
    promised: tuple[int, int, int, int] | None = None
    total_reports = 0
    for round_no in range(ROUNDS):
        lines = _run_child(
            directory, seed * 1000 + round_no, rng.randint(0, 40), rng.uniform(0, 0.03)
        )
        if lines:
            last, term, commit, commit_term = (int(x) for x in lines[-1].split())
            promised = (last, term, commit, commit_term)
            total_reports += len(lines)
        wal, replay = Wal.open(directory)
        wal.close()
        log = replay.entries
        where = f"seed {seed}, round {round_no}"
        for i, e in enumerate(log, start=1):
            assert e.index == i, f"{where}: index {e.index} at position {i}"
            _check_entry(e, seed)
        if promised is None:
            continue
        last, term, commit, commit_term = promised
        hs = replay.hard_state
        assert hs.term >= term and hs.commit >= commit, f"{where}: hard state {hs} lost"
        assert len(log) >= commit, f"{where}: committed entry {commit} lost"
        if commit:
            assert log[commit - 1].term == commit_term, f"{where}: committed entry changed"
        if len(log) < last or log[last - 1].term != term:
            # Only a later overwrite by a higher term may replace a durable entry.
            assert log[-1].term > term, f"{where}: durable entry {last} (term {term}) lost"
    assert total_reports > 0, f"seed {seed}: the child never reported anything"
