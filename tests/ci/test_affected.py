"""Change detection on real git histories, and the rules as the one source of truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kvstore_ci.__main__ import main
from kvstore_ci.affected import (
    PIPELINE_PATHS,
    PIPELINES,
    AffectedError,
    affected,
    github_path_filters,
    pipelines_for,
)

from tests.ci.gitrepo import commit, git, init


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit holding a file of every kind the rules know."""
    path = init(tmp_path / "repo")
    commit(
        path,
        {
            "README.md": "kvstore\n",
            "kvstore/server.py": "x = 1\n",
            "deploy/terraform/envs/staging/main.tf": "",
            "deploy/kubernetes/charts/kvstore/Chart.yaml": "name: kvstore\n",
            "deploy/kubernetes/monitoring/rules.yaml": "groups: []\n",
            "docs/index.md": "docs\n",
        },
        "initial",
    )
    return path


def test_rules_by_path() -> None:
    assert pipelines_for(["deploy/terraform/modules/vpc/main.tf"]) == ["infrastructure"]
    assert pipelines_for(["Dockerfile"]) == ["application"]
    assert pipelines_for(["constraints.txt"]) == ["application"]
    assert pipelines_for(["deploy/kubernetes/environments/staging/values.yaml"]) == ["application"]
    assert pipelines_for(["deploy/kubernetes/monitoring/grafana/x.json"]) == ["monitoring"]
    # Prefixes are directories, not string prefixes; files elsewhere trigger nothing.
    assert pipelines_for(["kvstore-notes.md", "deploy/terraformish", "docs/x.md"]) == []
    assert pipelines_for(["ci/Dockerfile", "tests/pyproject.toml"]) == []
    assert pipelines_for(
        ["deploy/kubernetes/monitoring/a", "kvstore/x.py", "deploy/terraform/b"]
    ) == list(PIPELINES)


def test_github_filters_follow_the_rules() -> None:
    assert github_path_filters("infrastructure") == ["deploy/terraform/**"]
    app = github_path_filters("application")
    assert "kvstore/**" in app and "Dockerfile" in app
    assert len(app) == len(PIPELINE_PATHS["application"])


def test_each_pipeline_on_a_real_history(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    docs = commit(repo, {"docs/index.md": "more docs\n"}, "docs only")
    assert affected(repo, base, docs) == []
    infra = commit(repo, {"deploy/terraform/envs/staging/main.tf": "# x\n"}, "infra")
    assert affected(repo, docs, infra) == ["infrastructure"]
    chart = commit(repo, {"deploy/kubernetes/charts/kvstore/Chart.yaml": "v: 2\n"}, "chart")
    assert affected(repo, infra, chart) == ["application"]
    # A range covering several commits unions their pipelines.
    assert affected(repo, base, chart) == ["infrastructure", "application"]
    mon = commit(repo, {"deploy/kubernetes/monitoring/rules.yaml": None}, "drop rules")
    assert affected(repo, chart, mon) == ["monitoring"]


def test_rename_out_of_a_pipeline_triggers_it(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "mv", "kvstore/server.py", "docs/server.py")
    git(repo, "commit", "-q", "-m", "move")
    assert affected(repo, base, "HEAD") == ["application"]


def test_pull_request_range_ignores_changes_on_the_target_branch(repo: Path) -> None:
    """base...head: what the feature branch changed, not what landed on staging meanwhile."""
    git(repo, "branch", "feature")
    commit(repo, {"deploy/terraform/envs/staging/main.tf": "# on main\n"}, "infra on main")
    git(repo, "checkout", "-q", "feature")
    head = commit(repo, {"deploy/kubernetes/monitoring/rules.yaml": "groups: [1]\n"}, "mon")
    assert affected(repo, "main", head) == ["monitoring"]


def test_first_push_of_a_branch_runs_everything(repo: Path) -> None:
    assert affected(repo, "0" * 40, "HEAD") == list(PIPELINES)
    assert affected(repo, "", "HEAD") == list(PIPELINES)


def test_unknown_revision_is_a_clear_error(repo: Path) -> None:
    with pytest.raises(AffectedError, match="unknown revision 'deadbeef'"):
        affected(repo, "deadbeef", "HEAD")


def test_command_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = git(repo, "rev-parse", "HEAD")
    head = commit(repo, {"Dockerfile": "FROM scratch\n"}, "image")
    # Once as a real process, as a workflow step runs it...
    lines = subprocess.run(
        [sys.executable, "-m", "kvstore_ci", "affected", "--repo", str(repo), "--base", base],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (lines.returncode, lines.stdout) == (0, "application\n")
    # ...then in-process for the other output forms (importing the SDK takes seconds).
    common = ["affected", "--repo", str(repo), "--head", head]
    assert main([*common, "--base", base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "application": True,
        "infrastructure": False,
        "monitoring": False,
    }
    assert main([*common, "--base", "nope"]) == 2
    assert "unknown revision 'nope'" in capsys.readouterr().err
