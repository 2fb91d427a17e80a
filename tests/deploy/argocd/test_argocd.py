"""The Argo CD app of apps: valid objects, a closed project, each environment's sync policy."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart.test_lint_and_scan import kubernetes_validate
from tests.deploy.crd_schemas import errors
from tests.deploy.rendering import (
    ARGOCD_CHART,
    ENVIRONMENTS,
    KUBERNETES,
    Manifest,
    helm,
    of_kind,
    one,
    render,
)
from tests.tooling import ROOT

VALUES = yaml.safe_load((ARGOCD_CHART / "values.yaml").read_text())
REPO_URL: str = VALUES["repoURL"]
WAVE_ORDER = [
    ("AppProject", "kvstore"),
    ("Application", "kvstore-root"),
    ("Application", "kvstore-cluster"),
    ("Application", "kube-prometheus-stack"),
    ("Application", "jaeger"),
    ("Application", "otel-collector"),
    ("Application", "kvstore-monitoring"),
]


def render_env(env: str) -> list[Manifest]:
    return render(
        ARGOCD_CHART,
        [ARGOCD_CHART / "values.yaml", ARGOCD_CHART / f"values-{env}.yaml"],
        release="kvstore-argocd",
        namespace="argocd",
    )


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def env_and_objects(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    return request.param, render_env(request.param)


def sources(app: Manifest) -> list[dict[str, Any]]:
    spec = app["spec"]
    return list(spec["sources"]) if "sources" in spec else [spec["source"]]


def test_every_object_matches_its_crd_schema(env_and_objects: tuple[str, list[Manifest]]) -> None:
    _, objects = env_and_objects
    assert {m["kind"] for m in objects} == {"AppProject", "Application"}
    for manifest in objects:
        assert errors(manifest) == [], manifest["metadata"]["name"]


def test_the_schema_rejects_a_misspelt_sync_policy() -> None:
    app = copy.deepcopy(one(render_env("staging"), "Application", "kvstore-staging"))
    app["spec"]["syncPolicy"]["automated"]["selfheal"] = True
    assert any("selfheal" in e for e in errors(app))


def test_staging_syncs_itself_with_prune_and_self_heal() -> None:
    for app in of_kind(render_env("staging"), "Application"):
        automated = app["spec"]["syncPolicy"]["automated"]
        assert automated == {"prune": True, "selfHeal": True}, app["metadata"]["name"]


def test_production_workloads_sync_only_when_asked() -> None:
    apps = {a["metadata"]["name"]: a for a in of_kind(render_env("production"), "Application")}
    assert "automated" not in apps["kvstore-production"]["spec"]["syncPolicy"]
    for name in ("kube-prometheus-stack", "jaeger", "otel-collector", "kvstore-monitoring"):
        assert "automated" not in apps[name]["spec"]["syncPolicy"], name
    # The root only manages Application objects, so it follows git in every environment.
    assert apps["kvstore-root"]["spec"]["syncPolicy"]["automated"]["selfHeal"] is True


def test_applications_stay_inside_the_project(env_and_objects: tuple[str, list[Manifest]]) -> None:
    _, objects = env_and_objects
    project = one(objects, "AppProject")
    repos = set(project["spec"]["sourceRepos"])
    destinations = {(d["server"], d["namespace"]) for d in project["spec"]["destinations"]}
    for app in of_kind(objects, "Application"):
        assert app["spec"]["project"] == project["metadata"]["name"]
        dest = app["spec"]["destination"]
        assert (dest["server"], dest["namespace"]) in destinations, app["metadata"]["name"]
        for source in sources(app):
            assert source["repoURL"] in repos
    assert "*" not in repos
    assert all(d["namespace"] != "*" for d in project["spec"]["destinations"])


def test_project_allows_only_the_needed_cluster_kinds(
    env_and_objects: tuple[str, list[Manifest]],
) -> None:
    project = one(env_and_objects[1], "AppProject")
    kinds = {(k["group"], k["kind"]) for k in project["spec"]["clusterResourceWhitelist"]}
    assert ("*", "*") not in kinds
    assert ("apiextensions.k8s.io", "CustomResourceDefinition") in kinds
    assert ("", "Namespace") in kinds


def test_sync_waves_put_crds_before_their_users(
    env_and_objects: tuple[str, list[Manifest]],
) -> None:
    env, objects = env_and_objects

    def wave(kind: str, name: str) -> int:
        return int(
            one(objects, kind, name)["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        )

    waves = [wave(kind, name) for kind, name in WAVE_ORDER]
    assert waves == sorted(waves) and len(set(waves)) == len(waves)
    assert wave("Application", f"kvstore-{env}") > waves[-1]


def test_the_store_application_matches_the_pipelines_environment_file(
    env_and_objects: tuple[str, list[Manifest]],
) -> None:
    """Name, release, namespace and branch agree with deploy/environments/<env>.yaml."""
    env, objects = env_and_objects
    pipeline = yaml.safe_load((ROOT / "deploy" / "environments" / f"{env}.yaml").read_text())
    app = one(objects, "Application", pipeline["argocd"]["application"])
    source = app["spec"]["source"]
    assert source["targetRevision"] == pipeline["git"]["branch"]
    assert source["helm"]["releaseName"] == pipeline["helm"]["release"]
    assert app["spec"]["destination"]["namespace"] == pipeline["helm"]["namespace"]


def test_every_path_and_values_file_exists_in_the_repository(
    env_and_objects: tuple[str, list[Manifest]],
) -> None:
    _, objects = env_and_objects
    for app in of_kind(objects, "Application"):
        for source in sources(app):
            if source["repoURL"] != REPO_URL:
                assert source["chart"] and source["targetRevision"][0].isdigit(), (
                    "pin upstream charts"
                )
                for values_file in source["helm"]["valueFiles"]:
                    assert values_file.startswith("$values/")
                    assert (ROOT / values_file.removeprefix("$values/")).is_file(), values_file
                continue
            if "path" in source:
                path = ROOT / source["path"]
                assert path.is_dir(), source["path"]
                for values_file in source.get("helm", {}).get("valueFiles", []):
                    assert (path / values_file).resolve().is_file(), values_file


def test_the_repository_url_is_written_once() -> None:
    """Forks change one line: every other mention of the URL comes from values.yaml."""
    # Read the files directly (not `git grep`): the test stage runs without .git.
    holders = sorted(
        str(path.relative_to(ROOT))
        for path in (KUBERNETES / "argocd").rglob("*")
        if path.is_file() and REPO_URL in path.read_text(errors="replace")
    )
    assert holders == ["deploy/kubernetes/argocd/values.yaml"]


def test_an_unknown_environment_fails_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "values-qa.yaml"
    bad.write_text("environment: qa\n")
    result = helm(["template", "x", str(ARGOCD_CHART), "--values", str(bad)])
    assert result.returncode != 0
    assert 'environment must be one of production, staging (got "qa")' in result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_helm_lint_strict(env: str) -> None:
    values = ARGOCD_CHART / f"values-{env}.yaml"
    result = helm(["lint", "--strict", str(ARGOCD_CHART), "--values", str(values)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_storage_class_every_volume_claims_is_synced_first() -> None:
    cluster = KUBERNETES / "cluster"
    classes = [m for p in cluster.glob("*.yaml") for m in yaml.safe_load_all(p.read_text())]
    names = {m["metadata"]["name"] for m in classes if m["kind"] == "StorageClass"}
    for env in ENVIRONMENTS:
        chart_values = yaml.safe_load(
            (KUBERNETES / "environments" / env / "values.yaml").read_text()
        )
        assert chart_values["persistence"]["storageClassName"] in names, env
        app = one(render_env(env), "Application", "kvstore-cluster")
        assert app["spec"]["source"]["path"] == "deploy/kubernetes/cluster"
    gp3 = next(m for m in classes if m["metadata"]["name"] == "gp3")
    assert gp3["provisioner"] == "ebs.csi.aws.com"
    assert gp3["parameters"]["encrypted"] == "true"
    assert gp3["volumeBindingMode"] == "WaitForFirstConsumer"


def test_cluster_objects_are_valid_kubernetes() -> None:
    result = kubernetes_validate(KUBERNETES / "cluster" / "storageclass-gp3.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
