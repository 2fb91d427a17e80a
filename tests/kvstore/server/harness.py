"""Real multi-process kvstore clusters for tests: each member is a ``kvstore serve`` process
on its own loopback address (127.0.0.x) with ports the OS picked.

A :class:`Cluster` starts, kills (SIGKILL), stops (SIGTERM), restarts and adds members, and
finds the leader through the Maintenance Status call, the way an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kvstore.client import ClientError, SyncClient
from kvstore.verify.cluster import free_port, next_host

KVSTORE = str(Path(sys.executable).parent / "kvstore")


@dataclass
class MemberProc:
    """One member process and where it listens."""

    name: str
    host: str
    client_port: int
    peer_port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.peer_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, initial_cluster: str, state: str) -> None:
        cmd = [
            KVSTORE, "serve",
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--listen-metrics-urls", self.metrics_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", "test-cluster",
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            *self.extra,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    """A cluster of member processes under one directory."""

    def __init__(
        self,
        root: Path,
        size: int,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        scheme: str = "http",
        credentials: grpc.ChannelCredentials | None = None,
        hosts: list[str] | None = None,
    ) -> None:
        self.root = root
        self.scheme = scheme
        self.credentials = credentials
        self.members: list[MemberProc] = []
        for i in range(size):
            host = hosts[i] if hosts else None
            self.members.append(self._new_member(f"m{i + 1}", extra or [], env or {}, host))

    def _new_member(
        self, name: str, extra: list[str], env: dict[str, str], host: str | None = None
    ) -> MemberProc:
        host = host or next_host()
        return MemberProc(
            name=name,
            host=host,
            client_port=free_port(host),
            peer_port=free_port(host),
            metrics_port=free_port(host),
            data_dir=self.root / name,
            log_path=self.root / f"{name}.log",
            extra=list(extra),
            env=dict(env),
            scheme=self.scheme,
        )

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self) -> None:
        cluster = self.initial_cluster
        for m in self.members:
            m.start(cluster, "new")
        self.wait_healthy()

    def client(self, members: list[MemberProc] | None = None, timeout: float = 10) -> SyncClient:
        chosen = members if members is not None else [m for m in self.members if m.alive]
        return SyncClient(
            [m.endpoint for m in chosen], timeout=timeout, credentials=self.credentials
        )

    def healthz(self, m: MemberProc) -> bool:
        try:
            with urllib.request.urlopen(m.metrics_url + "/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_healthy(self, members: list[MemberProc] | None = None, timeout: float = 30) -> None:
        chosen = members if members is not None else [m for m in self.members if m.alive]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [m.name for m in chosen if not m.alive]
            if dead:
                raise AssertionError(f"members exited: {dead}\n" + self.logs())
            if all(self.healthz(m) for m in chosen):
                return
            time.sleep(0.1)
        raise AssertionError("cluster did not become healthy\n" + self.logs())

    def leader(self, timeout: float = 15) -> MemberProc:
        """The member that every live member agrees leads."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids: dict[int, MemberProc] = {}
            leaders = set()
            for m in self.members:
                if not m.alive:
                    continue
                try:
                    with SyncClient(
                        [m.endpoint], timeout=2, rounds=1, credentials=self.credentials
                    ) as c:
                        st = c.status()
                except ClientError:
                    leaders.add(-1)
                    continue
                ids[st.header.member_id] = m
                leaders.add(st.leader)
            if len(leaders) == 1:
                (lead,) = leaders
                if lead in ids:
                    return ids[lead]
            time.sleep(0.1)
        raise AssertionError("no agreed leader\n" + self.logs())

    def member_id(self, m: MemberProc) -> int:
        with SyncClient([m.endpoint], timeout=5, rounds=1, credentials=self.credentials) as c:
            return c.status().header.member_id

    def add_member(
        self, name: str, learner: bool = False, via: MemberProc | None = None
    ) -> tuple[MemberProc, int]:
        """Add a member through the API and start it with state ``existing``."""
        new = self._new_member(name, self.members[0].extra, self.members[0].env)
        with self.client([via] if via else None) as c:
            resp = c.member_add([new.peer_url], learner=learner)
        self.members.append(new)
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members if m.alive or m is new)
        new.start(cluster, "existing")
        return new, resp.member.ID

    def stop(self) -> None:
        live = [m for m in self.members if m.alive]
        for m in live:
            assert m.proc is not None
            m.proc.send_signal(signal.SIGTERM)
        for m in live:
            try:
                m.terminate(timeout=15)
            except subprocess.TimeoutExpired:
                m.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {m.name} ---\n{m.log_text()[-4000:]}" for m in self.members)
