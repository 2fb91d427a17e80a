"""One fault-injection run: start a cluster, load it, inject a schedule of faults, recover,
then check everything the clients and watchers recorded.

The order of a run:

1. start the members (each in its own cgroup when the schedule has network faults, one on a
   small tmpfs when it has a full disk, each with the slow-fsync shim preloaded when it has
   a slow disk);
2. run the workers and watchers while the nemesis carries out the schedule;
3. stop the workers, undo every fault (heal, continue, restart), wait for a leader;
   then the liveness check: once every member answers, each one on its own must serve a
   linearizable read, a write and that write's watch event within 10 s
   (:mod:`kvstore.verify.liveness`);
4. read every key once more, linearizably, as a final client (these reads join the history,
   so an acknowledged write that was lost makes the history non-linearizable); wait until
   every member serves the same values from its own state; read the cluster's whole event
   log with a fresh watch from revision 1; let the watchers catch up;
5. check: linearizability per key, revisions per worker, acknowledged writes in the log,
   every watch stream against the log.

A failed run writes its history, seed and executed schedule to a JSON file (see
:func:`save_failure`) from which the checks can be rerun.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kvstore.client import Client, ClientError
from kvstore.verify import checks
from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster
from kvstore.verify.history import History, Op, OpKind
from kvstore.verify.linearizability import check_history
from kvstore.verify.liveness import BOUND_S, MemberLiveness, check_member
from kvstore.verify.nemesis import (
    NETWORK_FAULTS,
    Fault,
    Nemesis,
    make_schedule,
    tmpfs_mount,
    unmount,
)
from kvstore.verify.netfault import Partitioner
from kvstore.verify.slowdisk import SlowDisk, build_shim
from kvstore.verify.workload import Event, Watcher, Worker, WorkloadConfig

RECOVERY_TIMEOUT_S = 45.0
DISK_MB = 48


@dataclass(frozen=True)
class Scenario:
    """What a run does."""

    name: str
    members: int
    faults: list[Fault]
    duration: float
    seed: int
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    watchers: int = 2
    hold: tuple[float, float] = (1.0, 3.0)
    """How long each fault lasts, in seconds (drawn from this range)."""
    gap: tuple[float, float] = (0.5, 1.5)
    """Seconds between the end of one fault and the start of the next."""


@dataclass
class RunResult:
    """What a run recorded and what the checks found."""

    scenario: Scenario
    history: History
    nemesis_log: list[dict[str, object]]
    event_log: list[Event]
    watch_streams: dict[str, list[Event]]
    counts: dict[str, int]
    failures: list[str]
    seconds: float
    liveness: list[MemberLiveness] = field(default_factory=list)
    """Per member: seconds from "every fault undone and every member answering" to its
    first linearizable read, write and watch event."""
    recovery: float = 0.0
    """Seconds from the end of the faults until every member answered again."""

    def summary(self) -> str:
        done = [e["did"] for e in self.nemesis_log if e["did"] != "undone"]
        return (
            f"{self.scenario.name} seed={self.scenario.seed}: {len(self.history.ops)} ops "
            f"{self.counts}, {len(self.event_log)} events, {len(done)} faults "
            f"in {self.seconds:.1f}s: {'; '.join(map(str, done))}"
            f"\nliveness (after {self.recovery:.1f}s of recovery): "
            + "; ".join(m.figures() for m in self.liveness)
        )

    def fault_windows(self, fault: Fault) -> list[tuple[float, float, str]]:
        """(start, end, what it did) of every episode of ``fault`` carried out, in
        monotonic time (the clock the history's operations are timed with)."""
        windows: list[tuple[float, float, str]] = []
        started: dict[float, tuple[float, str]] = {}
        for e in self.nemesis_log:
            if e["fault"] != fault:
                continue
            at, t, did = float(str(e["at"])), float(str(e["t"])), str(e["did"])
            if did == "undone" and at in started:
                begun, what = started.pop(at)
                windows.append((begun, t, what))
            elif not did.startswith("skipped"):
                started.setdefault(at, (t, did))
        return windows

    def latency_report(self, fault: Fault) -> str:
        """Latency of the completed operations invoked during each episode of ``fault``,
        and of all the others: what a fault that slows the cluster without breaking it
        did to the clients."""
        windows = self.fault_windows(fault)
        during: list[list[float]] = [[] for _ in windows]
        outside: list[float] = []
        for op in self.history.ops:
            if op.completed is None or op.client < 0:
                continue
            ms = (op.completed - op.invoked) * 1000
            where = next((i for i, (a, b, _) in enumerate(windows) if a <= op.invoked < b), None)
            (outside if where is None else during[where]).append(ms)

        def pct(xs: list[float]) -> str:
            if len(xs) < 2:
                return f"{len(xs)} ops"
            q = statistics.quantiles(xs, n=100, method="inclusive")
            return f"{len(xs)} ops, p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms, max {max(xs):.0f} ms"

        parts = [f"{what}: {pct(xs)}" for (_, _, what), xs in zip(windows, during, strict=True)]
        return "; ".join([*parts, f"otherwise: {pct(outside)}"])


def run_scenario(scenario: Scenario, root: Path) -> RunResult:
    """Run ``scenario`` with its data under ``root``; never raises for a failed check."""
    started = time.monotonic()
    tag = f"{scenario.name[:12]}-{random.getrandbits(24):06x}"
    # Built before the partitioner, whose chain and cgroups only the finally below removes.
    member_env = _slow_disk_env(root) if Fault.SLOW_DISK in scenario.faults else None
    partitioner = Partitioner(tag) if NETWORK_FAULTS.intersection(scenario.faults) else None
    cluster = LocalCluster(
        root,
        scenario.members,
        extra=RAFT_FLAGS,
        cluster_name=tag,
        cgroup_parent=partitioner.cgroup_parent if partitioner else None,
        member_env=member_env,
    )
    nemesis = Nemesis(cluster, partitioner)
    mount: Path | None = None
    history = History(meta={"scenario": scenario.name, "seed": scenario.seed})
    try:
        if Fault.DISK_FULL in scenario.faults:
            target = cluster.members[-1]
            mount = root / f"disk-{target.name}"
            tmpfs_mount(mount, DISK_MB)
            target.data_dir = mount / "data"
            nemesis.disk_member = target
        cluster.start()
        result = asyncio.run(_drive(scenario, cluster, nemesis, history))
    finally:
        if partitioner is not None:
            partitioner.heal()
        cluster.stop()
        for m in nemesis.retired:
            m.kill()
        if partitioner is not None:
            partitioner.close()
        if mount is not None:
            unmount(mount)
    history.meta["schedule"] = nemesis.log
    log, streams, counts, failures, liveness, recovery = result
    history.meta["liveness"] = [asdict(m) for m in liveness]
    return RunResult(
        scenario, history, nemesis.log, log, streams, counts, failures,
        time.monotonic() - started, liveness, recovery,
    )  # fmt: skip


def _slow_disk_env(root: Path) -> Callable[[str], dict[str, str]]:
    """Every member gets the slow-fsync shim and a control file of its own, so the nemesis
    can slow whichever member leads when the episode starts."""
    library = build_shim(root / "slowfsync")
    return lambda name: SlowDisk(library, root / f"slow-fsync-{name}").env


_Outcome = tuple[
    list[Event], dict[str, list[Event]], dict[str, int], list[str], list[MemberLiveness], float
]


async def _drive(
    scenario: Scenario, cluster: LocalCluster, nemesis: Nemesis, history: History
) -> _Outcome:
    cfg = scenario.workload
    rng = random.Random(scenario.seed)  # noqa: S311 (a reproducible workload)
    endpoints = list(cluster.endpoints)
    workers = [
        Worker(
            i,
            endpoints[i % len(endpoints) :] + endpoints[: i % len(endpoints)],
            cfg,
            history,
            random.Random(rng.getrandbits(32)),  # noqa: S311
        )
        for i in range(cfg.workers)
    ]
    watchers = [
        Watcher(f"w{i}", endpoints[-1 - i :] + endpoints[: -1 - i], cfg.prefix)
        for i in range(scenario.watchers)
    ]
    stop_work, stop_watch = asyncio.Event(), asyncio.Event()
    stop_faults = threading.Event()
    tasks = [asyncio.create_task(w.run(stop_work)) for w in workers]
    watch_tasks = [asyncio.create_task(w.run(stop_watch)) for w in watchers]
    schedule = make_schedule(
        scenario.seed, scenario.faults, scenario.duration, hold=scenario.hold, gap=scenario.gap
    )
    faults = asyncio.create_task(
        asyncio.to_thread(nemesis.run, schedule, time.monotonic(), stop_faults)
    )
    try:
        await asyncio.sleep(scenario.duration)
        stop_faults.set()
        await faults
    finally:
        stop_faults.set()
        stop_work.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    faults_stopped = time.monotonic()
    failures: list[str] = []
    # Every fault was undone: a member that is not running now exited by itself.
    for m in cluster.members:
        if not m.alive:
            failures.append(f"member {m.name} exited by itself:\n{m.log_tail(1500)}")
    await asyncio.to_thread(_recover, cluster, nemesis)
    await _all_answering(cluster)
    recovery = time.monotonic() - faults_stopped
    liveness = await asyncio.gather(
        *(check_member(m.name, m.endpoint, cluster.token) for m in cluster.members)
    )
    failures += [f for m in liveness if (f := m.failure(BOUND_S)) is not None]
    final_rev = await _final_reads(cluster, cfg, history, failures)
    log = await _event_log(cluster, cfg.prefix, final_rev)
    await _wait_for(lambda: all(w.last_revision >= final_rev for w in watchers), 20)
    stop_watch.set()
    await asyncio.gather(*watch_tasks, return_exceptions=True)

    for res in check_history(history):
        if res.linearizable is False:
            failures.append(f"key {res.key} is not linearizable:\n{res.detail}")
        elif res.linearizable is None:
            failures.append(f"key {res.key}: checker gave up ({res.detail})")
    failures += checks.revisions_monotonic(history)
    failures += checks.event_log_consistent(log)
    failures += checks.acknowledged_writes_present(history, log)
    for w in watchers:
        failures += checks.watch_stream_matches(w.name, w.events, log)
    counts: dict[str, int] = {}
    for worker in workers:
        for k, v in worker.counts.items():
            counts[k] = counts.get(k, 0) + v
    counts["watch-restarts"] = sum(w.restarts for w in watchers)
    return log, {w.name: w.events for w in watchers}, counts, failures, liveness, recovery


def _recover(cluster: LocalCluster, nemesis: Nemesis) -> None:
    """Undo whatever is still broken and wait for the cluster to agree on a leader."""
    if nemesis.partitioner is not None:
        nemesis.partitioner.heal()
    for m in cluster.members:
        m.resume()
        if not m.alive:
            cluster.restart(m)
    cluster.leader(timeout=RECOVERY_TIMEOUT_S)


async def _all_answering(cluster: LocalCluster) -> None:
    """Wait until every member answers a Status call: it runs and serves its client port
    (a restarted member may still be replaying its log when the leader is agreed on).
    The liveness bound starts from here; a member that never answers fails it."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    for m in cluster.members:
        while time.monotonic() < deadline:
            try:
                async with Client([m.endpoint], timeout=1, rounds=1) as one:
                    await one.status()
                break
            except ClientError:
                await asyncio.sleep(0.1)


async def _final_reads(
    cluster: LocalCluster, cfg: WorkloadConfig, history: History, failures: list[str]
) -> int:
    """Linearizable reads of every key (added to the history); then every member must
    serve the same values from its own state. Returns the revision of the workload's last
    write: the highest mod revision among its keys (the workload never deletes), which is
    what the watchers and the event log must reach. Not the responses' header revision:
    the liveness check's own writes, outside the workload's prefix, raised the store's
    revision past every event the watchers can see, and each wait below ran to its
    timeout."""
    finals: dict[str, str | None] = {}
    revision = 0
    async with Client(cluster.endpoints, timeout=10) as cl:
        for key in sorted({cfg.key(i) for i in range(cfg.keys)} | set(history.key_names())):
            invoked = time.monotonic()
            resp = await cl.get(key.encode())
            value = resp.kvs[0].value.decode() if resp.kvs else None
            history.add(Op(-1, OpKind.READ, key, invoked, time.monotonic(), value=value,
                           revision=resp.header.revision))  # fmt: skip
            finals[key] = value
            revision = max([revision, *(kv.mod_revision for kv in resp.kvs)])
    for m in cluster.members:
        got: dict[str, str | None] = {}

        async def converged(endpoint: str = m.endpoint, got: dict[str, str | None] = got) -> bool:
            async with Client([endpoint], timeout=5, rounds=1) as one:
                for key in finals:
                    resp = await one.get(key.encode(), serializable=True)
                    got[key] = resp.kvs[0].value.decode() if resp.kvs else None
            return got == finals

        deadline = time.monotonic() + 20
        ok = False
        while time.monotonic() < deadline and not ok:
            with contextlib.suppress(ClientError):
                ok = await converged()
            if not ok:
                await asyncio.sleep(0.2)
        if not ok:
            failures.append(f"member {m.name} serves {got}, the cluster's values are {finals}")
    return revision


async def _event_log(cluster: LocalCluster, prefix: str, final_rev: int) -> list[Event]:
    """The cluster's event log for the prefix, read by a fresh watch from revision 1."""
    reader = Watcher("final-log", cluster.endpoints, prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    await _wait_for(lambda: reader.last_revision >= final_rev, 30)
    stop.set()
    await task
    return reader.events


async def _wait_for(cond: object, timeout: float) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        await asyncio.sleep(0.1)


def save_failure(result: RunResult, directory: Path) -> Path:
    """Write the history, seed, schedule, watch streams and failures to one JSON file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.scenario.name}-seed{result.scenario.seed}.json"
    result.history.meta.update(
        {
            "scenario": asdict(result.scenario),
            "failures": result.failures,
            "event_log": [asdict(e) for e in result.event_log],
            "watch_streams": {k: [asdict(e) for e in v] for k, v in result.watch_streams.items()},
        }
    )
    result.history.save(path)
    return path
