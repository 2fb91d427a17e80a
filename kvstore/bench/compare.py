"""``kvstore bench --compare``: this store against etcd on the same machine, same load.

Starts a 3-member cluster of each (same defaults: 100 ms heartbeat, 1 s election timeout,
fsync on every commit) on loopback addresses, preloads the same key space into both, then
runs every (workload, concurrency) row four times, alternating the systems A B A B, so that
a slow minute on a shared machine hurts both. Then, for both systems:

- failover: a writer issues puts back to back (each call given up after 0.5 s and tried
  again); the leader is SIGKILLed; the figure is the time from the kill to the next
  acknowledged put (median of several kills; the killed member restarts between kills);
- restart: with N extra keys loaded, every member is stopped and started again; the figure
  is the time from starting the processes to the first answered linearizable get;
- memory: resident memory per member after loading the keys, minus the same figure before,
  scaled to one million keys.

Writes ``results.json``, ``report.md`` and ``chart.png`` (throughput and p99 against
concurrency, both systems) into the output directory.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import uvloop

from kvstore.bench.load import LoadSpec, Workload, preload, run_load
from kvstore.bench.stats import Result, format_comparison
from kvstore.client import Client, ClientError
from kvstore.verify.cluster import Kind, LocalCluster

SYSTEMS = (Kind.KVSTORE, Kind.ETCD)
FAILOVER_CALL_TIMEOUT_S = 0.5
PHASES = ("throughput", "failover", "restart")

K = TypeVar("K", bound=str)
"""What names a cluster in a comparison (a ``Kind``, or any label)."""


@dataclass(frozen=True)
class CompareConfig:
    """What the comparison runs."""

    root: Path
    out: Path
    workloads: Sequence[Workload] = tuple(Workload)
    concurrencies: Sequence[int] = (1, 16, 64, 256)
    duration: float = 5.0
    key_space: int = 10_000
    value_size: int = 256
    big_keys: Sequence[int] = (100_000, 1_000_000)
    failovers: int = 3
    phases: Sequence[str] = PHASES


@dataclass
class SystemFigures:
    """The non-throughput figures of one system."""

    failover_s: list[float] = field(default_factory=list)
    restart_s: dict[int, float] = field(default_factory=dict)
    rss_per_million_keys_mb: float = 0.0
    load_s: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def run_compare(cfg: CompareConfig, log: object = print) -> str:
    """Run everything; return the Markdown report (also written to ``cfg.out``).

    Results are saved after every phase, and a phase that fails for one system records the
    error instead of losing the figures measured before it.
    """
    assert callable(log)
    cfg.out.mkdir(parents=True, exist_ok=True)
    clusters = {
        k: LocalCluster(cfg.root / k.value, 3, kind=k, cluster_name="bench") for k in SYSTEMS
    }
    results: dict[Kind, list[Result]] = {k: [] for k in SYSTEMS}
    figures = {k: SystemFigures() for k in SYSTEMS}
    try:
        for k, c in clusters.items():
            start_loaded(k.value, c, cfg.key_space, cfg.value_size, log)
        if "throughput" in cfg.phases:
            _throughput(cfg, clusters, results, log)
            _save(cfg, results, figures)
        for k, c in clusters.items():
            try:
                if "failover" in cfg.phases:
                    figures[k].failover_s = [failover_once(c) for _ in range(cfg.failovers)]
                    log(f"{k.value}: failover {figures[k].failover_s}")
                if "restart" in cfg.phases:
                    measure_restarts(c, cfg, figures[k], log)
            except (ClientError, TimeoutError) as exc:
                figures[k].errors.append(f"{type(exc).__name__}: {exc}"[:300])
                log(f"{k.value}: {figures[k].errors[-1]}")
            _save(cfg, results, figures)
    finally:
        for c in clusters.values():
            c.stop()
    return _save(cfg, results, figures)


def start_loaded(
    name: str, cluster: LocalCluster, key_space: int, value_size: int, log: Callable[[str], object]
) -> None:
    """Start ``cluster``, put its leader last and write the whole key space."""
    cluster.start()
    # The leader is the last member in every cluster measured: load generators hand out
    # the endpoints in order, so one client talks to a follower, as two in three do.
    cluster.move_leader(cluster.members[-1])
    uvloop.run(preload(cluster.endpoints, key_space, value_size))
    log(f"{name}: started, {key_space} keys loaded")


def alternate(clusters: Mapping[K, LocalCluster], spec: LoadSpec) -> dict[K, Result]:
    """One row: ``spec`` twice against each cluster in turn (A B A B), merged per cluster,
    so a busy minute on a shared machine lands on every side."""
    merged: dict[K, Result] = {}
    for _round in range(2):
        for k, cluster in clusters.items():
            r = uvloop.run(run_load(cluster.endpoints, spec, str(k)))
            merged[k] = merged[k].merge(r) if k in merged else r
    return merged


def row_line(spec: LoadSpec, merged: Mapping[K, Result]) -> str:
    """One row's progress line: throughput and p99 of every side."""
    sides = ", ".join(
        f"{k} {r.throughput:.0f}/s p99 {r.p99 * 1000:.1f} ms" for k, r in merged.items()
    )
    return f"{spec.workload.value} x{spec.concurrency}: {sides}"


def _throughput(
    cfg: CompareConfig,
    clusters: dict[Kind, LocalCluster],
    results: dict[Kind, list[Result]],
    log: Callable[[str], object],
) -> None:
    """Every (workload, concurrency) row, A B A B."""
    for wl in cfg.workloads:
        for conc in cfg.concurrencies:
            spec = LoadSpec(wl, conc, duration=cfg.duration, key_space=cfg.key_space,
                            value_size=cfg.value_size)  # fmt: skip
            merged = alternate(clusters, spec)
            for k in SYSTEMS:
                results[k].append(merged[k])
            log(row_line(spec, merged))


def _save(
    cfg: CompareConfig, results: dict[Kind, list[Result]], figures: dict[Kind, SystemFigures]
) -> str:
    report = render_report(cfg, results, figures)
    (cfg.out / "report.md").write_text(report)
    data = {
        "results": {k.value: [asdict(r) for r in rs] for k, rs in results.items()},
        "figures": {k.value: asdict(f) for k, f in figures.items()},
    }
    (cfg.out / "results.json").write_text(json.dumps(data, indent=1))
    if any(results.values()):
        draw_chart(results, cfg.out / "chart.png")
    return report


async def _put_until_ok(cl: Client, key: bytes) -> float:
    while True:
        try:
            await cl.put(key, b"x")
            return time.monotonic()
        except ClientError:
            await asyncio.sleep(0.01)


def failover_once(cluster: LocalCluster) -> float:
    """Seconds from SIGKILL of the leader to the next acknowledged put; restarts the
    killed member afterwards and waits until the cluster agrees on a leader again."""
    leader = cluster.leader()

    async def measure() -> float:
        # Short calls, retried: a request stuck on a dead leader (etcd holds a proposal
        # that has no leader until its 7 s request timeout) is abandoned after 0.5 s.
        async with Client(cluster.endpoints, timeout=FAILOVER_CALL_TIMEOUT_S, rounds=1) as cl:
            await _put_until_ok(cl, b"failover")
            killed = time.monotonic()
            leader.kill()
            done = await _put_until_ok(cl, b"failover")
            return done - killed

    seconds = uvloop.run(measure())
    cluster.restart(leader)
    cluster.leader(timeout=60)
    time.sleep(1)
    return seconds


def total_rss(cluster: LocalCluster) -> int:
    return sum(m.rss_bytes() for m in cluster.members)


def measure_restarts(
    cluster: LocalCluster, cfg: CompareConfig, fig: SystemFigures, log: object
) -> None:
    """Load the big key counts in turn; after each, time a whole-cluster restart."""
    assert callable(log)
    base = total_rss(cluster)
    loaded = 0
    for n in cfg.big_keys:
        t0 = time.monotonic()
        uvloop.run(preload(cluster.endpoints, n - loaded, cfg.value_size, first=10**7 + loaded))
        fig.load_s[n] = round(time.monotonic() - t0, 1)
        loaded = n
        rss = total_rss(cluster)
        fig.rss_per_million_keys_mb = round(
            (rss - base) / len(cluster.members) / n * 1e6 / 2**20, 1
        )
        cluster.stop()
        started = time.monotonic()
        for m in cluster.members:
            m.start(cluster.initial_cluster(), "new", cluster.token)
        uvloop.run(_first_read(cluster))
        fig.restart_s[n] = round(time.monotonic() - started, 2)
        log(f"{cluster.kind.value}: {n} keys: restart {fig.restart_s[n]} s, "
            f"{fig.rss_per_million_keys_mb} MB RSS per member per million keys")  # fmt: skip


async def _first_read(cluster: LocalCluster) -> None:
    deadline = time.monotonic() + 600
    async with Client(cluster.endpoints, timeout=5, rounds=1) as cl:
        while time.monotonic() < deadline:
            try:
                await cl.get(b"failover")
                return
            except ClientError:
                await asyncio.sleep(0.05)
    raise TimeoutError("the cluster did not serve a read within 600 s")


def render_report(
    cfg: CompareConfig, results: dict[Kind, list[Result]], figures: dict[Kind, SystemFigures]
) -> str:
    """The Markdown report: the comparison table, then recovery and memory figures."""
    ours, theirs = figures[Kind.KVSTORE], figures[Kind.ETCD]
    lines = [
        format_comparison(results[Kind.KVSTORE], results[Kind.ETCD]),
        "",
        "| figure | kvstore | etcd |",
        "|---|--:|--:|",
    ]
    if ours.failover_s and theirs.failover_s:
        lines.append(
            f"| leader SIGKILL to next acknowledged put, median of {cfg.failovers} (s) "
            f"| {statistics.median(ours.failover_s):.2f} "
            f"| {statistics.median(theirs.failover_s):.2f} |"
        )
    for n in cfg.big_keys:
        if n in ours.restart_s and n in theirs.restart_s:
            lines.append(
                f"| restart to first linearizable read, {n:,} keys (s) "
                f"| {ours.restart_s[n]:.2f} | {theirs.restart_s[n]:.2f} |"
            )
            lines.append(
                f"| loading {n:,} keys in 128-put txns, 8 in flight (s) "
                f"| {ours.load_s[n]:.1f} | {theirs.load_s[n]:.1f} |"
            )
    if cfg.big_keys:
        lines.append(
            f"| resident memory per member per million keys (MB) "
            f"| {ours.rss_per_million_keys_mb:.0f} | {theirs.rss_per_million_keys_mb:.0f} |"
        )
    for kind, fig in figures.items():
        lines += [f"\n{kind.value} failed to finish a phase: {e}" for e in fig.errors]
    return "\n".join(lines) + "\n"


def draw_chart(results: dict[Kind, list[Result]], path: Path) -> None:
    """Throughput and p99 against concurrency, one line per (system, workload)."""
    import matplotlib  # noqa: PLC0415 (an optional extra: `pip install kvstore[bench]`)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 9), sharex=True)
    workloads = sorted({r.workload for rows in results.values() for r in rows})
    colors = {wl: f"C{i}" for i, wl in enumerate(workloads)}  # one colour per workload
    for kind, style in ((Kind.KVSTORE, "-o"), (Kind.ETCD, "--s")):
        by_wl: dict[str, list[Result]] = {}
        for r in results[kind]:
            by_wl.setdefault(r.workload, []).append(r)
        for wl, rows in by_wl.items():
            xs = [r.concurrency for r in rows]
            label, color = f"{kind.value} {wl}", colors[wl]
            top.plot(xs, [r.throughput for r in rows], style, color=color, label=label)
            bottom.plot(xs, [r.p99 * 1000 for r in rows], style, color=color, label=label)
    top.set_ylabel("operations per second")
    top.set_yscale("log")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_yscale("log")
    bottom.set_xlabel("concurrent requests")
    bottom.set_xscale("log", base=2)
    top.legend(fontsize=7, ncol=2)
    top.set_title("kvstore (solid) and etcd (dashed), 3 members each, one machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
