"""Figures of a benchmark run and their presentation: percentiles, rows, the comparison
table. Pure: no clocks, no sockets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest-rank; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Result:
    """One workload at one concurrency against one system."""

    system: str
    workload: str
    concurrency: int
    ops: int
    errors: int
    seconds: float
    p50: float
    p99: float
    p999: float
    """Latencies in seconds."""

    @property
    def throughput(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def from_latencies(
        cls,
        system: str,
        workload: str,
        concurrency: int,
        latencies: Sequence[float],
        *,
        errors: int,
        seconds: float,
    ) -> Result:
        lat = sorted(latencies)
        return cls(
            system, workload, concurrency, len(lat), errors, seconds,
            percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.999),
        )  # fmt: skip

    def merge(self, other: Result) -> Result:
        """Two runs of the same row as one: operations and time add up; each percentile
        is the worse of the two (the pooled latencies are not kept)."""
        return Result(
            self.system, self.workload, self.concurrency,
            self.ops + other.ops, self.errors + other.errors, self.seconds + other.seconds,
            max(self.p50, other.p50), max(self.p99, other.p99), max(self.p999, other.p999),
        )  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def format_results(results: Sequence[Result]) -> str:
    """A plain table of single-system results."""
    lines = [
        f"{'system':<8} {'workload':<17} {'conc':>4} {'ops/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'p99.9 ms':>9} {'errors':>6}"
    ]
    for r in results:
        lines.append(
            f"{r.system:<8} {r.workload:<17} {r.concurrency:>4} {r.throughput:>9.0f} "
            f"{_ms(r.p50):>8} {_ms(r.p99):>8} {_ms(r.p999):>9} {r.errors:>6}"
        )
    return "\n".join(lines)


def format_comparison(
    ours: Sequence[Result], theirs: Sequence[Result], a: str = "kvstore", b: str = "etcd"
) -> str:
    """A Markdown table, one row per (workload, concurrency), with the ratio of ours to
    theirs for throughput (higher is better) and p99 (lower is better)."""
    other = {(r.workload, r.concurrency): r for r in theirs}
    lines = [
        f"| workload | conc | {a} ops/s | {b} ops/s | ratio | {a} p50 ms | {b} p50 ms "
        f"| {a} p99 ms | {b} p99 ms | p99 ratio | {a} p99.9 ms | {b} p99.9 ms | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in ours:
        t = other.get((r.workload, r.concurrency))
        if t is None:
            continue
        ratio = r.throughput / t.throughput if t.throughput else math.inf
        p99_ratio = r.p99 / t.p99 if t.p99 else math.inf
        lines.append(
            f"| {r.workload} | {r.concurrency} | {r.throughput:.0f} | {t.throughput:.0f} "
            f"| {ratio:.2f} | {_ms(r.p50)} | {_ms(t.p50)} | {_ms(r.p99)} | {_ms(t.p99)} "
            f"| {p99_ratio:.2f} | {_ms(r.p999)} | {_ms(t.p999)} | {r.errors}/{t.errors} |"
        )
    return "\n".join(lines)
