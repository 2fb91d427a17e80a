"""``kvstore bench``: drive any etcd v3 endpoints with a workload, or compare this store
with etcd (``--compare``)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import uvloop

from kvstore.bench.compare import PHASES, CompareConfig, run_compare
from kvstore.bench.load import (
    DEFAULT_KEY_SPACE,
    DEFAULT_VALUE_SIZE,
    LoadSpec,
    Workload,
    preload,
    run_load,
)
from kvstore.bench.stats import format_results


def _ints(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the bench flags."""
    parser.add_argument("--endpoints", default="127.0.0.1:2379", help="comma-separated")
    parser.add_argument(
        "--workload",
        default="",
        help=f"comma-separated, of: {', '.join(w.value for w in Workload)} "
        "(default: put; with --compare, all)",
    )
    parser.add_argument("--concurrency", default="1,16,64,256", help="comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--count", type=int, default=0, help="operations per run (wins)")
    parser.add_argument("--key-space", type=int, default=DEFAULT_KEY_SPACE)
    parser.add_argument("--value-size", type=int, default=DEFAULT_VALUE_SIZE)
    parser.add_argument("--preload", action="store_true", help="write the whole key space first")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="start 3-member clusters of kvstore and etcd and compare them (A B A B)",
    )
    parser.add_argument("--out", default="bench-results", help="--compare output directory")
    parser.add_argument(
        "--big-keys", default="100000,1000000", help="--compare: key counts for restart/RSS"
    )
    parser.add_argument("--failovers", type=int, default=3, help="--compare: leader kills")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="--compare: which of throughput, failover, restart to run",
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the flags describe; print the figures."""
    try:
        workloads = [Workload(w) for w in args.workload.split(",") if w]
        if not workloads:
            workloads = list(Workload) if args.compare else [Workload.PUT]
    except ValueError as exc:
        print(f"kvstore bench: {exc}", file=sys.stderr)
        return 2
    concurrencies = _ints(args.concurrency)
    if args.compare:
        with tempfile.TemporaryDirectory(prefix="kvstore-bench-") as tmp:
            cfg = CompareConfig(
                root=Path(tmp),
                out=Path(args.out),
                workloads=workloads,
                concurrencies=concurrencies,
                duration=args.duration,
                key_space=args.key_space,
                value_size=args.value_size,
                big_keys=_ints(args.big_keys),
                failovers=args.failovers,
                phases=[p for p in args.phases.split(",") if p],
            )
            print(run_compare(cfg, log=lambda s: print(s, file=sys.stderr, flush=True)))
        return 0
    endpoints = [e for e in args.endpoints.split(",") if e]
    if args.preload:
        uvloop.run(preload(endpoints, args.key_space, args.value_size))
    results = []
    for wl in workloads:
        for conc in concurrencies:
            spec = LoadSpec(wl, conc, duration=args.duration, count=args.count,
                            key_space=args.key_space, value_size=args.value_size)  # fmt: skip
            results.append(uvloop.run(run_load(endpoints, spec, "target")))
    print(format_results(results))
    return 0
