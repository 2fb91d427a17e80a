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


def test_the_aws_endpoint_is_optional_and_validated() -> None:
    assert load(ROOT, "staging").aws.endpoint == ""
    text = _broken(
        "  region: eu-west-1\n", "  region: eu-west-1\n  endpoint: http://127.0.0.1:5000/\n"
    )
    assert parse(text, "staging.yaml").aws.endpoint == "http://127.0.0.1:5000"
    bad = _broken("  region: eu-west-1\n", "  region: eu-west-1\n  endpoint: 127.0.0.1:5000\n")
    with pytest.raises(
        EnvironmentConfigError, match=re.escape("aws.endpoint: '127.0.0.1:5000' is not an")
    ):
        parse(bad, "staging.yaml")


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
            _broken(STAGING[STAGING.index("git:\n") : STAGING.index("aws:\n")], "git: staging\n"),
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


def _hcl_string(value: object) -> str:
    """python-hcl2 keeps the quotes of string literals."""
    return str(value).strip('"')


@pytest.mark.parametrize("name", environments.ENVIRONMENTS)
def test_environment_agrees_with_its_terraform_root(name: str) -> None:
    """The pipeline and Terraform must name the same account, state, cluster and branch."""
    import hcl2  # noqa: PLC0415

    env = load(ROOT, name)
    root = ROOT / env.terraform.root
    with (root / "backend.tf").open() as handle:
        backend = hcl2.load(handle)["terraform"][0]["backend"][0]['"s3"']
    assert _hcl_string(backend["bucket"]) == env.terraform.backend.bucket
    assert _hcl_string(backend["key"]) == env.terraform.backend.key
    assert _hcl_string(backend["region"]) == env.terraform.backend.region
    with (root / "terraform.tfvars").open() as handle:
        tfvars = {k: _hcl_string(v) for k, v in hcl2.load(handle).items() if k != "__comments__"}
    assert tfvars["account_id"] == env.aws.account_id
    assert tfvars["region"] == env.aws.region
    assert tfvars["environment"] == env.name
    assert tfvars["deploy_branch"] == env.branch
    assert tfvars["ecr_repository_name"] == env.ecr_repository
    # The stack module names the cluster "<project>-<environment>".
    assert env.cluster_name == f"{tfvars.get('project', 'kvstore')}-{env.name}"


@pytest.mark.parametrize("name", environments.ENVIRONMENTS)
def test_environment_agrees_with_its_kubernetes_values(name: str) -> None:
    """The values file the promotion writes names the environment's ECR repository."""
    import yaml  # noqa: PLC0415

    env = load(ROOT, name)
    values = yaml.safe_load((ROOT / env.values_file).read_text())
    assert values["image"]["repository"] == env.image_repository


def test_environment_repository_is_the_one_argo_cd_syncs() -> None:
    import yaml  # noqa: PLC0415

    argocd = yaml.safe_load((ROOT / "deploy/kubernetes/argocd/values.yaml").read_text())
    for name in environments.ENVIRONMENTS:
        env = load(ROOT, name)
        assert env.repository == argocd["repoURL"]
        assert env.branch == argocd["environments"][name]["branch"]
        assert env.helm.namespace == argocd["environments"][name]["namespace"]
        assert env.argocd.application == f"kvstore-{name}"
