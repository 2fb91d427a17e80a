"""The GitHub Actions workflows are thin callers of the Dagger module, and safe.

Each rule here is one a reviewer would otherwise have to remember: only `dagger call` does
pipeline work, every call names real functions and arguments, actions are pinned by commit,
jobs have least permissions and timeouts, deploys never overlap, and path filters agree with
the module's change-detection rules.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kvstore_ci.affected import PIPELINES, github_path_filters

from tests.tooling import ROOT, require_tool
from tests.workflows.dagger_calls import check_call

WORKFLOWS = ROOT / ".github" / "workflows"
DAGGER_ACTION = "./.github/actions/dagger"
ALLOWED_ACTIONS = {
    "actions/checkout",
    "aws-actions/configure-aws-credentials",
    "actions/upload-artifact",
    "marocchino/sticky-pull-request-comment",
}
SHA_PIN = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})$")
# Workflows whose changes-triggered runs belong to one pipeline of kvstore_ci.affected.
PIPELINE_WORKFLOWS = {
    "infrastructure": "infrastructure.yml",
    "application": "application.yml",
    "monitoring": "monitoring.yml",
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=yaml.BaseLoader)
    return data


def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files, "no workflows"
    return files


def all_steps() -> list[tuple[str, str, dict[str, Any]]]:
    steps = []
    for path in workflow_files():
        for job_name, job in load(path)["jobs"].items():
            steps += [(path.name, job_name, step) for step in job.get("steps", [])]
    return steps


def dispatch_choices(path: Path) -> dict[str, list[str]]:
    on = load(path)["on"]
    inputs = (on.get("workflow_dispatch") or {}).get("inputs") or {}
    return {name: spec.get("options", []) for name, spec in inputs.items() if "options" in spec}


def expand(call: str, choices: dict[str, list[str]]) -> list[str]:
    """Every concrete call a templated call can become, from the dispatch input choices."""
    calls = [call]
    for name, options in choices.items():
        marker = "${{ inputs." + name + " }}"
        if any(marker in c for c in calls):
            calls = [c.replace(marker, option) for c in calls for option in options]
    return calls


def test_actionlint_is_clean() -> None:
    actionlint = require_tool("actionlint")
    result = subprocess.run(
        [actionlint, "-color=false", *map(str, workflow_files())],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_steps_only_check_out_authenticate_call_dagger_or_upload() -> None:
    for workflow, job, step in all_steps():
        where = f"{workflow} job {job} step {step.get('name') or step.get('uses')}"
        assert "run" not in step, f"{where}: runs a shell command; call a Dagger function instead"
        uses = step.get("uses", "")
        if uses == DAGGER_ACTION:
            continue
        assert uses.split("@")[0] in ALLOWED_ACTIONS, f"{where}: action {uses} is not allowed"


def test_every_dagger_call_names_real_functions_and_arguments() -> None:
    problems = []
    checked = 0
    for path in workflow_files():
        choices = dispatch_choices(path)
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses") != DAGGER_ACTION:
                    continue
                for templated in expand(step["with"]["call"], choices):
                    # Any other expression (a commit, a free-text input) becomes a plain value.
                    call = re.sub(r"\$\{\{[^}]*\}\}", "X", templated)
                    checked += 1
                    problems += [f"{path.name}: {p}" for p in check_call(call)]
    assert checked >= 6
    assert not problems, "\n".join(problems)


def test_the_call_checker_catches_mistakes() -> None:
    assert check_call("no-such-stage")
    assert any("no argument --nope" in str(p) for p in check_call("python-base --nope=1"))
    assert not check_call("python-base")
    missing = " ".join(map(str, check_call("deploy --env=staging")))
    assert "needs --revision" in missing
    assert "needs --aws-access-key-id" in missing
    plain_secret = check_call(
        "terraform-plan --env=staging --aws-access-key-id=AKIA123 "
        "--aws-secret-access-key=env://S text"
    )
    assert [str(p) for p in plain_secret] == [
        "`dagger call terraform-plan --env=staging --aws-access-key-id=AKIA123 "
        "--aws-secret-access-key=env://S text`: --aws-access-key-id is a Secret and must be "
        "given as env://..."
    ]
    assert check_call(
        "terraform-plan --env=s --aws-access-key-id=env://A "
        "--aws-secret-access-key=env://S no-such-field"
    )


def test_actions_are_pinned_to_a_commit_with_the_version_in_a_comment() -> None:
    sources = [*workflow_files(), ROOT / ".github" / "actions" / "dagger" / "action.yml"]
    for path in sources:
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not m or m.group(1).startswith("./"):
                continue
            assert SHA_PIN.match(m.group(1)), f"{path.name}: {m.group(1)} is not pinned by SHA"
            assert re.search(r"#\s*v\d+(\.\d+)*", m.group(2)), f"{path.name}: {line.strip()}"


def test_dagger_cli_version_is_pinned_once_and_matches_dagger_json() -> None:
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]
    action = load(ROOT / ".github" / "actions" / "dagger" / "action.yml")
    versions = [
        s["with"]["version"] for s in action["runs"]["steps"] if "dagger-for-github" in s["uses"]
    ]
    assert versions == [engine]
    for path in workflow_files():
        assert "dagger-for-github" not in path.read_text(), f"{path.name} bypasses the action"


def test_jobs_have_least_permissions_and_timeouts() -> None:
    for path in workflow_files():
        workflow = load(path)
        assert workflow.get("permissions") in ({}, "{}"), f"{path.name}: default permissions"
        for name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name} job {name} has no permissions"
            assert "timeout-minutes" in job, f"{path.name} job {name} has no timeout"
            perms = job["permissions"] or {}
            assert "write-all" not in str(perms)
            oidc = perms.get("id-token") == "write"
            uses_aws = any(
                "configure-aws-credentials" in s.get("uses", "") for s in job.get("steps", [])
            )
            assert oidc == uses_aws, f"{path.name} job {name}: id-token: write iff it uses AWS"


def test_aws_credentials_come_from_oidc_and_reach_dagger_as_secrets() -> None:
    for workflow, job, step in all_steps():
        if "configure-aws-credentials" in step.get("uses", ""):
            given = step.get("with", {})
            assert "role-to-assume" in given, f"{workflow} {job}: not OIDC"
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(given)
        if step.get("uses") == DAGGER_ACTION:
            call = step["with"]["call"]
            for m in re.finditer(r"--([\w-]*(?:key|token|password)[\w-]*)=(\S+)", call):
                assert m.group(2).startswith("env://"), f"{workflow} {job}: --{m.group(1)}"


def test_deploy_jobs_use_an_environment_and_never_overlap() -> None:
    deploys = 0
    for path in workflow_files():
        for name, job in load(path)["jobs"].items():
            if "environment" not in job:
                continue
            deploys += 1
            env = job["environment"]
            env_name = env["name"] if isinstance(env, dict) else env
            group = (job.get("concurrency") or {}).get("group", "")
            # One group per environment across all workflows: an apply and a deploy of the
            # same environment queue behind each other instead of racing.
            assert group == f"deploy-{env_name}", f"{path.name} job {name}: group {group!r}"
            assert (job.get("concurrency") or {}).get("cancel-in-progress") == "false"
    assert deploys >= 4


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_path_filters_agree_with_the_affected_rules(pipeline: str) -> None:
    workflow = load(WORKFLOWS / PIPELINE_WORKFLOWS[pipeline])
    want = sorted(github_path_filters(pipeline))
    for event in ("push", "pull_request"):
        spec = workflow["on"].get(event)
        if spec is None:
            continue
        assert sorted(spec.get("paths", [])) == want, f"{pipeline} {event} paths"
