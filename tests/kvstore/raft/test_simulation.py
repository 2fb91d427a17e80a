"""Random schedules over simulated clusters (see ``sim.py`` for the model and invariants).

Environment:
    KVSTORE_SIM_SCHEDULES  how many schedules the CI run covers (default 2000)
    KVSTORE_SIM_STEPS      random steps per schedule before healing (default 500)
    KVSTORE_SIM_BASE       first seed of the run (default 0)
    KVSTORE_SIM_SEED       run only this seed (reproduce a failure)
    KVSTORE_SIM_WORKERS    processes to spread schedules over (default: all cores)

Even seeds run 3-node clusters, odd seeds 5-node ones.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from .sim import InvariantViolation, Stats, run_schedule, size_for

SCHEDULES = int(os.environ.get("KVSTORE_SIM_SCHEDULES", "2000"))
STEPS = int(os.environ.get("KVSTORE_SIM_STEPS", "500"))
BASE = int(os.environ.get("KVSTORE_SIM_BASE", "0"))
ONE_SEED = os.environ.get("KVSTORE_SIM_SEED")
WORKERS = int(os.environ.get("KVSTORE_SIM_WORKERS", str(os.cpu_count() or 1)))


def _run_chunk(seeds: range) -> tuple[Stats, list[str]]:
    """Run ``seeds`` in one worker; failures come back as messages (with their seeds)."""
    total = Stats()
    failures: list[str] = []
    for seed in seeds:
        try:
            stats = run_schedule(seed, steps=STEPS)
        except InvariantViolation as exc:
            failures.append(str(exc))
            continue
        for f in dataclasses.fields(Stats):
            if f.name == "heal_ticks":
                total.heal_ticks = max(total.heal_ticks, stats.heal_ticks)
            else:
                setattr(total, f.name, getattr(total, f.name) + getattr(stats, f.name))
    return total, failures


def _merge(a: Stats, b: Stats) -> Stats:
    out = Stats()
    for f in dataclasses.fields(Stats):
        x, y = getattr(a, f.name), getattr(b, f.name)
        setattr(out, f.name, max(x, y) if f.name == "heal_ticks" else x + y)
    return out


def run_many(seeds: range, workers: int) -> tuple[Stats, list[str]]:
    """Run ``seeds`` over ``workers`` processes (in chunks, so they balance)."""
    if workers <= 1 or len(seeds) < 50:
        return _run_chunk(seeds)
    size = max(10, len(seeds) // (workers * 8))
    chunks = [seeds[i : i + size] for i in range(0, len(seeds), size)]
    total, failures = Stats(), []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for stats, fails in pool.map(_run_chunk, chunks):
            total = _merge(total, stats)
            failures.extend(fails)
    return total, failures


@pytest.mark.slow
def test_random_schedules(capsys: pytest.CaptureFixture[str]) -> None:
    """The CI run: SCHEDULES schedules of STEPS steps, 3- and 5-node clusters, every
    invariant checked after every step, then healing with a liveness bound."""
    seeds = range(int(ONE_SEED), int(ONE_SEED) + 1) if ONE_SEED else range(BASE, BASE + SCHEDULES)
    started = time.perf_counter()
    stats, failures = run_many(seeds, WORKERS)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nraft simulation: {len(seeds)} schedules x {STEPS} steps in {elapsed:.1f}s "
            f"over {WORKERS} worker(s): {dataclasses.asdict(stats)}"
        )
    assert not failures, f"{len(failures)} failing schedule(s); first:\n{failures[0]}"
    assert stats.steps == len(seeds) * STEPS
    if ONE_SEED:
        return
    # The schedules really exercise every feature (else passing would prove little).
    assert stats.elections > len(seeds)
    assert stats.crashes > len(seeds) // 2
    assert stats.partitions > len(seeds) // 2
    assert stats.conf_changes_applied > 0
    assert stats.transfers > 0
    assert stats.reads_served > 0
    assert stats.snapshots_sent > 0
    assert stats.compactions > 0
    assert stats.committed > stats.proposals // 2


def test_a_handful_of_schedules_pass_quickly() -> None:
    """A fast sample of both cluster sizes for the default, non-slow run."""
    stats, failures = _run_chunk(range(1000, 1010))
    assert not failures, failures[0]
    assert stats.committed > 0 and stats.elections >= 10


def test_a_seed_replays_exactly() -> None:
    """Determinism: the same seed gives the same schedule and outcome."""
    assert run_schedule(4242) == run_schedule(4242)
    assert size_for(4242) == 3 and size_for(4243) == 5
    assert run_schedule(4242) != run_schedule(4244)
