"""Stage reports: failing tests named from a real pytest JUnit report, all lint failures listed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kvstore_ci.reports import (
    CheckResult,
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
