"""The helm and kubectl commands of the delivery stages, as plain argument lists.

Kept apart from the Dagger wiring so the exact commands are reviewed (and tested with a
real helm) in one place: ``helm upgrade --install --atomic --wait --timeout`` with the
environment's values and the image pinned by digest, ``helm test``, ``helm rollback``, and
the smoke check that runs inside a member of the deployed store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kvstore_ci.environments import Environment

__all__ = [
    "CHART",
    "MONITORING_APPLICATIONS",
    "MONITORING_CHARTS",
    "MONITORING_MANIFESTS",
    "ReleaseStatus",
    "fullname",
    "helm_rollback_args",
    "helm_status_args",
    "helm_test_args",
    "helm_upgrade_args",
    "monitoring_upgrade_args",
    "parse_release_status",
    "rollout_args",
    "smoke_args",
]

CHART = "deploy/kubernetes/charts/kvstore"
KUBERNETES_DIR = "deploy/kubernetes"

# The Argo CD Applications of the monitoring stack, in sync-wave order
# (deploy/kubernetes/argocd/templates/application-*.yaml).
MONITORING_APPLICATIONS = (
    "kube-prometheus-stack",
    "otel-collector",
    "jaeger",
    "kvstore-monitoring",
)

# release -> (key under monitoring.charts in deploy/kubernetes/argocd/values.yaml,
#             values file of the release under deploy/kubernetes/monitoring/)
MONITORING_CHARTS = {
    "kube-prometheus-stack": ("kubePrometheusStack", "kube-prometheus-stack/values.yaml"),
    "otel-collector": ("otelCollector", "otel-collector/values.yaml"),
    "jaeger": ("jaeger", "jaeger/values.yaml"),
}
MONITORING_MANIFESTS = "deploy/kubernetes/monitoring/manifests"
MONITORING_NAMESPACE = "monitoring"


def fullname(release: str) -> str:
    """The chart's ``kvstore.fullname``: the release name when it contains ``kvstore``."""
    name = release if "kvstore" in release else f"{release}-kvstore"
    return name[:40].rstrip("-")


def helm_upgrade_args(env: Environment, repository: str, digest: str, timeout: str) -> list[str]:
    """Install or upgrade the store; on any failure helm rolls back (``--atomic``)."""
    return [
        "helm",
        "upgrade",
        env.helm.release,
        CHART,
        "--install",
        "--namespace",
        env.helm.namespace,
        "--create-namespace",
        "--values",
        env.values_file,
        "--set-string",
        f"image.repository={repository}",
        "--set-string",
        f"image.digest={digest}",
        "--atomic",
        "--wait",
        "--timeout",
        timeout,
        "--history-max",
        "20",
    ]


def helm_test_args(env: Environment, timeout: str = "5m") -> list[str]:
    """Run the chart's test pod (health, then a put read back) against the release."""
    return ["helm", "test", env.helm.release, "--namespace", env.helm.namespace, "--logs",
            "--timeout", timeout]  # fmt: skip


def helm_status_args(env: Environment) -> list[str]:
    """The release's status as JSON."""
    return ["helm", "status", env.helm.release, "--namespace", env.helm.namespace, "-o", "json"]


def helm_rollback_args(env: Environment, revision: int, timeout: str) -> list[str]:
    """Roll the release back (0 = the previous revision), waiting for it to be ready."""
    return [
        "helm",
        "rollback",
        env.helm.release,
        str(revision),
        "--namespace",
        env.helm.namespace,
        "--wait",
        "--timeout",
        timeout,
        "--cleanup-on-fail",
    ]


def monitoring_upgrade_args(
    release: str, repo_url: str, chart: str, version: str, timeout: str
) -> list[str]:
    """Install or upgrade one monitoring chart at its pinned version with our values."""
    _key, values = MONITORING_CHARTS[release]
    return [
        "helm",
        "upgrade",
        release,
        chart,
        "--install",
        "--repo",
        repo_url,
        "--version",
        version,
        "--namespace",
        MONITORING_NAMESPACE,
        "--create-namespace",
        "--values",
        f"{KUBERNETES_DIR}/monitoring/{values}",
        "--atomic",
        "--wait",
        "--timeout",
        timeout,
    ]


def rollout_args(env: Environment, timeout: str) -> list[str]:
    """Wait until every member of the StatefulSet runs the current revision and is ready."""
    return [
        "kubectl",
        "rollout",
        "status",
        f"statefulset/{fullname(env.helm.release)}",
        "--namespace",
        env.helm.namespace,
        "--timeout",
        timeout,
    ]


# Runs inside a member: the same client, endpoint and TLS files the chart's test pod uses.
_SMOKE = """\
set -eu
tls=""
if [ -n "${CLI_CACERT:-}" ]; then tls="--cacert=$CLI_CACERT --cert=$CLI_CERT --key=$CLI_KEY"; fi
ep="$KVSTORE_ADVERTISE_CLIENT_URLS"
key="smoke/$1"
kvstore endpoint health --endpoints="$ep" $tls
kvstore put "$key" "$1" --endpoints="$ep" $tls
got="$(kvstore get "$key" --endpoints="$ep" $tls)"
kvstore del "$key" --endpoints="$ep" $tls
if ! printf '%s\\n' "$got" | grep -qx "$1"; then
  echo "smoke: read back '$got' instead of '$1' for $key" >&2
  exit 1
fi
echo "smoke: health, put, get and del through $ep: ok"
"""


def smoke_args(env: Environment, run_id: str) -> list[str]:
    """A health check and a write read back, run in the first member of the store."""
    return [
        "kubectl",
        "exec",
        f"statefulset/{fullname(env.helm.release)}",
        "--namespace",
        env.helm.namespace,
        "--container",
        "kvstore",
        "--",
        "sh",
        "-c",
        _SMOKE,
        "smoke",
        run_id,
    ]


@dataclass(frozen=True)
class ReleaseStatus:
    """What ``helm status -o json`` says about a release."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str

    def __str__(self) -> str:
        return (
            f"{self.name} in {self.namespace}: {self.status}, revision {self.revision}"
            f" ({self.chart})"
        )


def parse_release_status(text: str) -> ReleaseStatus:
    """Read ``helm status -o json``."""
    data = json.loads(text)
    chart = data.get("chart", {}).get("metadata", {})
    return ReleaseStatus(
        name=str(data.get("name", "")),
        namespace=str(data.get("namespace", "")),
        revision=int(data.get("version", 0)),
        status=str(data.get("info", {}).get("status", "unknown")),
        chart=f"{chart.get('name', '?')}-{chart.get('version', '?')}",
    )
