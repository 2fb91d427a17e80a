"""``terraform fmt`` holds for everything under deploy/terraform."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.tooling import ROOT, require_tool


def fmt_check(terraform: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_deploy_terraform_is_formatted() -> None:
    terraform = require_tool("terraform")
    result = fmt_check(terraform, ROOT / "deploy" / "terraform")
    assert result.returncode == 0, result.stdout + result.stderr


def test_fmt_check_rejects_unformatted_code(tmp_path: Path) -> None:
    terraform = require_tool("terraform")
    (tmp_path / "main.tf").write_text('variable "x" {\ntype=string\n}\n')
    assert fmt_check(terraform, tmp_path).returncode != 0
