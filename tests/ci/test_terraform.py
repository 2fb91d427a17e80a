"""The terraform commands of the pipeline, run for real with the terraform on PATH.

The root here uses only Terraform's built-in ``terraform_data`` resource and a local state,
so it needs no provider download and no AWS: what is tested is what the stages rely on,
namely the ``-detailed-exitcode`` meanings, applying exactly a saved plan, and Terraform's
refusal of a stale plan, which the pipeline explains.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from kvstore_ci.environments import load
from kvstore_ci.terraform import (
    TerraformError,
    apply_args,
    endpoint_variables,
    explain_apply_failure,
    init_args,
    plan_args,
    plan_file_name,
    plan_outcome,
    plan_summary,
    show_args,
)

from tests.tooling import ROOT, require_tool

MAIN_TF = """
variable "size" {
  type = number
}

resource "terraform_data" "this" {
  input = var.size
}

output "size" {
  value = terraform_data.this.output
}
"""


def run(root: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    terraform = require_tool("terraform")
    return subprocess.run(
        [terraform, *args[1:]],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "main.tf").write_text(MAIN_TF)
    (tmp_path / "terraform.tfvars").write_text("size = 1\n")
    init = run(tmp_path, ["terraform", "init", "-input=false", "-no-color"])
    assert init.returncode == 0, init.stderr
    return tmp_path


def test_init_uses_the_environment_backend() -> None:
    env = load(ROOT, "staging")
    args = init_args(env)
    assert args[:3] == ["terraform", "init", "-input=false"]
    assert f"-backend-config=bucket={env.terraform.backend.bucket}" in args
    assert f"-backend-config=key={env.terraform.backend.key}" in args
    assert f"-backend-config=region={env.terraform.backend.region}" in args
    assert "-backend-config=use_path_style=true" not in args
    assert endpoint_variables(env) == {}


def test_an_aws_endpoint_reaches_the_backend_and_the_provider() -> None:
    env = load(ROOT, "staging")
    local = replace(env, aws=replace(env.aws, endpoint="http://127.0.0.1:5000"))
    assert "-backend-config=use_path_style=true" in init_args(local)
    assert endpoint_variables(local) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5000",
    }


def test_plan_apply_cycle_and_exit_codes(root: Path) -> None:
    plan = run(root, plan_args("staging"))
    outcome = plan_outcome(plan.returncode, plan.stderr)
    assert (outcome.exit_code, outcome.changes, outcome.meaning) == (2, True, "changes to apply")
    assert (root / plan_file_name("staging")).is_file()
    shown = run(root, show_args("staging"))
    assert plan_summary(shown.stdout) == "Plan: 1 to add, 0 to change, 0 to destroy."
    assert "terraform_data.this" in shown.stdout

    applied = run(root, apply_args("staging"))
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete! Resources: 1 added" in applied.stdout

    again = run(root, plan_args("staging"))
    assert plan_outcome(again.returncode, again.stderr).changes is False
    assert plan_summary(run(root, show_args("staging")).stdout).startswith("No changes.")


def test_plan_error_is_surfaced(root: Path) -> None:
    (root / "terraform.tfvars").write_text('size = "not a number"\n')
    plan = run(root, plan_args("staging"))
    assert plan.returncode == 1
    with pytest.raises(TerraformError, match=r"(?s)terraform plan failed \(exit 1\): .*var\.size"):
        plan_outcome(plan.returncode, plan.stderr)


def test_stale_plan_is_refused_and_explained(root: Path) -> None:
    """Plan A is reviewed; meanwhile plan B is applied; applying A must be refused."""
    reviewed = run(root, plan_args("staging"))
    assert reviewed.returncode == 2
    (root / "reviewed.tfplan").write_bytes((root / plan_file_name("staging")).read_bytes())

    (root / "terraform.tfvars").write_text("size = 2\n")
    assert run(root, plan_args("staging")).returncode == 2
    assert run(root, apply_args("staging")).returncode == 0

    (root / plan_file_name("staging")).write_bytes((root / "reviewed.tfplan").read_bytes())
    stale = run(root, apply_args("staging"))
    assert stale.returncode != 0
    message = explain_apply_failure("staging", stale.returncode, stale.stdout + stale.stderr)
    assert message.startswith("the staging plan is stale: the state changed after it was made")
    assert "Run terraform-plan again" in message
    state = run(root, ["terraform", "output", "-raw", "size"])
    assert state.stdout == "2", "the stale plan changed nothing"


def test_other_apply_failures_keep_terraform_output() -> None:
    message = explain_apply_failure("production", 1, "Error: AccessDenied: not authorized")
    assert message == (
        "terraform apply of the production plan failed (exit 1):\n"
        "Error: AccessDenied: not authorized"
    )
