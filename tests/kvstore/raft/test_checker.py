"""The simulation's checker catches real Raft bugs.

Each test plants one classic bug (through ``unittest.mock``, in the core or in the
simulated driver) and demands that random schedules report an InvariantViolation naming a
seed within a bounded number of seeds. Without these, a checker that checks nothing would
pass the schedules too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from unittest import mock

import pytest

from kvstore.raft.log import RaftLog
from kvstore.raft.raft import Raft
from kvstore.raft.types import HardState, Message, Ready

from . import sim
from .sim import InvariantViolation, SimNode, Simulation, run_schedule


def first_violation(limit: int) -> str:
    """Run seeds 0.. until one fails; the failure message (or "" if none did)."""
    for seed in range(limit):
        try:
            run_schedule(seed)
        except InvariantViolation as exc:
            return str(exc)
    return ""


_persist = Simulation._persist
_process = Simulation.process


def _forget_vote(self: Simulation, node: SimNode, rd: Ready) -> None:
    _persist(self, node, rd)
    hs = node.disk.hard_state
    node.disk.set_hard_state(HardState(hs.term, 0, hs.commit))


def _send_before_persist(
    self: Simulation, node: SimNode, crash_after_persist: bool = False
) -> None:
    raw = node.raw
    if raw is not None and raw.has_ready() and self.rng.random() < 0.02:
        rd = raw.ready()
        self.net.extend(rd.messages)  # sent, then the node dies before writing
        self.crash(node, lose_unsynced=False)
        return
    _process(self, node, crash_after_persist)


def _overcommit(self: Raft, m: Message) -> None:
    self.raft_log.commit_to(min(m.commit + 1, self.raft_log.last_index()))
    _heartbeat(self, m)


_heartbeat = Raft._handle_heartbeat


def bugs() -> Iterator[tuple[str, AbstractContextManager[object], int, str]]:
    """(name, patch, seeds to try, expected words in the report)."""
    yield (
        "a vote not persisted",
        mock.patch.object(Simulation, "_persist", _forget_vote),
        1500,
        "leader",
    )
    yield (
        "votes granted to out-of-date logs",
        mock.patch.object(RaftLog, "is_up_to_date", lambda self, i, t: True),
        300,
        "",
    )
    yield (
        "messages sent before the Ready is persisted",
        mock.patch.object(Simulation, "process", _send_before_persist),
        300,
        "",
    )
    yield (
        "ReadIndex answered before the leader's own-term commit",
        mock.patch.object(Raft, "_committed_entry_in_current_term", lambda self: True),
        500,
        "stale read",
    )
    yield (
        "a follower committing beyond the leader's commit index",
        mock.patch.object(Raft, "_handle_heartbeat", _overcommit),
        300,
        "",
    )


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(bugs()), ids=lambda b: b[0])
def test_the_checker_catches(bug: tuple[str, AbstractContextManager[object], int, str]) -> None:
    name, patch, limit, words = bug
    with patch:
        report = first_violation(limit)
    assert report, f"{name}: no schedule among {limit} seeds noticed"
    assert report.startswith("seed ") and "KVSTORE_SIM_SEED=" in report
    assert words in report


def test_the_unpatched_core_passes_the_same_seeds() -> None:
    """The control for the tests above (a short prefix of the same seeds)."""
    assert first_violation(20) == ""
    assert sim.LIVENESS_TICKS > 0
