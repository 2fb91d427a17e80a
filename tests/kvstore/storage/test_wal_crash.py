"""Crash tests with real processes: a child appends and fsyncs, the test SIGKILLs it at a
random moment, then recovers the log and checks every promise the child made.

The child (``wal_child``) writes through ``DiskStorage`` (WAL, snapshots, segment release)
and prints a line only after ``sync()`` returned. After each kill the recovered log must
hold: every entry reported durable (or, past the reported commit, a higher-term
overwrite of it, which a later batch may legitimately have written), the reported hard
state (term and commit never go back: a vote is never lost), contiguous indexes, the
snapshot's contents, and for every entry exactly the bytes its (term, index) determine.

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
from kvstore.storage.disk_storage import DiskStorage
from tests.kvstore.storage.wal_child import payload, snapshot_data
from tests.tooling import ROOT

ROUNDS = 8
SEEDS = [int(os.environ["KVSTORE_CRASH_SEED"])] if "KVSTORE_CRASH_SEED" in os.environ else [1, 2]


def _check_entry(e: Entry, seed: int) -> None:
    size = int.from_bytes(e.data[:4], "little")
    assert e.data == payload(e.term, e.index, size), f"seed {seed}: entry {e.index} corrupt"


def _run_child(directory: Path, seed: int, reports: int, linger: float) -> list[str]:
    """Start the child, read ``reports`` durability lines, wait ``linger`` s, SIGKILL it;
    returns every line it printed."""
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
        rest, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"seed {seed}: child failed early:\n{err}"
    # Lines printed before the kill but not read yet are promises too (each is one write
    # of less than PIPE_BUF bytes, so never torn).
    lines += [line for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_never_loses_what_was_reported_durable(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    directory = tmp_path / "wal"
    promised: tuple[int, int, int, int] | None = None
    total_reports = 0
    snapshots_seen = 0
    for round_no in range(ROUNDS):
        lines = _run_child(
            directory, seed * 1000 + round_no, rng.randint(0, 40), rng.uniform(0, 0.03)
        )
        if lines:
            last, term, commit, commit_term = (int(x) for x in lines[-1].split())
            promised = (last, term, commit, commit_term)
            total_reports += len(lines)
        storage = DiskStorage.open(directory)
        storage.close()
        first, last_index = storage.first_index(), storage.last_index()
        snap = storage.snapshot().metadata
        where = f"seed {seed}, round {round_no}"
        assert snap.index == 0 or storage.snapshot().data == snapshot_data(snap.index), where
        log = storage.entries(first, last_index + 1, 2**62) if last_index >= first else []
        for i, e in enumerate(log, start=first):
            assert e.index == i, f"{where}: index {e.index} at position {i}"
            _check_entry(e, seed)
        if promised is None:
            continue
        last, term, commit, commit_term = promised
        hs, _ = storage.initial_state()
        assert hs.term >= term and hs.commit >= commit, f"{where}: hard state {hs} lost"
        assert last_index >= commit, f"{where}: committed entry {commit} lost"
        assert first - 1 <= commit, f"{where}: compacted past the commit index"
        if commit:
            assert storage.term(commit) == commit_term, f"{where}: committed entry changed"
        if last_index < last or storage.term(last) != term:
            # Only a later overwrite by a higher term may replace a durable entry.
            assert storage.term(last_index) > term, f"{where}: durable entry {last} lost"
        snapshots_seen += snap.index > 0
    assert total_reports > 0, f"seed {seed}: the child never reported anything"
    assert snapshots_seen > 0, f"seed {seed}: no round recovered from a snapshot"
