"""Stage reports: failing tests named from a real pytest JUnit report, all lint failures listed."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from dagger.mod import default_module
from kvstore_ci.reports import (
    CheckResult,
    CommandFailed,
    OperationFailed,
    StageFailed,
    failing_tests,
    failure_message,
    stage_failures,
    summary,
)

SUITE = """
import pytest

def test_passes():
    assert 1 + 1 == 2

def test_fails():
    assert [1, 2] == [1, 3]

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_errors(broken):
    pass

class TestGroup:
    def test_fails_in_class(self):
        raise ValueError("nope")

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
"""


def junit_of(tmp_path: Path, source: str) -> tuple[int, str]:
    """Run pytest for real on ``source`` and return its exit code and JUnit XML."""
    (tmp_path / "test_sample.py").write_text(source)
    report = tmp_path / "junit.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "-o",
            "filterwarnings=",
            str(tmp_path / "test_sample.py"),
        ],
        capture_output=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    return run.returncode, report.read_text()


def test_failing_tests_are_named_from_pytests_junit(tmp_path: Path) -> None:
    code, xml = junit_of(tmp_path, SUITE)
    assert code == 1
    assert failing_tests(xml) == [
        "test_sample::test_fails",
        "test_sample::test_errors",
        "test_sample.TestGroup::test_fails_in_class",
    ]
    message = failure_message(code, failing_tests(xml))
    assert message.startswith("3 test(s) failed (pytest exit 1):")
    assert "  test_sample.TestGroup::test_fails_in_class" in message
    assert message.splitlines()[-1] == (
        "  what to do: run them locally (e.g. ./scripts/test -k test_fails) and fix them"
    )


def test_a_green_report_names_nothing(tmp_path: Path) -> None:
    code, xml = junit_of(tmp_path, "def test_ok():\n    assert True is not False\n")
    assert code == 0
    assert failing_tests(xml) == []
    assert "names no failing test" in failure_message(5, [])


def test_summary_lists_every_failure_with_its_output() -> None:
    results = [
        CheckResult("ruff-check", ("ruff", "check", "."), 1, "a.py:1:1: F401 unused import"),
        CheckResult("mypy", ("mypy", "--strict"), 0, "Success"),
        CheckResult("helm-lint", ("helm", "lint", "."), 1, "[ERROR] Chart.yaml: version"),
    ]
    text = summary("lint", results)
    assert text.splitlines()[0] == "lint: 1 of 3 checks passed"
    assert "  FAIL ruff-check: ruff check . (exit 1)" in text
    assert "  ok   mypy: mypy --strict (exit 0)" in text
    assert "--- ruff-check ---\na.py:1:1: F401 unused import" in text
    assert "--- helm-lint ---\n[ERROR] Chart.yaml: version" in text
    assert "Success" not in text  # a passing tool's output is not noise in the error


def test_long_output_keeps_its_end() -> None:
    long = "x" * 20000 + "THE ERROR"
    text = summary("lint", [CheckResult("t", ("t",), 2, long)])
    assert text.endswith("THE ERROR")
    assert len(text) < 9000


def test_stage_failures_keep_every_stage_in_order() -> None:
    text = stage_failures(
        {"build": "no Dockerfile", "lint": "ruff failed"}, ("lint", "test", "build")
    )
    assert text == "== lint failed ==\nruff failed\n\n== build failed ==\nno Dockerfile"


def test_a_failed_command_reads_stage_command_exit_code_output_tail_and_what_to_do() -> None:
    output = "\n".join(f"line {i}" for i in range(100)) + "\nError: the real cause"
    failed = CommandFailed(
        "helm-upgrade",
        ["helm", "upgrade", "kvstore", "charts/kvstore", "--set", "a=b c"],
        1,
        output,
        meaning="the upgrade failed",
        advice="read helm's output",
    )
    lines = str(failed).splitlines()
    assert lines[0] == "helm-upgrade: the upgrade failed (exit 1)"
    assert lines[1] == "  command: helm upgrade kvstore charts/kvstore --set 'a=b c'"
    assert lines[-2] == "    Error: the real cause", "the tail, where tools say why"
    assert "    line 0" not in lines, "only the tail"
    assert lines[-1] == "  what to do: read helm's output"
    assert failed.extra == {
        "stage": "helm-upgrade",
        "command": ["helm", "upgrade", "kvstore", "charts/kvstore", "--set", "a=b c"],
        "exitCode": 1,
    }


def test_a_refused_operation_says_what_to_do_even_without_advice() -> None:
    text = str(OperationFailed("build", "sync", "pull access denied"))
    assert text.splitlines()[0] == "build: sync failed"
    assert "    pull access denied" in text.splitlines()
    assert text.splitlines()[-1].startswith("  what to do: ")


def test_the_module_runtime_reports_a_stage_error_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK logs a traceback for any exception but its own FunctionError (ours)."""

    def stage() -> None:
        raise StageFailed("lint: 7 of 8 checks passed")

    def bug() -> None:
        raise RuntimeError("a bug")

    module = default_module()
    with caplog.at_level(logging.ERROR):
        with pytest.raises(StageFailed, match=r"^lint: 7 of 8 checks passed$"):
            anyio.run(module.call, stage)
        assert not caplog.records, "a stage error is reported as its message alone"
        with pytest.raises(Exception, match="a bug"):
            anyio.run(module.call, bug)
    assert any(r.exc_info for r in caplog.records), "what any other exception gets"
