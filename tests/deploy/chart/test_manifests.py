"""What the rendered chart promises a consensus store: names, quorum, probes, isolation, labels."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.rendering import (
    CHART,
    ENVIRONMENTS,
    Manifest,
    env_values,
    helm,
    of_kind,
    one,
    render,
    render_env,
    template_args,
)

SELECTOR = {"app.kubernetes.io/name": "kvstore", "app.kubernetes.io/instance": "kvstore"}
STANDARD_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
}


def pod_spec(sts: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = sts["spec"]["template"]["spec"]
    return spec


def container(sts: Manifest) -> dict[str, Any]:
    first: dict[str, Any] = pod_spec(sts)["containers"][0]
    return first


def env_of(sts: Manifest) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container(sts)["env"]}


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render_env(request.param)


def test_statefulset_is_shaped_for_consensus(rendered: list[Manifest]) -> None:
    sts = one(rendered, "StatefulSet")
    headless = one(rendered, "Service", "kvstore-headless")
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == "kvstore-headless"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    client = one(rendered, "Service", "kvstore")
    assert client["spec"].get("publishNotReadyAddresses") is not True
    assert [p["name"] for p in client["spec"]["ports"]] == ["client"]
    (vct,) = sts["spec"]["volumeClaimTemplates"]
    assert (vct["apiVersion"], vct["kind"], vct["metadata"]["name"]) == (
        "v1",
        "PersistentVolumeClaim",
        "data",
    )
    assert "labels" not in vct["metadata"], "labels would change the immutable template on upgrades"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Delete",
    }


def test_image_is_pinned_by_the_environments_digest() -> None:
    for env in ENVIRONMENTS:
        values = yaml.safe_load(env_values(env).read_text())
        sts = one(render_env(env), "StatefulSet")
        image = f"{values['image']['repository']}@{values['image']['digest']}"
        assert container(sts)["image"] == image
        assert all(c["image"] == image for m in render_env(env) for c in pods(m)), env


def pods(manifest: Manifest) -> list[dict[str, Any]]:
    """The containers of any workload manifest (Pod, Job, StatefulSet)."""
    if manifest["kind"] == "Pod":
        return list(manifest["spec"]["containers"])
    template = manifest.get("spec", {}).get("template", {}).get("spec")
    return list(template["containers"]) if template else []


def test_selectors_use_only_name_and_instance(rendered: list[Manifest]) -> None:
    sts = one(rendered, "StatefulSet")
    assert sts["spec"]["selector"]["matchLabels"] == SELECTOR
    for service in of_kind(rendered, "Service"):
        assert service["spec"]["selector"] == SELECTOR
    assert one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == SELECTOR


def test_every_object_carries_the_standard_labels(rendered: list[Manifest]) -> None:
    for manifest in rendered:
        labels = set(manifest["metadata"]["labels"])
        assert labels >= STANDARD_LABELS, manifest["metadata"]["name"]


def test_helper_pods_are_never_selected_as_members(rendered: list[Manifest]) -> None:
    """The test pod and the membership job must not join the client Service or the PDB."""
    helpers = [one(rendered, "Pod"), one(rendered, "Job")["spec"]["template"]]
    for pod in helpers:
        labels = pod["metadata"]["labels"]
        assert not all(labels.get(k) == v for k, v in SELECTOR.items())
        assert labels["app.kubernetes.io/instance"] == "kvstore"


def test_quorum_protection(rendered: list[Manifest]) -> None:
    assert one(rendered, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    spec = pod_spec(one(rendered, "StatefulSet"))
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["labelSelector"]["matchLabels"] == SELECTOR
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"] == SELECTOR


def test_production_never_schedules_a_zone_majority() -> None:
    spread = pod_spec(one(render_env("production"), "StatefulSet"))["topologySpreadConstraints"][0]
    assert (spread["maxSkew"], spread["whenUnsatisfiable"]) == (1, "DoNotSchedule")


def test_probes_use_grpc_health_on_the_client_port(rendered: list[Manifest]) -> None:
    c = container(one(rendered, "StatefulSet"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": 2379}, probe


def test_prestop_hands_over_and_the_grace_period_allows_it(rendered: list[Manifest]) -> None:
    sts = one(rendered, "StatefulSet")
    command = container(sts)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[-2:] == ["/etc/kvstore/scripts/membership.py", "prestop"]
    assert pod_spec(sts)["terminationGracePeriodSeconds"] >= 30


def test_security_context_is_restrictive_everywhere(rendered: list[Manifest]) -> None:
    workloads = [m for m in rendered if pods(m)]
    assert {m["kind"] for m in workloads} == {"StatefulSet", "Job", "Pod"}
    for manifest in workloads:
        spec = (
            manifest["spec"] if manifest["kind"] == "Pod" else manifest["spec"]["template"]["spec"]
        )
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsUser"] > 10000
            assert set(c["resources"]) == {"requests", "limits"}


def test_network_policy_scopes_each_port(rendered: list[Manifest]) -> None:
    policy = one(rendered, "NetworkPolicy", "kvstore")
    assert policy["spec"]["podSelector"]["matchLabels"] == SELECTOR
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    assert rules["peer"] == [{"podSelector": {"matchLabels": SELECTOR}}]
    assert rules["client"] == [{"podSelector": {}}]
    assert rules["metrics"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    deny = one(rendered, "NetworkPolicy", "kvstore-default-deny")
    assert deny["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/instance": "kvstore"}},
        "policyTypes": ["Ingress"],
    }


def test_client_namespaces_open_only_the_client_port() -> None:
    policy = one(
        render_env("staging", sets=["networkPolicy.clientNamespaces={apps}"]),
        "NetworkPolicy",
        "kvstore",
    )
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}} in rules[
        "client"
    ]
    assert all("namespaceSelector" not in source for source in rules["peer"])


def test_server_flags_reach_the_container_as_kvstore_env(rendered: list[Manifest]) -> None:
    env = env_of(one(rendered, "StatefulSet"))
    assert env["KVSTORE_NAME"] == "$(POD_NAME)"
    assert env["KVSTORE_DATA_DIR"] == "/var/lib/kvstore/data"
    assert env["KVSTORE_LISTEN_CLIENT_URLS"] == "http://0.0.0.0:2379"
    assert env["KVSTORE_LISTEN_PEER_URLS"] == "http://0.0.0.0:2380"
    assert env["KVSTORE_LISTEN_METRICS_URLS"] == "http://0.0.0.0:2381"
    assert env["KVSTORE_INITIAL_CLUSTER_TOKEN"] == "kvstore-kvstore"
    assert "KVSTORE_INITIAL_CLUSTER" not in env, "the membership script decides it at start"
    assert int(env["KVSTORE_QUOTA_BACKEND_BYTES"] or 0) > 0


def test_tracing_is_wired_through_otel_env() -> None:
    env = env_of(one(render_env("production"), "StatefulSet"))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring.svc:4317"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.05"
    assert env["OTEL_SERVICE_NAME"] == "kvstore"
    off = env_of(one(render_env("staging", sets=["tracing.enabled=false"]), "StatefulSet"))
    assert not any(name.startswith("OTEL_") for name in off)


def test_tls_mounts_existing_secrets_and_switches_probes_to_http() -> None:
    manifests = render_env(
        "staging",
        sets=[
            "tls.client.enabled=true",
            "tls.client.secretName=kv-client-tls",
            "tls.peer.enabled=true",
            "tls.peer.secretName=kv-peer-tls",
        ],
    )
    sts = one(manifests, "StatefulSet")
    env = env_of(sts)
    assert env["KVSTORE_LISTEN_CLIENT_URLS"] == "https://0.0.0.0:2379"
    assert str(env["KVSTORE_INITIAL_ADVERTISE_PEER_URLS"]).startswith("https://")
    assert env["KVSTORE_CERT_FILE"] == "/etc/kvstore/tls/client/tls.crt"
    assert env["KVSTORE_PEER_TRUSTED_CA_FILE"] == "/etc/kvstore/tls/peer/ca.crt"
    secrets = {v["secret"]["secretName"] for v in pod_spec(sts)["volumes"] if "secret" in v}
    assert secrets == {"kv-client-tls", "kv-peer-tls"}
    assert container(sts)["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    test_pod = one(manifests, "Pod")
    assert "https://" in next(
        e["value"] for e in test_pod["spec"]["containers"][0]["env"] if e["name"] == "ENDPOINT"
    )


def test_servicemonitor_scrapes_the_metrics_port_with_the_stack_label() -> None:
    monitor = one(render_env("production"), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == SELECTOR
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert not list(
        of_kind(
            render_env("staging", sets=["metrics.serviceMonitor.enabled=false"]), "ServiceMonitor"
        )
    )


def test_prometheus_rule_is_optional_and_carries_its_groups(tmp_path: Path) -> None:
    assert not list(of_kind(render_env("staging"), "PrometheusRule"))
    extra = tmp_path / "rules.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "prometheusRule": {
                    "enabled": True,
                    "groups": [{"name": "local", "rules": [{"alert": "X", "expr": "vector(1)"}]}],
                }
            }
        )
    )
    rule = one(render(CHART, [env_values("staging"), extra]), "PrometheusRule")
    assert rule["spec"]["groups"][0]["rules"][0]["alert"] == "X"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def checksum(manifests: list[Manifest]) -> str:
    value: str = one(manifests, "StatefulSet")["spec"]["template"]["metadata"]["annotations"][
        "checksum/scripts"
    ]
    return value


def test_a_new_script_rolls_the_members_but_a_new_replica_count_does_not(tmp_path: Path) -> None:
    base = render_env("staging")
    copy = tmp_path / "kvstore"
    shutil.copytree(CHART, copy)
    script = copy / "files" / "membership.py"
    script.write_text(script.read_text() + "\n# changed\n")
    assert checksum(render(copy, [env_values("staging")])) != checksum(base)
    scaled = render_env("staging", sets=["replicas=5"])
    assert (
        one(scaled, "StatefulSet")["spec"]["template"]
        == one(base, "StatefulSet")["spec"]["template"]
    )
    assert one(scaled, "ConfigMap", "kvstore-topology")["data"] == {"replicas": "5"}
    assert (
        "--replicas=5" in one(scaled, "Job")["spec"]["template"]["spec"]["containers"][0]["command"]
    )


def test_membership_job_runs_after_every_sync(rendered: list[Manifest]) -> None:
    job = one(rendered, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[1:3] == ["/etc/kvstore/scripts/membership.py", "prune"]
    assert "--endpoints=http://kvstore.kvstore.svc.cluster.local:2379" in command


def test_helm_test_pod_checks_health_then_puts_and_gets(rendered: list[Manifest]) -> None:
    pod = one(rendered, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    health, put, get = (script.index(s) for s in ("endpoint health", "kvstore put", "kvstore get"))
    assert health < put < get
    assert pod["spec"]["restartPolicy"] == "Never"


def test_notes_tell_how_to_reach_and_check_the_cluster(tmp_path: Path) -> None:
    """NOTES.txt rendered through a throwaway template, since helm template skips the notes."""
    copy = tmp_path / "kvstore"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "notes-check.yaml").write_text(
        'notes: |\n{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 2 }}\n'
    )
    result = helm(
        [*template_args(copy, [env_values("staging")]), "--show-only", "templates/notes-check.yaml"]
    )
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["notes"]
    assert "http://kvstore.kvstore.svc.cluster.local:2379" in notes
    assert "helm test kvstore -n kvstore" in notes
    assert "kvstore member list" in notes
    assert "@sha256:" in notes
