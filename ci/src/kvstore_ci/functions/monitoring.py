"""The monitoring pipeline, ``deploy-monitoring``: Prometheus, Grafana, the collector, Jaeger.

Argo CD syncs the monitoring Applications in wave order (the GitOps path), or helm installs
the pinned upstream charts and kubectl applies the store's alerts and dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import dagger
from dagger import Doc
from ruamel.yaml import YAML

from kvstore_ci import kube
from kvstore_ci.functions.argocd import ArgoCdFunctions
from kvstore_ci.functions.base import AwsSessionToken, EnvName, Image, Source, uncached
from kvstore_ci.functions.kubernetes import (
    CLUSTER_ADVICE,
    KubernetesFunctions,
    helm_container,
    kubectl_container,
)
from kvstore_ci.reports import StageFailed

__all__ = [
    "ARGOCD_VALUES",
    "MonitoringChart",
    "MonitoringFunctions",
    "monitoring_charts",
    "monitoring_charts_container",
    "monitoring_manifests_container",
]

ARGOCD_VALUES = "deploy/kubernetes/argocd/values.yaml"


@dataclass(frozen=True)
class MonitoringChart:
    """One upstream monitoring chart at its pinned version."""

    release: str
    repo_url: str
    chart: str
    version: str


def monitoring_charts(argocd_values: str) -> list[MonitoringChart]:
    """The pinned monitoring charts, read from the Argo CD values (one place for versions)."""
    data = YAML(typ="safe", pure=True).load(argocd_values)
    pins = data["monitoring"]["charts"]
    return [
        MonitoringChart(
            release=release,
            repo_url=str(pins[key]["repoURL"]),
            chart=str(pins[key]["chart"]),
            version=str(pins[key]["version"]),
        )
        for release, (key, _values) in kube.MONITORING_CHARTS.items()
    ]


def monitoring_charts_container(
    image: Image,
    source: dagger.Directory,
    *,
    charts: list[MonitoringChart],
    kubeconfig: dagger.Secret,
    timeout: int,
    run_id: str,
) -> dagger.Container:
    """helm upgrade --install --atomic of each pinned chart, in order, with our values."""
    container = helm_container(image, source, kubeconfig, run_id)
    for chart in charts:
        container = container.with_exec(
            kube.monitoring_upgrade_args(
                chart.release, chart.repo_url, chart.chart, chart.version, f"{timeout}s"
            )
        )
    return container


def monitoring_manifests_container(
    image: Image, source: dagger.Directory, kubeconfig: dagger.Secret, run_id: str
) -> dagger.Container:
    """The store's alerts and dashboard (plain manifests), applied server-side."""
    return (
        kubectl_container(image, kubeconfig, run_id)
        .with_directory("/manifests", source.directory(kube.MONITORING_MANIFESTS))
        .with_exec(
            [
                *("kubectl", "apply", "--server-side"),
                *("--namespace", kube.MONITORING_NAMESPACE, "--filename", "/manifests"),
            ]
        )
    )


class MonitoringFunctions(KubernetesFunctions, ArgoCdFunctions):
    """``deploy-monitoring``."""

    @uncached
    async def deploy_monitoring(
        self,
        source: Source,
        env: EnvName,
        *,
        strategy: Annotated[
            str, Doc("argocd: sync the monitoring Applications; helm: install the charts")
        ] = "argocd",
        argocd_token: Annotated[dagger.Secret | None, Doc("Argo CD API token (argocd)")] = None,
        kubeconfig: Annotated[
            dagger.Secret | None,
            Doc("A kubeconfig for the cluster (helm); made from the AWS credentials if not given"),
        ] = None,
        aws_access_key_id: Annotated[
            dagger.Secret | None, Doc("AWS access key id (helm, without --kubeconfig)")
        ] = None,
        aws_secret_access_key: Annotated[
            dagger.Secret | None, Doc("AWS secret access key (helm, without --kubeconfig)")
        ] = None,
        aws_session_token: AwsSessionToken = None,
        timeout: Annotated[int, Doc("Seconds to wait for each part")] = 900,
    ) -> str:
        """Deploy the monitoring stack: Prometheus, Grafana, the collector and Jaeger.

        Also the store's alerts and dashboard; synced by Argo CD in wave order, or
        installed by helm.
        """
        environment = await self._environment(source, env, "deploy-monitoring")
        if strategy == "argocd":
            if argocd_token is None:
                raise StageFailed(
                    "deploy-monitoring: the argocd strategy needs --argocd-token\n"
                    "  what to do: pass it, or --strategy=helm"
                )
            return await self._argocd(
                source,
                environment,
                token=argocd_token,
                applications=list(kube.MONITORING_APPLICATIONS),
                revision="",
                timeout=timeout,
            )
        if kubeconfig is None:
            if aws_access_key_id is None or aws_secret_access_key is None:
                raise StageFailed(
                    "deploy-monitoring: the helm strategy needs --kubeconfig or AWS credentials\n"
                    "  what to do: pass --kubeconfig, or --aws-access-key-id and"
                    " --aws-secret-access-key"
                )
            kubeconfig = await self.kubeconfig(
                source,
                env,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )
        values = await self._run.contents(
            "monitoring-charts", source.file(ARGOCD_VALUES), note="the pinned chart versions"
        )
        charts = monitoring_charts(values)
        run_id = self._run.run_id()
        failure = "monitoring not installed"
        installed = monitoring_charts_container(
            self._image,
            source,
            charts=charts,
            kubeconfig=kubeconfig,
            timeout=timeout,
            run_id=run_id,
        )
        await self._run.sync("monitoring-charts", installed, failure=failure, advice=CLUSTER_ADVICE)
        manifests = monitoring_manifests_container(self._image, source, kubeconfig, run_id)
        applied = await self._run.stdout(
            "monitoring-manifests", manifests, failure=failure, advice=CLUSTER_ADVICE
        )
        names = ", ".join(f"{c.release} {c.version}" for c in charts)
        return f"installed {names}\n{applied.strip()}"
