"""The environment files load, and every broken field is reported by file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kvstore_ci import environments
from kvstore_ci.environments import EnvironmentConfigError, load, parse

ROOT = Path(__file__).resolve().parents[2]
STAGING = (ROOT / "deploy/environments/staging.yaml").read_text()


@pytest.mark.parametrize("name", environments.ENVIRONMENTS)
def test_committed_environments_load(name: str) -> None:
    env = load(ROOT, name)
    assert env.name == name
    assert env.terraform.root == f"deploy/terraform/envs/{name}"
    assert env.values_file == f"deploy/kubernetes/environments/{name}/values.yaml"
    assert env.registry == f"{env.aws.account_id}.dkr.ecr.{env.aws.region}.amazonaws.com"


def test_environments_differ_where_they_must() -> None:
    staging, production = load(ROOT, "staging"), load(ROOT, "production")
    assert (staging.branch, production.branch) == ("staging", "main")
    for attr in ("cluster_name",):
        assert getattr(staging, attr) != getattr(production, attr)
    assert staging.aws.account_id != production.aws.account_id
    assert staging.terraform.backend.key != production.terraform.backend.key
    assert staging.argocd.application != production.argocd.application


def _broken(old: str, new: str) -> str:
    assert old in STAGING, old
    return STAGING.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _broken('account_id: "111111111111"', "account_id: 111111111111"),
            "aws.account_id: must be a string (12 digits, quoted), got int",
        ),
        (
            _broken('account_id: "111111111111"', 'account_id: "1111"'),
            "aws.account_id: '1111' is not 12 digits",
        ),
        (_broken("  region: eu-west-1\neks:", "eks:"), "aws.region: missing"),
        (
            _broken("  region: eu-west-1\n", "  region: Europe\n"),
            "aws.region: 'Europe' is not an AWS region",
        ),
        (
            _broken("  cluster_name: kvstore-staging", "  cluster_nmae: kvstore-staging"),
            "eks.cluster_name: missing",
        ),
        (
            _broken("    bucket: kvstore", "    buckett: kvstore"),
            "terraform.backend.bucket: missing",
        ),
        (
            _broken("  release: kvstore\n", "  release: kvstore\n  releas: x\n"),
            "helm.releas: unknown field",
        ),
        (
            _broken("  server: https://argocd", "  server: argocd"),
            "argocd.server: 'argocd.staging.kvstore.internal' is not an http(s) URL",
        ),
        (
            _broken("git:\n  branch: staging", "git: staging"),
            "git: must be a mapping, got str 'staging'",
        ),
        (
            _broken("  root: deploy/terraform/envs/staging", "  root: /abs/path"),
            "terraform.root: '/abs/path' is not a path relative to the repository",
        ),
        ("name: [unclosed", "not valid YAML"),
        ("", "the file: must be a mapping, got nothing"),
    ],
)
def test_errors_name_file_and_field(text: str, message: str) -> None:
    with pytest.raises(EnvironmentConfigError) as info:
        parse(text, "deploy/environments/staging.yaml")
    assert str(info.value).startswith("deploy/environments/staging.yaml: ")
    assert message in str(info.value)


def test_name_must_match_file(tmp_path: Path) -> None:
    (tmp_path / "deploy/environments").mkdir(parents=True)
    (tmp_path / "deploy/environments/production.yaml").write_text(STAGING)
    with pytest.raises(EnvironmentConfigError, match=re.escape("name: is 'staging' but")):
        load(tmp_path, "production")


def test_missing_and_unknown_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentConfigError, match=r"production\.yaml: cannot read"):
        load(tmp_path, "production")
    with pytest.raises(EnvironmentConfigError, match="unknown environment 'qa'"):
        load(ROOT, "qa")
