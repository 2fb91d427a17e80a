"""The engine group: a Dagger engine built from source and run locally by scripts/dagger-engine.

``scripts/test-env`` builds the engine binaries and image (cached outside the repository);
the ``dagger_engine`` fixture starts the engine and its registry for the session and stops
them afterwards, unless they were already running (a developer's, or another session's).
Without the image, tests skip locally and fail in CI, like any missing tool.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kvstore_ci import images

from tests import tooling

SCRIPT = tooling.ROOT / "scripts" / "dagger-engine"

# Pinned image (without digest) -> the env variable scripts/dagger-engine sets for its stand-in.
STAND_INS = {
    images.PYTHON.split("@")[0]: "KVSTORE_DAGGER_PYTHON_IMAGE",
    images.PYTHON_GIT.split("@")[0]: "KVSTORE_DAGGER_PYTHON_GIT_IMAGE",
    images.TERRAFORM.split("@")[0]: "KVSTORE_DAGGER_TERRAFORM_IMAGE",
    images.HELM.split("@")[0]: "KVSTORE_DAGGER_HELM_IMAGE",
    images.ACTIONLINT.split("@")[0]: "KVSTORE_DAGGER_ACTIONLINT_IMAGE",
}


@dataclass(frozen=True)
class Engine:
    """How to reach the running engine, as ``scripts/dagger-engine up`` reports it."""

    env: dict[str, str]

    @property
    def python_image(self) -> str:
        """The stand-in for the pinned Python image, by digest, as the engine pulls it."""
        return self.stand_in(images.PYTHON)

    def stand_in(self, reference: str) -> str:
        """The local stand-in for a pinned image of ``images``, as the engine pulls it.

        The stand-ins are pushed under the upstream repository path and tag, so the
        reference's path (without registry host and digest) names its variable.
        """
        variable = STAND_INS.get(reference.split("@", maxsplit=1)[0])
        if variable is None or variable not in self.env:
            tooling.missing(f"no local stand-in image for {reference}")
            raise AssertionError("unreachable")  # pragma: no cover
        return self.env[variable]

    @property
    def engine_registry(self) -> str:
        """The local registry as the engine sees it (host:port)."""
        return self.env["KVSTORE_DAGGER_ENGINE_REGISTRY"]


def parse_env(output: str) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of the script's output (log lines go to stderr)."""
    env: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and key.replace("_", "").isalnum() and key.upper() == key:
            env[key] = value
    return env


def _engine_image() -> str:
    pins = tooling.tool_pins()
    return f"localhost/kvstore-dagger/engine:{pins['DAGGER_VERSION']}"


def _engine_running(docker: str) -> bool:
    """Whether an engine (someone else's session, or a developer's) is already running."""
    name = os.environ.get("KVSTORE_DAGGER_NAME", "kvstore-dagger") + "-engine"
    state = subprocess.run(
        [docker, "inspect", "-f", "{{.State.Running}}", name],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return state.stdout.strip() == "true"


@pytest.fixture(scope="session")
def dagger_engine(docker: str) -> Iterator[Engine]:
    """A running engine for the session, with the client environment applied."""
    image = _engine_image()
    found = subprocess.run(
        [docker, "image", "inspect", image], capture_output=True, check=False, timeout=60
    )
    if found.returncode != 0:
        tooling.missing(f"the Dagger engine image {image} has not been built")
    already_up = _engine_running(docker)
    up = subprocess.run(
        [str(SCRIPT), "up"], capture_output=True, text=True, check=False, timeout=240
    )
    assert up.returncode == 0, f"scripts/dagger-engine up failed:\n{up.stderr}"
    env = parse_env(up.stdout)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield Engine(env)
    if not already_up:
        subprocess.run([str(SCRIPT), "down"], capture_output=True, check=False, timeout=120)
