"""Each environment's rendering of the chart passes helm lint, Kubernetes' schemas and checkov."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.rendering import (
    CHART,
    ENVIRONMENTS,
    KUBE_VERSION,
    NAMESPACE,
    env_values,
    helm,
    parse,
    render_text,
)
from tests.tooling import ROOT, require_tool


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict (unknown fields are errors) for KUBE_VERSION."""
    binary = require_tool("kubernetes-validate")
    return subprocess.run(
        [binary, "--strict", "--quiet", "-k", KUBE_VERSION, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def checkov(directory: Path) -> dict[str, Any]:
    """checkov's kubernetes results for ``directory`` as JSON (offline: --skip-download)."""
    binary = require_tool("checkov")
    result = subprocess.run(
        [
            binary,
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.stdout.strip(), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_helm_lint_strict(env: str) -> None:
    result = helm(
        [
            "lint",
            "--strict",
            str(CHART),
            "--kube-version",
            KUBE_VERSION,
            "--namespace",
            NAMESPACE,
            "--values",
            str(env_values(env)),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendering_matches_the_kubernetes_schemas(env: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{env}.yaml"
    rendered.write_text(render_text(values=[env_values(env)]))
    result = kubernetes_validate(rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The strict check is not vacuous: a misspelt field in a real rendering fails it."""
    docs = parse(render_text(values=[env_values("staging")]))
    for doc in docs:
        if doc["kind"] == "StatefulSet":
            doc["spec"]["podManagmentPolicy"] = doc["spec"].pop("podManagementPolicy")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    result = kubernetes_validate(broken)
    assert result.returncode != 0
    assert "podManagmentPolicy" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def checkov_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over every environment's rendering (checkov takes seconds to start)."""
    directory = tmp_path_factory.mktemp("rendered")
    for env in ENVIRONMENTS:
        (directory / f"{env}.yaml").write_text(render_text(values=[env_values(env)]))
    results: dict[str, Any] = checkov(directory)["results"]
    return results


@pytest.mark.slow
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_checkov_finds_nothing_but_reasoned_skips(
    env: str, checkov_results: dict[str, Any]
) -> None:
    def mine(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in checks if c["file_path"].endswith(f"/{env}.yaml")]

    failed = [(c["check_id"], c["resource"]) for c in mine(checkov_results["failed_checks"])]
    assert failed == []
    assert len(mine(checkov_results["passed_checks"])) > 100, "checkov checked (almost) nothing"
    for skipped in mine(checkov_results["skipped_checks"]):
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} skipped without a reason"


@pytest.mark.slow
def test_checkov_flags_a_privileged_member(tmp_path: Path) -> None:
    """The scan is not vacuous: the same rendering with a privileged container fails it."""
    docs = parse(render_text(values=[env_values("staging")]))
    for doc in docs:
        if doc["kind"] == "StatefulSet":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["securityContext"]["privileged"] = True
            container["securityContext"]["allowPrivilegeEscalation"] = True
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump_all(docs))
    failed = {c["check_id"] for c in checkov(tmp_path)["results"]["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= failed


def test_yamllint_on_values_and_manifests() -> None:
    """Plain YAML files (not templates) are well-formed and consistently indented."""
    binary = require_tool("yamllint")
    kube = ROOT / "deploy" / "kubernetes"
    files = [
        *sorted((kube / "environments").rglob("*.yaml")),
        *sorted((kube / "monitoring").rglob("*.yaml")),
        *sorted(kube.glob("argocd/values*.yaml")),
        CHART / "values.yaml",
        CHART / "Chart.yaml",
    ]
    config = (
        "{extends: default, rules: {line-length: {max: 200}, document-start: disable,"
        " truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}}}"
    )
    result = subprocess.run(
        [binary, "--strict", "-d", config, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
