"""Fixtures of the Terraform tests: the parsed tree, and one checkov run per session."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.deploy.terraform import hcl
from tests.tooling import require_tool


@pytest.fixture(scope="session")
def directories() -> list[hcl.Directory]:
    """Every module and root under deploy/terraform, parsed."""
    return [hcl.load_directory(path) for path in hcl.terraform_directories()]


@pytest.fixture(scope="session")
def checkov_report() -> dict[str, Any]:
    """checkov's JSON report over deploy/terraform.

    Run once per session: a scan takes 5-20 seconds. ``--skip-download`` keeps it offline
    (checkov otherwise fetches guidelines from Prisma Cloud and retries for a while).
    """
    checkov = require_tool("checkov")
    result = subprocess.run(
        [
            checkov,
            "--directory",
            str(hcl.TERRAFORM_ROOT),
            "--framework",
            "terraform",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    # Exit status 1 means failed checks; the report then says which.
    assert result.returncode in (0, 1), result.stderr[-4000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    (terraform,) = [r for r in reports if r.get("check_type") == "terraform"]
    parsed: dict[str, Any] = terraform
    return parsed
