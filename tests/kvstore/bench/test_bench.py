"""``kvstore bench``: the figures' arithmetic, the comparison table, the chart, and a smoke
run of the command against a real one-member cluster (about two seconds; the benchmark
asserts no timing, only that it measured something and reported it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvstore.bench.compare import draw_chart
from kvstore.bench.load import key_of
from kvstore.bench.stats import Result, format_comparison, percentile
from kvstore.cli import main
from kvstore.client import SyncClient
from kvstore.verify.cluster import Kind, LocalCluster


def test_percentiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 0.999) == 100
    assert percentile([], 0.5) == 0
    assert percentile([3.0], 0.99) == 3


def test_keys_are_eight_bytes() -> None:
    assert key_of(0) == b"00000000"
    assert key_of(123_456_789) == b"23456789"
    assert all(len(key_of(i)) == 8 for i in (1, 99_999, 10**7 + 5))


def test_comparison_rows_carry_ratios_and_merged_runs() -> None:
    a1 = Result.from_latencies("kvstore", "put", 16, [0.01] * 100, errors=1, seconds=1.0)
    a2 = Result.from_latencies("kvstore", "put", 16, [0.03] * 300, errors=0, seconds=1.0)
    ours = a1.merge(a2)
    assert ours.throughput == 200
    assert ours.p99 == 0.03 and ours.errors == 1
    theirs = Result.from_latencies("etcd", "put", 16, [0.01] * 800, errors=0, seconds=2.0)
    table = format_comparison([ours], [theirs])
    row = table.splitlines()[-1]
    assert row.startswith("| put | 16 | 200 | 400 | 0.50 |")
    assert "| 3.00 |" in row  # p99 ratio 30 ms / 10 ms
    assert row.endswith("| 1/0 |")


def test_chart_is_a_png(tmp_path: Path) -> None:
    rows = {
        kind: [
            Result.from_latencies(kind.value, "put", c, [0.001 * c] * 10, errors=0, seconds=1)
            for c in (1, 16, 64)
        ]
        for kind in Kind
    }
    path = tmp_path / "chart.png"
    draw_chart(rows, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def one_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("bench"), 1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
def test_bench_command_smoke(one_member: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "--endpoints", one_member.endpoints[0], "--key-space", "200", "--preload",
            "--workload", "put,get,get-serializable,mixed,txn-cas",
            "--concurrency", "1,4", "--duration", "0.2"]  # fmt: skip
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:]]
    assert [(r[1], r[2]) for r in rows] == [
        (w, c) for w in ("put", "get", "get-serializable", "mixed", "txn-cas") for c in ("1", "4")
    ]
    for r in rows:
        assert float(r[3]) > 0, f"no operation completed: {r}"
        assert r[-1] == "0", f"errors: {r}"
    # --preload wrote the whole key space.
    with SyncClient(one_member.endpoints) as c:
        assert c.get(key_of(199)).count == 1


def test_bench_rejects_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workload", "scan"]) == 2
    assert "scan" in capsys.readouterr().err
