"""Rendering the project's Helm charts with the pinned helm, for the deploy tests.

Every test that looks at a chart's output goes through :func:`render` or :func:`helm`, so the
Kubernetes version, namespace and release name are the same everywhere and match what Argo CD
uses (release "kvstore" in namespace "kvstore").
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.tooling import ROOT, require_tool

KUBERNETES = ROOT / "deploy" / "kubernetes"
CHART = KUBERNETES / "charts" / "kvstore"
ARGOCD_CHART = KUBERNETES / "argocd"
MONITORING = KUBERNETES / "monitoring"
ENVIRONMENTS = ("staging", "production")
# The Kubernetes version charts are rendered and validated for: a current EKS version that
# kubernetes-validate ships schemas for.
KUBE_VERSION = "1.34.0"
RELEASE = "kvstore"
NAMESPACE = "kvstore"
# A syntactically valid digest for tests that need one.
DIGEST = "sha256:" + "ab" * 32

Manifest = dict[str, Any]


def env_values(env: str) -> Path:
    """The values file of ``env``."""
    return KUBERNETES / "environments" / env / "values.yaml"


def helm(args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm with ``args``; the caller checks the outcome."""
    binary = require_tool("helm")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False, timeout=timeout
    )


def template_args(
    chart: Path,
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[str]:
    """The ``helm template`` arguments for ``chart`` with values files and --set pairs."""
    args = ["template", release, str(chart), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", str(path)]
    for pair in sets:
        args += ["--set", pair]
    return args


def render_text(
    chart: Path = CHART,
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> str:
    """The rendered YAML stream; fails the test with helm's message when rendering fails."""
    result = helm(template_args(chart, values, sets, release, namespace))
    assert result.returncode == 0, result.stderr
    return result.stdout


def parse(stream: str) -> list[Manifest]:
    """The non-empty documents of a YAML stream."""
    return [doc for doc in yaml.safe_load_all(stream) if doc]


def render(
    chart: Path = CHART,
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """The rendered manifests as dicts."""
    return parse(render_text(chart, values, sets, release, namespace))


def render_env(env: str, sets: Sequence[str] = ()) -> list[Manifest]:
    """The store chart rendered with ``env``'s values, as Argo CD renders it."""
    return render(CHART, [env_values(env)], sets)


def of_kind(manifests: Sequence[Manifest], kind: str) -> Iterator[Manifest]:
    """The manifests of ``kind``."""
    return (m for m in manifests if m.get("kind") == kind)


def one(manifests: Sequence[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single manifest of ``kind`` (and ``name``, when given)."""
    found = [m for m in of_kind(manifests, kind) if name is None or m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def load_yaml(path: Path) -> Any:
    """One YAML document from ``path``."""
    return yaml.safe_load(path.read_text())
