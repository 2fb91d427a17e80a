"""The helm and kubectl commands of the delivery stages, checked with real tools.

- The values and image flags of ``helm upgrade`` are rendered with a real ``helm template``
  of the chart: the StatefulSet must run the image by digest.
- The smoke check's script runs with a real ``sh`` against a real single-member store
  (``kvstore serve``), exactly as ``kubectl exec`` runs it inside a member.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kvstore_ci.environments import load
from kvstore_ci.kube import (
    CHART,
    fullname,
    helm_rollback_args,
    helm_test_args,
    helm_upgrade_args,
    parse_release_status,
    rollout_args,
    smoke_args,
)

from tests.tooling import ROOT, require_tool

DIGEST = "sha256:" + "ab" * 32
REPOSITORY = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/kvstore"


def test_upgrade_is_atomic_and_pins_the_digest() -> None:
    env = load(ROOT, "staging")
    args = helm_upgrade_args(env, REPOSITORY, DIGEST, "10m")
    assert args[:4] == ["helm", "upgrade", "kvstore", CHART]
    for flag in ("--install", "--atomic", "--wait", "--create-namespace"):
        assert flag in args
    assert args[args.index("--timeout") + 1] == "10m"
    assert args[args.index("--namespace") + 1] == "kvstore"
    assert args[args.index("--values") + 1] == "deploy/kubernetes/environments/staging/values.yaml"
    assert helm_test_args(env)[:3] == ["helm", "test", "kvstore"]
    assert helm_rollback_args(env, 0, "5m")[:4] == ["helm", "rollback", "kvstore", "0"]
    assert rollout_args(env, "5m")[3] == "statefulset/kvstore"


def test_upgrade_flags_render_the_image_by_digest(tmp_path: Path) -> None:
    """`helm template` with exactly the upgrade's values and --set-string flags."""
    helm = require_tool("helm")
    env = load(ROOT, "production")
    upgrade = helm_upgrade_args(env, REPOSITORY, DIGEST, "10m")
    flags: list[str] = []
    for i, word in enumerate(upgrade):
        if word in ("--values", "--set-string", "--namespace"):
            flags += [word, upgrade[i + 1]]
    rendered = subprocess.run(
        [helm, "template", env.helm.release, CHART, "--kube-version", "1.31.0", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "HELM_CACHE_HOME": str(tmp_path), "HELM_CONFIG_HOME": str(tmp_path)},
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    (statefulset,) = [d for d in docs if d["kind"] == "StatefulSet"]
    assert statefulset["metadata"]["name"] == fullname(env.helm.release)
    assert statefulset["metadata"]["namespace"] == env.helm.namespace
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    (kvstore,) = [c for c in containers if c["name"] == "kvstore"]
    assert kvstore["image"] == f"{REPOSITORY}@{DIGEST}"


def test_fullname_follows_the_chart_helper() -> None:
    assert fullname("kvstore") == "kvstore"
    assert fullname("kvstore-canary") == "kvstore-canary"
    assert fullname("store") == "store-kvstore"


def test_release_status_from_helm_json() -> None:
    text = (
        '{"name":"kvstore","namespace":"kvstore","version":7,'
        '"info":{"status":"deployed","description":"Upgrade complete"},'
        '"chart":{"metadata":{"name":"kvstore","version":"0.1.0"}}}'
    )
    status = parse_release_status(text)
    assert (status.revision, status.status) == (7, "deployed")
    assert str(status) == "kvstore in kvstore: deployed, revision 7 (kvstore-0.1.0)"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-member kvstore on loopback; yields its client URL."""
    client, peer, metrics = _port(), _port(), _port()
    data = tmp_path_factory.mktemp("kvstore")
    url = f"http://127.0.0.1:{client}"
    log = (data / "serve.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "kvstore"),
            "serve",
            "--name",
            "m0",
            "--data-dir",
            str(data / "data"),
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"m0=http://127.0.0.1:{peer}",
            "--listen-metrics-urls",
            f"http://127.0.0.1:{metrics}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            [
                str(Path(sys.executable).parent / "kvstore"),
                "endpoint",
                "health",
                "--endpoints",
                url,
            ],
            capture_output=True,
            check=False,
            timeout=30,
        ).returncode:
            assert process.poll() is None, (data / "serve.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "kvstore did not become healthy"
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _run_smoke(url: str, run_id: str) -> subprocess.CompletedProcess[str]:
    """The script and arguments kubectl would exec in the member, run here with sh."""
    args = smoke_args(load(ROOT, "staging"), run_id)
    command = args[args.index("--") + 1 :]
    assert command[:2] == ["sh", "-c"]
    return subprocess.run(
        [require_tool("sh"), *command[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "KVSTORE_ADVERTISE_CLIENT_URLS": url,
        },
    )


@pytest.mark.slow
def test_smoke_check_against_a_real_member(member: str) -> None:
    result = _run_smoke(member, "run-42")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"health, put, get and del through {member}: ok")
    leftover = subprocess.run(
        [
            str(Path(sys.executable).parent / "kvstore"),
            "get",
            "smoke/run-42",
            "--endpoints",
            member,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert leftover.stdout.strip() == "", "the smoke key is deleted afterwards"


@pytest.mark.slow
def test_smoke_check_fails_on_an_unreachable_store() -> None:
    result = _run_smoke(f"http://127.0.0.1:{_port()}", "run-43")
    assert result.returncode != 0
