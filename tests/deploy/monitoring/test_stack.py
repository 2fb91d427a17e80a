"""The monitoring pieces agree with each other: labels, selectors, endpoints and metric names."""

from __future__ import annotations

import subprocess
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.deploy.monitoring.rules import (
    DASHBOARD_MANIFEST,
    alert_rules,
    base_name,
    dashboard,
    dashboard_queries,
    metric_names,
)
from tests.deploy.rendering import (
    ARGOCD_CHART,
    ENVIRONMENTS,
    KUBE_VERSION,
    MONITORING,
    env_values,
    load_yaml,
    one,
    render_env,
)
from tests.tooling import require_tool

KPS = load_yaml(MONITORING / "kube-prometheus-stack" / "values.yaml")
OTEL = load_yaml(MONITORING / "otel-collector" / "values.yaml")
JAEGER = load_yaml(MONITORING / "jaeger" / "values.yaml")
ARGO = load_yaml(ARGOCD_CHART / "values.yaml")
MONITORING_NS: str = ARGO["monitoring"]["namespace"]

# The metric families the store exports (the server's contract), plus Prometheus' own "up".
STORE_METRICS = {
    "etcd_server_has_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_server_quota_backend_bytes",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "kvstore_server_read_index_pending",
    "kvstore_server_read_index_oldest_pending_seconds",
    "grpc_server_handled_total",
    "grpc_server_handling_seconds",
}


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_grafana_loads_the_dashboard_configmap() -> None:
    sidecar = KPS["grafana"]["sidecar"]["dashboards"]
    labels = yaml.safe_load(DASHBOARD_MANIFEST.read_text())["metadata"]["labels"]
    assert sidecar["enabled"] is True
    assert labels[sidecar["label"]] == sidecar["labelValue"]
    assert sidecar["searchNamespace"] == "ALL"


def test_prometheus_selects_the_store_alerts_and_servicemonitors() -> None:
    spec = KPS["prometheus"]["prometheusSpec"]
    rule = yaml.safe_load((MONITORING / "manifests" / "kvstore-alerts.yaml").read_text())
    assert matches(spec["ruleSelector"], rule["metadata"]["labels"])
    assert spec["ruleNamespaceSelector"] == {} and spec["serviceMonitorNamespaceSelector"] == {}
    for env in ENVIRONMENTS:
        monitor = one(render_env(env), "ServiceMonitor")
        assert matches(spec["serviceMonitorSelector"], monitor["metadata"]["labels"]), env


def test_prometheus_keeps_bounded_history_on_a_volume() -> None:
    spec = KPS["prometheus"]["prometheusSpec"]
    assert spec["retention"] and spec["retentionSize"]
    assert set(spec["resources"]) == {"requests", "limits"}
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
    assert KPS["kubeEtcd"]["enabled"] is False, (
        "EKS' etcd is not scrapable; its rules would misfire"
    )


def test_the_store_exports_traces_to_the_collector() -> None:
    otlp_port = OTEL["config"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[
        1
    ]
    assert OTEL["ports"]["otlp"]["enabled"] is True
    for env in ENVIRONMENTS:
        tracing = yaml.safe_load(env_values(env).read_text())["tracing"]
        url = urlparse(tracing["endpoint"])
        assert tracing["enabled"] is True
        assert url.hostname == f"{OTEL['fullnameOverride']}.{MONITORING_NS}.svc"
        assert str(url.port) == otlp_port


def test_the_collector_forwards_traces_to_jaeger() -> None:
    pipeline = OTEL["config"]["service"]["pipelines"]["traces"]
    (exporter,) = pipeline["exporters"]
    endpoint = OTEL["config"]["exporters"][exporter]["endpoint"]
    assert endpoint == f"jaeger.{MONITORING_NS}.svc:4317"
    jaeger_otlp = JAEGER["userconfig"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert jaeger_otlp.endswith(":4317")
    assert "otlp" in JAEGER["userconfig"]["service"]["pipelines"]["traces"]["receivers"]
    grafana_jaeger = next(
        d for d in KPS["grafana"]["additionalDataSources"] if d["type"] == "jaeger"
    )
    assert grafana_jaeger["url"] == f"http://jaeger.{MONITORING_NS}.svc:16686"


def test_dashboard_panels_are_well_formed() -> None:
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "namespace"}
    for expr in dashboard_queries():
        assert 'job="kvstore"' in expr and 'namespace=~"$namespace"' in expr, expr


@pytest.mark.parametrize(
    ("topic", "metric"),
    [
        ("leader", "etcd_server_has_leader"),
        ("leader changes", "etcd_server_leader_changes_seen_total"),
        ("proposals committed", "etcd_server_proposals_committed_total"),
        ("proposals failed", "etcd_server_proposals_failed_total"),
        ("proposals pending", "etcd_server_proposals_pending"),
        ("WAL fsync latency", "etcd_disk_wal_fsync_duration_seconds"),
        ("backend commit latency", "etcd_disk_backend_commit_duration_seconds"),
        ("requests, errors and latency by method", "grpc_server_handled_total"),
        ("latency by method", "grpc_server_handling_seconds"),
        ("DB size", "etcd_mvcc_db_total_size_in_bytes"),
        ("quota", "etcd_server_quota_backend_bytes"),
        ("watchers catching up", "etcd_debugging_mvcc_slow_watcher_total"),
        ("members up", "up"),
    ],
)
def test_dashboard_covers(topic: str, metric: str) -> None:
    used = {base_name(name) for expr in dashboard_queries() for name in metric_names(expr)}
    assert metric in used, topic


def test_dashboard_and_alerts_use_only_metrics_the_store_exports() -> None:
    exprs = dashboard_queries() + [rule["expr"] for rule in alert_rules()]
    used = {base_name(name) for expr in exprs for name in metric_names(expr)}
    assert used <= STORE_METRICS | {"up"}, used - STORE_METRICS


def test_dashboard_configmap_matches_the_kubernetes_schema() -> None:
    binary = require_tool("kubernetes-validate")
    result = subprocess.run(
        [binary, "--strict", "--quiet", "-k", KUBE_VERSION, str(DASHBOARD_MANIFEST)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
