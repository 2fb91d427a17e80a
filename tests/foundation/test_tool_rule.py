"""The suite's rule for missing tools: skip locally, fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tooling import ROOT

NEEDS_MISSING_TOOL = """
from tests.tooling import require_tool

def test_needs_tool() -> None:
    require_tool("kvstore-no-such-tool-anywhere")
"""


def run_inner(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(NEEDS_MISSING_TOOL)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )


def test_missing_tool_skips_outside_ci(tmp_path: Path) -> None:
    result = run_inner(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "kvstore-no-such-tool-anywhere is not installed" in result.stdout + result.stderr


@pytest.mark.parametrize("value", ["true", "1"])
def test_missing_tool_fails_in_ci(tmp_path: Path, value: str) -> None:
    result = run_inner(tmp_path, ci=value)
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout
    assert "kvstore-no-such-tool-anywhere is not installed" in result.stdout
