"""The store's image, built from the repository's Dockerfile by the real Docker engine.

Three members run as containers on a user-defined network (read-only root filesystem,
as in the Helm chart) and serve Debian's etcdctl through published loopback ports.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.tooling import ROOT, require_tool

pytestmark = [pytest.mark.docker, pytest.mark.slow]

UID = 10001


def docker_run(docker: str, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [docker, *args], capture_output=True, text=True, check=True, timeout=timeout
    )
    return result.stdout.strip()


def inspect(docker: str, what: str, fmt: str) -> object:
    return json.loads(docker_run(docker, "inspect", "--format", f"{{{{json {fmt}}}}}", what))


def test_image_runs_as_a_non_root_user(docker: str, kvstore_image: str) -> None:
    assert inspect(docker, kvstore_image, ".Config.User") == f"{UID}:{UID}"
    ids = docker_run(docker, "run", "--rm", "--entrypoint", "id", kvstore_image)
    assert ids == f"uid={UID}(kvstore) gid={UID}(kvstore) groups={UID}(kvstore)"


def test_image_declares_ports_health_check_and_exec_form_entrypoint(
    docker: str, kvstore_image: str
) -> None:
    config = inspect(docker, kvstore_image, ".Config")
    assert isinstance(config, dict)
    assert set(config["ExposedPorts"]) == {"2379/tcp", "2380/tcp", "2381/tcp"}
    assert config["Healthcheck"]["Test"] == ["CMD", "kvstore-healthcheck", "127.0.0.1:2379"]
    assert config["Entrypoint"] == ["kvstore"]  # exec form: kvstore is PID 1
    assert config["Cmd"] == ["serve"]
    assert config["StopSignal"] == "SIGTERM"
    assert config["Labels"]["org.opencontainers.image.version"] == "dev"
    assert "/var/lib/kvstore" in config["Volumes"]


def test_runtime_stage_has_no_build_tools(docker: str, kvstore_image: str) -> None:
    probe = "for t in gcc cc make pip pip3; do command -v $t; done; ls /opt/kvstore/bin"
    out = docker_run(docker, "run", "--rm", "--entrypoint", "sh", kvstore_image, "-c", probe)
    lines = out.splitlines()
    assert not [line for line in lines if line.startswith("/")], out
    assert "pip" not in lines
    assert "kvstore" in lines
    assert "kvstore-healthcheck" in lines


def test_image_size(
    docker: str,
    kvstore_image: str,
    base_image: str,
    record_testsuite_property: Callable[[str, object], None],
) -> None:
    """The store and its dependencies add little to the base; figures go to the JUnit report.
    About 62 MB: grpcio 19 MB, cryptography 16 MB (JWT auth tokens), uvloop 14 MB, the
    rest a few MB each."""
    size = inspect(docker, kvstore_image, ".Size")
    base = inspect(docker, base_image, ".Size")
    assert isinstance(size, int) and isinstance(base, int)
    record_testsuite_property("image_size_bytes", size)
    record_testsuite_property("image_added_bytes", size - base)
    print(f"kvstore image: {size / 1e6:.1f} MB ({(size - base) / 1e6:.1f} MB over the base)")
    assert size - base < 70_000_000


@dataclass(frozen=True)
class Member:
    name: str
    container: str
    client: str  # 127.0.0.1:port published for the client API


@pytest.fixture
def cluster(docker: str, kvstore_image: str) -> Iterator[list[Member]]:
    """Three members on their own network, each with a read-only root filesystem."""
    suffix = secrets.token_hex(4)
    network = f"kvstore-test-{suffix}"
    names = ["kv1", "kv2", "kv3"]
    initial = ",".join(f"{n}=http://{n}:2380" for n in names)
    docker_run(docker, "network", "create", network)
    containers: list[str] = []
    try:
        for name in names:
            container = f"{name}-{suffix}"
            docker_run(
                docker,
                *("run", "--detach", "--name", container, "--network", network),
                *("--network-alias", name, "--hostname", name),
                *("--read-only", "--tmpfs", "/tmp", "--publish", "127.0.0.1::2379"),
                kvstore_image,
                *("serve", "--name", name, "--initial-cluster", initial),
                *("--initial-advertise-peer-urls", f"http://{name}:2380"),
                *("--advertise-client-urls", f"http://{name}:2379"),
                *("--initial-cluster-token", f"test-{suffix}", "--initial-cluster-state", "new"),
            )
            containers.append(container)
        members = []
        for name, container in zip(names, containers, strict=True):
            port = docker_run(docker, "port", container, "2379/tcp").splitlines()[0]
            members.append(Member(name, container, port.replace("0.0.0.0", "127.0.0.1")))
        yield members
    finally:
        for container in containers:
            subprocess.run([docker, "rm", "--force", "--volumes", container], check=False)
        subprocess.run([docker, "network", "rm", network], check=False)


def etcdctl(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("etcdctl"), f"--endpoints={endpoint}", "--command-timeout=5s", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )


def wait_for(what: str, check: object, timeout: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def test_three_containers_form_a_cluster_that_serves_etcdctl(
    docker: str, cluster: list[Member]
) -> None:
    first, second, third = cluster
    wait_for(
        "a write to succeed", lambda: etcdctl(first.client, "put", "k", "v1").returncode == 0, 90
    )
    got = etcdctl(second.client, "get", "k")
    assert got.stdout.splitlines() == ["k", "v1"], got.stderr
    assert etcdctl(third.client, "put", "k", "v2").returncode == 0
    assert etcdctl(first.client, "get", "k", "--print-value-only").stdout.strip() == "v2"
    listed = etcdctl(first.client, "member", "list")
    assert sorted(line.split(", ")[2] for line in listed.stdout.splitlines()) == [
        "kv1",
        "kv2",
        "kv3",
    ], listed.stdout + listed.stderr

    # the health check (gRPC health, run by Docker inside the container) turns healthy
    def healthy() -> bool:
        states = [inspect(docker, m.container, ".State.Health.Status") for m in cluster]
        return states == ["healthy"] * 3

    wait_for("all three health checks to pass", healthy, 60)

    # docker stop: the store is PID 1, handles SIGTERM and exits well before the 10 s kill
    started = time.monotonic()
    docker_run(docker, "stop", third.container, timeout=30)
    elapsed = time.monotonic() - started
    print(f"docker stop took {elapsed:.2f}s")
    assert elapsed < 2.0
    assert inspect(docker, third.container, ".State.ExitCode") == 0
    # the two remaining members still have a quorum
    assert etcdctl(first.client, "put", "k", "v3").returncode == 0
    assert etcdctl(second.client, "get", "k", "--print-value-only").stdout.strip() == "v3"


def test_dockerignore_keeps_the_context_small() -> None:
    """Only what the Dockerfile copies is sent to the engine."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:1] == ["*"]
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in allowed:
        assert source.rstrip("/") in dockerfile, source
    assert "RUN --mount" not in dockerfile and "# syntax=" not in dockerfile  # legacy builder
