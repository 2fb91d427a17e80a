"""Finding the external tools tests need, with the project's skip-or-fail rule.

A test that needs a tool calls :func:`require_tool` (or a fixture built on it). Locally a
missing tool skips the test with the reason; in CI (``CI=true``) it fails, because a green CI
that skipped half the suite would be a lie.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"
TOOLS_ENV = ROOT / "scripts" / "tools.env"


def in_ci() -> bool:
    """Whether the suite runs in CI, where a missing tool is a failure."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Skip locally, fail in CI, with ``reason`` and how to fix it."""
    message = f"{reason} (run scripts/test-env to install the test environment)"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def tool_pins() -> dict[str, str]:
    """The pins in scripts/tools.env as a dict."""
    pins: dict[str, str] = {}
    for raw in TOOLS_ENV.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pins[name] = value
    return pins


def find_tool(name: str) -> str | None:
    """The path of ``name``, looking in .tools/bin first, then PATH."""
    local = TOOLS_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def require_tool(name: str) -> str:
    """The path of ``name``, or skip/fail the calling test when it is missing."""
    path = find_tool(name)
    if path is None:
        missing(f"{name} is not installed")
        raise AssertionError("unreachable")  # pragma: no cover
    return path


def docker_ready() -> bool:
    """Whether a Docker engine answers."""
    docker = find_tool("docker")
    if docker is None:
        return False
    result = subprocess.run([docker, "info"], capture_output=True, check=False, timeout=30)
    return result.returncode == 0


def require_docker() -> str:
    """The docker CLI path, or skip/fail when no engine answers."""
    docker = require_tool("docker")
    if not docker_ready():
        missing("no Docker engine answers on this machine")
    return docker


def require_base_image() -> str:
    """The tag of the locally built base image, or skip/fail when it was not built."""
    docker = require_docker()
    tag = tool_pins()["BASE_IMAGE_TAG"]
    result = subprocess.run(
        [docker, "image", "inspect", tag], capture_output=True, check=False, timeout=30
    )
    if result.returncode != 0:
        missing(f"the base image {tag} has not been built (scripts/build-base-image)")
    return tag


KUBERNETES_CACHE = Path("/var/cache/kvstore-kubernetes")
"""Where scripts/kubernetes keeps its builds unless KVSTORE_KUBERNETES_CACHE says otherwise."""


def kubernetes_bin_dir() -> Path:
    """The directory scripts/kubernetes builds the pinned Kubernetes version into (the same
    rule as its ``path`` command: the cache root, the version, ``bin``)."""
    root = os.environ.get("KVSTORE_KUBERNETES_CACHE") or str(KUBERNETES_CACHE)
    return Path(root) / tool_pins()["KUBERNETES_VERSION"] / "bin"


def require_kubernetes_binary(name: str) -> str:
    """The path of the Kubernetes binary ``name`` (kube-apiserver, kubectl, ...) at the pinned
    version, or skip/fail the calling test when it has not been built."""
    path = kubernetes_bin_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(f"{path} has not been built (scripts/kubernetes build {name})")
    return str(path)
