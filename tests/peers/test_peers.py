"""Each peer suite against a fresh 3-member cluster of etcd and one of this store, side by
side; a test that passes against etcd must pass against the store (docs/compatibility.md).

Needs root (namespaces), etcd and etcdctl, and the suites that scripts/peers installs;
the pipeline's test stage has neither, so the group runs in scripts/test, outside it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.peers import launch
from tests.peers.compare import Comparison, compare
from tests.peers.expected import EXPECTED
from tests.peers.results import Result, ResultsError, load
from tests.peers.runner import SUITE_TIMEOUT_S, results_path
from tests.peers.suites import SUITES, Suite, cache_dir
from tests.tooling import ROOT, missing

pytestmark = [pytest.mark.peers, pytest.mark.slow]

KINDS = ("etcd", "kvstore")
RUN_TIMEOUT_S = SUITE_TIMEOUT_S + 90  # plus starting and stopping the cluster
MIN_ETCD_PASS_RATIO = 0.9
"""Below this share of passes against etcd the run itself is broken (a harness or
environment fault), and comparing it with the store's would prove nothing."""
REPORTS = ROOT / "test-results" / "peers"


def _wait(runs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    for proc in runs.values():
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()  # the runner is PID 1 of its namespace: its members die with it
            proc.wait(timeout=30)


def _results(
    suite: Suite, kind: str, out: Path, proc: subprocess.Popen[bytes]
) -> dict[str, Result]:
    log = (out / "runner.log").read_text(errors="replace")[-3000:]
    if proc.returncode != 0:
        pytest.fail(f"{suite.name} against {kind}: the run failed ({proc.returncode}):\n{log}")
    try:
        return load(results_path(suite, out), suite.report.value)
    except ResultsError as e:
        output = (out / "output.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"{suite.name} against {kind}: {e}\n{log}\n{output}")


def _save(comparison: Comparison, suite: Suite, runs: Path) -> None:
    c = comparison
    """The comparison, and each run's results and output, under test-results/peers/."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        kept = REPORTS / comparison.suite / kind
        kept.mkdir(parents=True, exist_ok=True)
        for source in (results_path(suite, runs / kind), runs / kind / "output.log"):
            if source.is_file():
                shutil.copyfile(source, kept / source.name)
    (REPORTS / f"{comparison.suite}.txt").write_text(comparison.report() + "\n")
    seconds = {k: json.loads((runs / k / "run.json").read_text())["seconds"] for k in KINDS}
    summary = {
        "suite": comparison.suite,
        "total": comparison.total,
        "passed": {
            k: Comparison.passed(r) for k, r in zip(KINDS, (c.etcd, c.kvstore), strict=True)
        },
        "seconds": seconds,
        "regressions": [t for t, _ in comparison.regressions],
        "expected": [t for t, _ in comparison.expected],
        "known_broken": comparison.known_broken,
        "store_only": comparison.store_only,
    }
    (REPORTS / f"{comparison.suite}.json").write_text(json.dumps(summary, indent=2) + "\n")


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
@pytest.mark.parametrize("suite", list(SUITES.values()), ids=list(SUITES))
def test_suite_passes_against_kvstore_where_it_passes_against_etcd(
    suite: Suite, peers_ready: None, tmp_path: Path, summaries: list[str]
) -> None:
    stale = suite.stale_reason(cache_dir())
    if stale is not None:
        missing(f"{stale} (scripts/peers build)")
    runs = {kind: launch.start(suite.name, kind, tmp_path / kind) for kind in KINDS}
    _wait(runs)
    etcd, kvstore = (_results(suite, k, tmp_path / k, runs[k]) for k in KINDS)
    comparison = compare(suite.name, etcd, kvstore, EXPECTED[suite.name])
    summaries.append(comparison.summary())
    _save(comparison, suite, tmp_path)
    where = f"\n(runs, logs and cluster data in {tmp_path})"
    assert Comparison.passed(etcd) >= MIN_ETCD_PASS_RATIO * max(1, len(etcd)), (
        f"{suite.name} mostly fails against etcd itself: the run is broken\n"
        + comparison.report()
        + where
    )
    assert comparison.ok, comparison.report() + where
