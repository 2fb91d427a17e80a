"""Local multi-process clusters of this store or of etcd, for fault tests and benchmarks.

Each member is one process (``kvstore serve`` or etcd, which take the same flag names) on
its own loopback address 127.0.0.x with ports the OS picked, so members can be told apart by
address. A member can be started inside its own cgroup (v2) so that
:mod:`kvstore.verify.netfault` can drop the packets it sends; loopback packets all carry the
source address 127.0.0.1, so the sender is identified by its cgroup, not its address.
A member can also be given extra environment (for example ``LD_PRELOAD`` of the slow-fsync
shim in :mod:`kvstore.verify.slowdisk`), which it keeps across restarts.

The cluster finds its leader the way an operator would, through the Maintenance Status call
of every live member, which works the same against etcd; it checks health on the members'
``/health`` endpoints (metrics port), adds members through the MemberAdd call, and reaches
members that serve TLS (``scheme="https"``) with the client credentials it was given.
"""

from __future__ import annotations

import enum
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kvstore.client import ClientError, SyncClient

_host_counter = itertools.count(os.getpid() * 64)
STATUS_TIMEOUT_S = 2.0
HEALTH_TIMEOUT_S = 2.0
RAFT_FLAGS = ["--heartbeat-interval", "50", "--election-timeout", "500"]
"""Short Raft timings (50 ms heartbeats, 500 ms election timeout) for test clusters."""


class Kind(enum.StrEnum):
    """Which server a member runs."""

    KVSTORE = "kvstore"
    ETCD = "etcd"


def kvstore_command() -> list[str]:
    """The argv prefix that runs a member of this store with the current interpreter."""
    return [sys.executable, "-m", "kvstore.cli", "serve"]


def etcd_command() -> list[str]:
    """The argv prefix that runs etcd (Debian ``etcd-server``)."""
    path = shutil.which("etcd") or "/usr/bin/etcd"
    return [path]


def free_port(host: str) -> int:
    """A TCP port free on ``host`` (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def next_host() -> str:
    """A loopback address in 127.30.0.0 .. 127.229.255.255 not used before by this process.

    Each process starts at 64 x its process id, so concurrent runs on one machine rarely
    share an address (and a shared address still has distinct ports).
    """
    n = next(_host_counter) % (250 * 250 * 200)
    return f"127.{n // 62500 + 30}.{n // 250 % 250}.{n % 250 + 2}"


@dataclass
class Member:
    """One member process and where it listens."""

    name: str
    host: str
    client_port: int
    peer_port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    command: list[str]
    extra: list[str] = field(default_factory=list)
    cgroup: Path | None = None
    """A cgroup v2 directory the process is started in (for partitions), or None."""
    env: dict[str, str] = field(default_factory=dict)
    """Variables added to the harness's environment for this member, at every start."""
    scheme: str = "http"
    """The scheme of the client and peer URLs: ``https`` when the member serves TLS."""
    http_port: int = 0
    """The port of ``--listen-client-http-urls`` (0: not served; etcd serves HTTP on its
    client port and needs none)."""
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def endpoint(self) -> str:
        """host:port of the client API."""
        return f"{self.host}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.peer_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}"

    @property
    def http_url(self) -> str:
        """Where the v3 JSON API is served: the HTTP port, else the client URL."""
        return (
            f"{self.scheme}://{self.host}:{self.http_port}" if self.http_port else self.client_url
        )

    @property
    def alive(self) -> bool:
        """Whether the process runs (a paused process counts as alive)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self, initial_cluster: str, state: str, token: str) -> list[str]:
        """The full command line (etcd's flag names, which this store shares)."""
        return [
            *self.command,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--listen-metrics-urls", self.metrics_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", token,
            *(["--listen-client-http-urls", self.http_url] if self.http_port else []),
            *self.extra,
        ]  # fmt: skip

    def start(self, initial_cluster: str, state: str, token: str) -> None:
        """Start the process (in its cgroup when it has one); output goes to the log."""
        cmd = self.argv(initial_cluster, state, token)
        if self.cgroup is not None:
            # Join the cgroup before exec, so every socket the member opens belongs to it.
            procs = self.cgroup / "cgroup.procs"
            cmd = ["/bin/sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", *cmd]
        env = {**os.environ, **self.env} if self.env else None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.alive and self.paused:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``; the exit status
        (negative for a signal), or None if the member was never started."""
        self.resume()
        if self.proc is None:
            return None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def rss_bytes(self) -> int:
        """Resident memory of the process (0 when it is not running)."""
        if not self.alive:
            return 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def log_text(self) -> str:
        """Everything the process (and its earlier runs) wrote."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]


class LocalCluster:
    """A cluster of member processes under one directory.

    ``extra`` is appended to every member's command line (e.g. heartbeat and election
    timeouts); ``cluster_name`` becomes ``--initial-cluster-token``; ``cgroup_parent`` (a
    cgroup v2 directory) gives every member its own child cgroup, which network faults need;
    ``member_env`` gives the member of each name its extra environment (replacements too,
    so a fault that needs it can target any member); ``scheme="https"`` with ``credentials``
    (for the client API) is for members started with TLS flags in ``extra``; ``hosts`` are
    the loopback addresses of the first members (e.g. those a certificate names) instead of
    fresh ones; ``client_http`` gives members of this store a ``--listen-client-http-urls``
    port of their own (etcd's members serve HTTP on the client port anyway).
    """

    def __init__(
        self,
        root: Path,
        size: int,
        *,
        kind: Kind = Kind.KVSTORE,
        extra: list[str] | None = None,
        cluster_name: str = "fault-cluster",
        cgroup_parent: Path | None = None,
        member_env: Callable[[str], dict[str, str]] | None = None,
        scheme: str = "http",
        credentials: grpc.ChannelCredentials | None = None,
        hosts: list[str] | None = None,
        client_http: bool = False,
    ) -> None:
        self.root = root
        self.client_http = client_http and kind is Kind.KVSTORE
        root.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.token = cluster_name
        self.extra = list(extra or [])
        self.cgroup_parent = cgroup_parent
        self.member_env = member_env
        self.scheme = scheme
        self.credentials = credentials
        self.command = kvstore_command() if kind is Kind.KVSTORE else etcd_command()
        self._names = itertools.count(1)
        self.members: list[Member] = [
            self.new_member(host=hosts[i] if hosts else None) for i in range(size)
        ]

    def new_member(
        self, like: Member | None = None, *, name: str | None = None, host: str | None = None
    ) -> Member:
        """A member not yet started nor part of the cluster; with ``like`` (a member removed
        and stopped) it takes over that member's address and ports, as a replacement pod
        takes over its predecessor's name, so clients that knew the old member reach it.
        ``name`` replaces the next of m1, m2, ...; ``host`` a fresh loopback address."""
        name = name or f"m{next(self._names)}"
        host = like.host if like is not None else host or next_host()
        cgroup = None
        if self.cgroup_parent is not None:
            cgroup = self.cgroup_parent / name
            cgroup.mkdir(parents=True, exist_ok=True)
        return Member(
            name=name,
            host=host,
            client_port=like.client_port if like is not None else free_port(host),
            peer_port=like.peer_port if like is not None else free_port(host),
            metrics_port=like.metrics_port if like is not None else free_port(host),
            http_port=(like.http_port if like is not None else free_port(host))
            if self.client_http
            else 0,
            data_dir=self.root / name,
            log_path=self.root / f"{name}.log",
            command=list(self.command),
            extra=list(self.extra),
            cgroup=cgroup,
            env=self.member_env(name) if self.member_env is not None else {},
            scheme=self.scheme,
        )

    def initial_cluster(self, members: list[Member] | None = None) -> str:
        chosen = self.members if members is None else members
        return ",".join(f"{m.name}={m.peer_url}" for m in chosen)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 60) -> None:
        """Start every member and wait until they agree on a leader."""
        cluster = self.initial_cluster()
        for m in self.members:
            m.start(cluster, "new", self.token)
        self.leader(timeout=timeout)

    def restart(self, m: Member) -> None:
        """Start a member again from its data directory."""
        m.kill()
        m.start(self.initial_cluster(), "new", self.token)

    def join(self, m: Member) -> None:
        """Start ``m``, which must have been added through the API, with cluster state
        ``existing`` (it learns its identity from the other members), and count it among the
        members if it is not yet."""
        if all(other is not m for other in self.members):
            self.members.append(m)
        m.start(self.initial_cluster(), "existing", self.token)

    def add_member(
        self,
        name: str | None = None,
        learner: bool = False,
        via: Member | None = None,
        like: Member | None = None,
    ) -> tuple[Member, int]:
        """Add a new member through the MemberAdd call (sent to ``via``, or to every live
        member) and start it (see :meth:`new_member` for ``name`` and ``like``); the member
        and the id the cluster gave it."""
        new = self.new_member(like, name=name)
        with self.client([via] if via is not None else None) as c:
            resp = c.member_add([new.peer_url], learner=learner)
        self.join(new)
        return new, resp.member.ID

    def client(self, members: list[Member] | None = None, timeout: float = 10) -> SyncClient:
        """A client of ``members`` (by default every live one), with the cluster's
        credentials."""
        chosen = members if members is not None else [m for m in self.members if m.alive]
        return SyncClient(
            [m.endpoint for m in chosen], timeout=timeout, credentials=self.credentials
        )

    def _client_of(self, m: Member, timeout: float) -> SyncClient:
        """A client of one member that tries once per call."""
        return SyncClient([m.endpoint], timeout=timeout, rounds=1, credentials=self.credentials)

    def healthy(self, m: Member) -> bool:
        """Whether the member's ``/health`` (on its metrics port; this store and etcd both
        serve it) answers 200."""
        url = m.metrics_url + "/health"
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as r:  # noqa: S310 (http://)
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_healthy(self, members: list[Member] | None = None, timeout: float = 30) -> None:
        """Wait until every one of ``members`` (by default every live one) is healthy;
        raises :class:`MemberUnavailable` at once if one of them exits."""
        chosen = members if members is not None else [m for m in self.members if m.alive]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [m.name for m in chosen if not m.alive]
            if dead:
                raise MemberUnavailable(f"members exited: {dead}\n" + self.logs())
            if all(self.healthy(m) for m in chosen):
                return
            time.sleep(0.1)
        raise TimeoutError("the cluster did not become healthy\n" + self.logs())

    def status(self, m: Member) -> tuple[int, int, int] | None:
        """(member id, leader id, raft applied index) of one member, or None if it does
        not answer."""
        if not m.alive or m.paused:
            return None
        try:
            with self._client_of(m, STATUS_TIMEOUT_S) as c:
                st = c.status()
        except ClientError:
            return None
        return st.header.member_id, st.leader, st.raftAppliedIndex

    def leader(self, timeout: float = 30, among: list[Member] | None = None) -> Member:
        """The member that every answering member (of ``among``) names as leader."""
        deadline = time.monotonic() + timeout
        chosen = among if among is not None else self.members
        while time.monotonic() < deadline:
            ids: dict[int, Member] = {}
            leaders: set[int] = set()
            for m in chosen:
                st = self.status(m)
                if st is None:
                    continue
                ids[st[0]] = m
                leaders.add(st[1])
            if len(leaders) == 1:
                (lead,) = leaders
                if lead in ids:
                    return ids[lead]
            time.sleep(0.1)
        raise TimeoutError("no agreed leader\n" + self.logs())

    def member_id(self, m: Member) -> int:
        st = self.status(m)
        if st is None:
            raise MemberUnavailable(f"{m.name} does not answer")
        return st[0]

    def move_leader(self, to: Member, timeout: float = 30) -> None:
        """Hand leadership to ``to`` with the MoveLeader call (this store and etcd both
        serve it) and wait until every member names it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader(timeout=max(0.1, deadline - time.monotonic()))
            if lead is to:
                return
            try:
                with self._client_of(lead, 5) as c:
                    c.move_leader(self.member_id(to))
            except ClientError:
                time.sleep(0.2)  # an election under way; ask whoever leads next
        raise TimeoutError(f"{to.name} did not become leader\n" + self.logs())

    def stop(self) -> None:
        """SIGTERM every member (SIGKILL stragglers)."""
        for m in self.members:
            m.resume()
            if m.alive:
                assert m.proc is not None
                m.proc.send_signal(signal.SIGTERM)
        for m in self.members:
            m.terminate(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {m.name} ---\n{m.log_tail()}" for m in self.members)


class MemberUnavailable(RuntimeError):
    """A member did not answer a call the harness needed."""
