"""The chart's membership script driving a real cluster through its whole life.

Each "pod" is the chart's container command (``membership.py start``) with the environment
the rendered StatefulSet gives it, running the real ``kvstore serve``. The members' stable DNS
names resolve through a hosts file bind-mounted over /etc/hosts in a private mount namespace
(``unshare -m``, so the machine's own file is untouched), each name pointing at its own
loopback address; that, the listen addresses (per-pod IPs instead of 0.0.0.0, since all
pods share one network here) and the TLS files' directory are the only differences from a
pod. The life: a new cluster bootstraps, scales up, scales down through preStop, loses a
volume and rejoins, and has a member pruned by the post-sync job. A second test forms a
cluster with peer TLS from certificate files laid out like the chart's Secret.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvstore.verify.cluster import free_port
from tests.deploy.chart.test_membership import SCRIPT, m
from tests.deploy.monitoring.live import http_get, stop, stop_all, wait_until
from tests.deploy.rendering import one, render_env
from tests.tooling import missing, require_tool

pytestmark = pytest.mark.slow

KVSTORE = str(Path(sys.executable).parent / "kvstore")
READY_SECONDS = 90.0


@dataclasses.dataclass
class Pod:
    """One running member started the way the StatefulSet starts it."""

    name: str
    ip: str
    process: subprocess.Popen[bytes]
    log: Path


class World:
    """The pods' shared surroundings: ports, names, the replica file and the hosts file."""

    def __init__(
        self,
        directory: Path,
        unshare: str,
        sets: tuple[str, ...] = (),
        mounts: dict[str, Path] | None = None,
    ) -> None:
        self.directory = directory
        self.unshare = unshare
        self.mounts = mounts or {}
        self.ports = {k: free_port("127.0.0.1") for k in ("client", "peer", "metrics")}
        self.net = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}"
        all_sets = [f"ports.{k}={v}" for k, v in self.ports.items()]
        all_sets += ["cluster.discoverySeconds=2", *sets]
        sts = one(render_env("staging", sets=all_sets), "StatefulSet")
        container = sts["spec"]["template"]["spec"]["containers"][0]
        self.chart_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        self.start_command = container["command"]
        self.prestop_command = container["lifecycle"]["preStop"]["exec"]["command"]
        self.domain = self.chart_env["MEMBERSHIP_PEER_DOMAIN"]
        self.hosts = directory / "hosts"
        self.hosts.write_text(
            "127.0.0.1 localhost\n"
            + "".join(f"{self.ip(i)} kvstore-{i}.{self.domain}\n" for i in range(6))
        )
        self.replicas_file = directory / "replicas"
        self.pods: dict[int, Pod] = {}

    def ip(self, ordinal: int) -> str:
        return f"{self.net}.{10 + ordinal}"

    def client_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:{self.ports['client']}"

    def data_dir(self, ordinal: int) -> Path:
        return self.directory / f"data-kvstore-{ordinal}" / "data"

    def env(self, ordinal: int) -> dict[str, str]:
        """The StatefulSet's environment for pod ``ordinal``, as the kubelet expands it."""
        pod = f"kvstore-{ordinal}"
        env = dict(os.environ)
        for name, template in self.chart_env.items():
            value = template.replace("$(POD_NAME)", pod).replace("$(POD_NAMESPACE)", "kvstore")
            for mount_path, local in self.mounts.items():
                value = value.replace(mount_path, str(local))
            env[name] = value.replace("0.0.0.0", self.ip(ordinal))
        env.update(
            POD_NAME=pod,
            POD_NAMESPACE="kvstore",
            KVSTORE_DATA_DIR=str(self.data_dir(ordinal)),
            MEMBERSHIP_REPLICAS_FILE=str(self.replicas_file),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            GRPC_DNS_RESOLVER="native",  # resolve through /etc/hosts, like getaddrinfo
        )
        return env

    def in_namespace(self, command: list[str]) -> list[str]:
        """``command`` in a private mount namespace that sees the pods' hosts file."""
        script = f'mount --bind "{self.hosts}" /etc/hosts && exec "$@"'
        return [self.unshare, "--mount", "sh", "-c", script, "sh", *command]

    def script(self, command: list[str]) -> list[str]:
        """The chart's command with the script path pointing at the chart's file."""
        return [sys.executable if c == "python3" else c for c in command[:1]] + [
            str(SCRIPT) if c.endswith("membership.py") else c for c in command[1:]
        ]

    def start(self, ordinal: int) -> Pod:
        log = self.directory / f"kvstore-{ordinal}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                self.in_namespace(self.script(self.start_command)),
                env=self.env(ordinal), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        pod = Pod(f"kvstore-{ordinal}", self.ip(ordinal), process, log)
        self.pods[ordinal] = pod
        return pod

    def run(self, ordinal: int, command: list[str]) -> subprocess.CompletedProcess[str]:
        """A command in pod ``ordinal``'s environment (preStop, the prune job)."""
        return subprocess.run(
            self.in_namespace(self.script(command)), env=self.env(ordinal),
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip

    def wait_ready(self, *ordinals: int) -> None:
        pods = [self.pods[i] for i in ordinals]
        port = self.ports["metrics"]
        wait_until(
            f"/readyz of {[p.name for p in pods]}",
            lambda: all(http_get(f"http://{p.ip}:{port}/readyz")[0] == 200 for p in pods),
            READY_SECONDS,
            pods,
        )

    def members(self, *ordinals: int) -> list[Any]:
        endpoints = ",".join(self.client_url(i) for i in ordinals)
        result = subprocess.run(
            [KVSTORE, "member", "list", f"--endpoints={endpoints}"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        members: list[Any] = m.parse_member_list(result.stdout)
        return members

    def kv(self, ordinal: int, *args: str) -> str:
        result = subprocess.run(
            [KVSTORE, *args, f"--endpoints={self.client_url(ordinal)}"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    unshare = require_tool("unshare")
    if os.geteuid() != 0:
        missing("a private mount namespace (unshare --mount) needs root")
    w = World(tmp_path, unshare)
    try:
        yield w
    finally:
        stop_all([pod.process for pod in w.pods.values()])


def make_peer_certificates(directory: Path, domain: str) -> Path:
    """A CA and one certificate for every member name under ``domain`` (tls.crt, tls.key,
    ca.crt, as in a kubernetes.io/tls Secret), made with openssl."""
    openssl = require_tool("openssl")
    directory.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=kvstore-peer-ca", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kvstore-peer",
        "-keyout", "tls.key", "-out", "tls.csr")  # fmt: skip
    (directory / "ext.cnf").write_text(
        f"subjectAltName=DNS:*.{domain}\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-extfile", "ext.cnf", "-out", "tls.crt")  # fmt: skip
    return directory


def test_peer_tls_from_a_secret_forms_a_cluster(tmp_path: Path) -> None:
    """tls.peer: the members talk Raft over mutually authenticated TLS with the Secret's files."""
    unshare = require_tool("unshare")
    if os.geteuid() != 0:
        missing("a private mount namespace (unshare --mount) needs root")
    domain = "kvstore-headless.kvstore.svc.cluster.local"
    certs = make_peer_certificates(tmp_path / "peer-tls", domain)
    world = World(
        tmp_path,
        unshare,
        sets=("tls.peer.enabled=true", "tls.peer.secretName=kvstore-peer-tls"),
        mounts={"/etc/kvstore/tls/peer": certs},
    )
    assert world.chart_env["KVSTORE_INITIAL_ADVERTISE_PEER_URLS"].startswith("https://")
    try:
        world.replicas_file.write_text("3\n")
        for i in range(3):
            world.start(i)
        world.wait_ready(0, 1, 2)
        members = world.members(0)
        assert names(members) == ["kvstore-0", "kvstore-1", "kvstore-2"]
        assert all(url.startswith("https://") for x in members for url in x.peer_urls)
        world.kv(1, "put", "tls/key", "over-tls")
        assert "over-tls" in world.kv(2, "get", "tls/key")
    finally:
        stop_all([pod.process for pod in world.pods.values()])


def names(members: list[Any]) -> list[str]:
    return sorted(x.name for x in members)


def test_membership_follows_the_statefulset(world: World) -> None:
    # A new cluster: the initial set bootstraps from the stable DNS names.
    world.replicas_file.write_text("3\n")
    for i in range(3):
        world.start(i)
    world.wait_ready(0, 1, 2)
    assert names(world.members(0)) == ["kvstore-0", "kvstore-1", "kvstore-2"]
    assert all(x.started for x in world.members(0))
    world.kv(0, "put", "life/before", "v1")

    # Scale up to 4: the new pod adds itself and joins.
    world.replicas_file.write_text("4\n")
    world.start(3)
    world.wait_ready(3)
    assert names(world.members(0)) == ["kvstore-0", "kvstore-1", "kvstore-2", "kvstore-3"]
    assert "life/before" in world.kv(3, "get", "life/before", "--consistency=s")

    # Scale down to 3: preStop sees the new count, hands over and leaves; then the pod stops.
    world.replicas_file.write_text("3\n")
    prestop = world.run(3, world.prestop_command)
    assert prestop.returncode == 0, prestop.stderr
    assert "removed this member: scaled down" in prestop.stderr
    stop(world.pods.pop(3).process)
    assert names(world.members(0)) == ["kvstore-0", "kvstore-1", "kvstore-2"]
    shutil.rmtree(world.data_dir(3).parent)  # whenScaled: Delete

    # A lost volume: the member comes back empty, replaces its old self and catches up.
    old_id = next(x.member_id for x in world.members(0) if x.name == "kvstore-1")
    world.pods[1].process.kill()
    world.pods[1].process.wait(timeout=10)
    shutil.rmtree(world.data_dir(1))
    world.start(1)
    world.wait_ready(1)
    members = world.members(0)
    assert names(members) == ["kvstore-0", "kvstore-1", "kvstore-2"]
    assert next(x.member_id for x in members if x.name == "kvstore-1") != old_id
    assert "v1" in world.kv(1, "get", "life/before", "--consistency=s")

    # A pod stopped without preStop removing it (stale count): the post-sync job prunes it.
    world.replicas_file.write_text("4\n")
    world.start(3)
    world.wait_ready(3)
    world.replicas_file.write_text("3\n")
    stop(world.pods.pop(3).process)
    job = sts_job_command(world)
    prune = world.run(0, job)
    assert prune.returncode == 0, prune.stderr
    assert names(world.members(0)) == ["kvstore-0", "kvstore-1", "kvstore-2"]
    world.kv(2, "put", "life/after", "v2")
    assert "v2" in world.kv(0, "get", "life/after")

    # The chart's `helm test` pod script passes against the cluster it leaves behind.
    helm_test = helm_test_run(world)
    assert helm_test.returncode == 0, helm_test.stdout + helm_test.stderr
    assert "put/get through" in helm_test.stdout


def sts_job_command(world: World) -> list[str]:
    """The membership job's command, with the client Service swapped for the members' IPs."""
    job = one(render_env("staging", sets=[f"ports.{k}={v}" for k, v in world.ports.items()]), "Job")
    command: list[str] = job["spec"]["template"]["spec"]["containers"][0]["command"]
    endpoints = ",".join(world.client_url(i) for i in range(3))
    return [f"--endpoints={endpoints}" if c.startswith("--endpoints=") else c for c in command]


def helm_test_run(world: World) -> subprocess.CompletedProcess[str]:
    """The test pod's command with its ENDPOINT pointed at a member."""
    pod = one(render_env("staging"), "Pod")
    command: list[str] = pod["spec"]["containers"][0]["command"]
    env = {**world.env(0), "ENDPOINT": world.client_url(0)}
    return subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, timeout=120
    )
