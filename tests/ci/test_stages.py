"""How lint and test turn finished containers into one result, without an engine.

Stand-in: the containers here are small objects answering ``exit_code``, ``stdout``,
``stderr`` and ``file().contents()`` the way a finished Dagger container does, because
no engine can run here; the JUnit text is a real pytest report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import cast

import anyio
import dagger
import pytest
from kvstore_ci import stages
from kvstore_ci.reports import StageFailed


class FinishedFile:
    def __init__(self, text: str) -> None:
        self.text = text

    async def contents(self) -> str:
        return self.text


class FinishedContainer:
    """A container whose last exec has finished with ``code``."""

    def __init__(self, code: int, out: str = "", err: str = "", delay: float = 0) -> None:
        self.code, self.out, self.err, self.delay = code, out, err, delay
        self.awaited = False

    async def exit_code(self) -> int:
        await anyio.sleep(self.delay)
        self.awaited = True
        return self.code

    async def stdout(self) -> str:
        return self.out

    async def stderr(self) -> str:
        return self.err

    def file(self, path: str) -> FinishedFile:
        assert path == stages.JUNIT_REPORT
        return FinishedFile(self.out)


def check(name: str, container: FinishedContainer) -> stages.Check:
    return stages.Check(name, (name, "."), cast(dagger.Container, container))


def test_every_check_runs_and_every_failure_is_reported() -> None:
    containers = {
        "ruff-check": FinishedContainer(1, "a.py:1:1: F401 unused"),
        "mypy": FinishedContainer(0, "Success", delay=0.05),
        "helm-lint-staging": FinishedContainer(1, "", "[ERROR] values.yaml", delay=0.02),
    }
    checks = [check(name, c) for name, c in containers.items()]
    with pytest.raises(StageFailed) as caught:
        anyio.run(stages.run_checks, "lint", checks)
    text = str(caught.value)
    assert all(c.awaited for c in containers.values())
    assert text.splitlines()[0] == "lint: 1 of 3 checks passed"
    assert "a.py:1:1: F401 unused" in text
    assert "[ERROR] values.yaml" in text
    assert text.splitlines()[-1].startswith("  what to do: fix what each failing tool reports")
    # reported in the order the checks are declared, not the order they finish
    assert text.index("ruff-check") < text.index("mypy") < text.index("helm-lint-staging")


def test_all_green_returns_the_summary() -> None:
    checks = [check("ruff-check", FinishedContainer(0)), check("mypy", FinishedContainer(0))]
    assert anyio.run(stages.run_checks, "lint", checks) == (
        "lint: 2 of 2 checks passed\n"
        "  ok   ruff-check: ruff-check . (exit 0)\n"
        "  ok   mypy: mypy . (exit 0)"
    )


def test_failed_test_run_names_the_failing_tests(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        "def test_good():\n    pass\n\ndef test_bad():\n    assert 0\n"
    )
    report = tmp_path / "junit.xml"
    code = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    ).returncode
    ran = cast(dagger.Container, FinishedContainer(code, report.read_text()))
    with pytest.raises(
        StageFailed, match=r"1 test\(s\) failed \(pytest exit 1\):\n  test_x::test_bad"
    ):
        anyio.run(stages.run_tests, ran)


def test_green_test_run_returns_the_report() -> None:
    ran = FinishedContainer(0, "<testsuites/>")
    report = anyio.run(stages.run_tests, cast(dagger.Container, ran))
    assert anyio.run(report.contents) == "<testsuites/>"
