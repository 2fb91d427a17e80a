"""The peers group's own parts, without running a suite: reading results, comparing them,
the cache layout scripts/peers shares with the tests, and the runner's setting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kvstore.verify.cluster import Kind
from tests.peers import launch, runner
from tests.peers.compare import compare
from tests.peers.expected import EXPECTED
from tests.peers.results import Outcome, Result, ResultsError, parse_json_lines, parse_junit
from tests.peers.suites import AETCD, GO_CLIENTV3, PYTHON_ETCD3, SUITES, goclient_stamp
from tests.tooling import ROOT, tool_pins

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
  <testcase classname="tests.test_x.TestA" name="test_ok" time="0.1"/>
  <testcase classname="tests.test_x.TestA" name="test_bad">
    <failure message="AssertionError: 1 != 2&#10;second line">trace</failure></testcase>
  <testcase classname="tests.test_x" name="test_skip">
    <skipped type="pytest.skip" message="requires etcd v3.3">why</skipped></testcase>
  <testcase classname="tests.test_x" name="test_teardown"/>
  <testcase classname="tests.test_x" name="test_teardown">
    <error message="failed on teardown with &quot;RetryError&quot;">trace</error></testcase>
</testsuite></testsuites>
"""


def test_junit_outcomes_with_a_teardown_error_counting_against_its_test() -> None:
    results = parse_junit(JUNIT)
    assert results == {
        "tests.test_x.TestA::test_ok": Result(Outcome.PASSED),
        "tests.test_x.TestA::test_bad": Result(Outcome.FAILED, "AssertionError: 1 != 2"),
        "tests.test_x::test_skip": Result(Outcome.SKIPPED, "requires etcd v3.3"),
        "tests.test_x::test_teardown": Result(
            Outcome.FAILED, 'failed on teardown with "RetryError"'
        ),
    }


def test_unreadable_results_are_errors_not_empty_runs() -> None:
    with pytest.raises(ResultsError, match="not JUnit XML"):
        parse_junit("<testsuite><testcase")
    with pytest.raises(ResultsError, match="line 2 is not JSON"):
        parse_json_lines('{"check": "a", "ok": true}\npanic: runtime error\n')
    with pytest.raises(ResultsError, match="boolean 'ok'"):
        parse_json_lines('{"check": "a", "ok": "yes"}\n')


def test_json_lines_of_the_go_checks() -> None:
    text = (
        '{"check":"kv.put_get","ok":true,"ms":3}\n\n'
        '{"check":"watch.progress","ok":false,"ms":5012,"error":"no progress notification"}\n'
    )
    assert parse_json_lines(text) == {
        "kv.put_get": Result(Outcome.PASSED),
        "watch.progress": Result(Outcome.FAILED, "no progress notification"),
    }


P, F, S = Result(Outcome.PASSED), Result(Outcome.FAILED, "boom"), Result(Outcome.SKIPPED)


def test_comparison_sorts_tests_into_regressions_broken_suite_and_listed_work() -> None:
    etcd = {"a": P, "b": P, "c": F, "d": F, "e": P, "f": P, "g": S, "h": P}
    ours = {"a": P, "b": F, "c": F, "d": P, "e": F, "f": P, "g": S}
    result = compare("demo", etcd, ours, {"e": "in progress", "f": "landed meanwhile"})
    assert result.regressions == [("b", "boom"), ("h", "did not run")]
    assert result.known_broken == ["c"]
    assert result.store_only == ["d"]
    assert result.expected == [("e", "in progress")]
    assert result.stale == ["f"]
    assert not result.ok
    assert result.summary() == (
        "demo: etcd 5/8, kvstore 3/8 (1 broken in the suite (fail on both); "
        "1 expected difference(s); 2 REGRESSION(S))"
    )
    report = result.report()
    assert (
        "regression: b: boom" in report and "remove it from tests/peers/expected.py): f" in report
    )


def test_a_store_that_passes_whatever_etcd_passes_is_ok() -> None:
    result = compare("demo", {"a": P, "b": F, "c": S}, {"a": P, "b": F, "c": S})
    assert result.ok
    assert result.summary() == "demo: etcd 1/3, kvstore 1/3 (1 broken in the suite (fail on both))"


def test_a_store_skip_where_etcd_passes_is_a_regression() -> None:
    assert compare("demo", {"a": P}, {"a": S}).regressions == [("a", "skipped")]


def test_expected_differences_name_known_suites() -> None:
    assert set(EXPECTED) == set(SUITES)


def test_pins_are_exact_and_match_what_scripts_peers_stamps() -> None:
    pins = tool_pins()
    for suite in (PYTHON_ETCD3, AETCD):
        requirements = [pins[suite.pin], *pins[suite.pin + "_TEST_DEPS"].split(",")]
        for requirement in requirements:
            assert requirement.count("==") == 1 and requirement.split("==")[1][0].isdigit()
        assert suite.expected_stamp() == ";".join([requirements[0], ",".join(requirements[1:])])
    assert PYTHON_ETCD3.install_dir(Path("/c")) == Path("/c/etcd3-0.12.0")
    assert PYTHON_ETCD3.source_dir(Path("/c")) == Path("/c/etcd3-0.12.0/src/etcd3-0.12.0")
    assert GO_CLIENTV3.install_dir(Path("/c")).name.startswith("goclient-v3.5.")


def test_goclient_stamp_is_the_sha256_scripts_peers_computes() -> None:
    src = ROOT / "tests" / "peers" / "goclient"
    shell = subprocess.run(
        ["sh", "-c", "cat main.go go.mod go.sum | sha256sum | cut -d' ' -f1"],
        cwd=src, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert goclient_stamp() == shell


def test_a_stale_or_missing_install_is_reported(tmp_path: Path) -> None:
    assert "is not installed" in (PYTHON_ETCD3.stale_reason(tmp_path) or "")
    install = PYTHON_ETCD3.install_dir(tmp_path)
    install.mkdir()
    (install / "stamp").write_text("etcd3==0.11.0;pytest==1.0.0\n")
    assert "other pins" in (PYTHON_ETCD3.stale_reason(tmp_path) or "")
    (install / "stamp").write_text(PYTHON_ETCD3.expected_stamp() + "\n")
    assert PYTHON_ETCD3.stale_reason(tmp_path) is None


def test_the_cluster_is_laid_out_as_pifpaf_lays_out_etcd(tmp_path: Path) -> None:
    cluster = runner.pifpaf_cluster(tmp_path, Kind.ETCD)
    assert [m.name for m in cluster.members] == ["pifpaf0", "pifpaf1", "pifpaf2"]
    assert cluster.members[0].endpoint == "127.0.0.1:2379"
    # the suites find members 1 and 2 with pgrep -f -- '--name pifpaf[12]'
    argv = " ".join(cluster.members[1].argv(cluster.initial_cluster(), "new", cluster.token))
    assert "--name pifpaf1 " in argv


def test_suite_environment_drops_what_would_mislead_the_suite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/work/tree")
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "http://elsewhere:2379")
    monkeypatch.setattr(runner, "reference_etcd_version", lambda: "v3.4.23")
    env = runner.suite_environment(PYTHON_ETCD3, "http://127.0.0.1:2379")
    assert "PYTHONPATH" not in env and "ETCDCTL_ENDPOINTS" not in env
    assert env["PYTHON_ETCD_HTTP_URL"] == "http://127.0.0.1:2379"
    assert env["TEST_ETCD_VERSION"] == "v3.4.23"
    assert env["ETCDCTL_API"] == "3"
    assert "TEST_ETCD_VERSION" not in runner.suite_environment(AETCD, "http://x:1")


def test_runs_get_their_own_loopback_and_process_table() -> None:
    reason = launch.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    probe = subprocess.run(
        launch.namespaced(["sh", "-c", "ip -o link show up | grep -c lo; ps -e | wc -l"]),
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()  # fmt: skip
    assert probe[0] == "1"  # the namespace's own loopback is up
    assert int(probe[1]) <= 5  # header, sh, ps, wc: nothing from outside
