"""``kvstore dev-cluster``: a local cluster in the foreground, for trying the store out.

It starts ``--nodes`` members as child processes of ``kvstore serve`` on etcd's local-cluster
ports (clients 2379, 22379, 32379, ...; peers 2380, 22380, 32380, ...; metrics 2381, 22381,
32381, ...) plus the HTTP JSON API on 2382, 22382, 32382, ... (etcd serves it on the client
port; here gRPC owns that port, see docs/http-gateway.md), prints where everything is
(with each member's pid, to try failures with ``kill``), and on Ctrl-C (or SIGTERM) stops
every member gracefully; members also get SIGTERM if the dev-cluster process itself is
killed. A member that exits is reported with the command that restarts it, and the
others keep serving, as an etcd cluster does when one member dies; dev-cluster stops by
itself only when no member is left. Each member logs to ``<data dir>/<name>.log``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

MAX_NODES = 7
_PR_SET_PDEATHSIG = 1
STOP_BUDGET_S = 12.0


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the dev-cluster process dies (even by SIGKILL), so no
    member outlives it. Linux only; elsewhere members are stopped only by a clean exit."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def default_ports(index: int, offset: int) -> int:
    """etcd's local-cluster layout: 2379, 22379, 32379, ... (plus ``offset``)."""
    base = 2379 if index == 0 else 10_000 * (index + 1) + 2379
    return base + offset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the dev-cluster flags."""
    parser.add_argument("--nodes", type=int, default=3, help="number of members (1-7)")
    parser.add_argument("--data-dir", default="", help="where members keep data (default: temp)")
    parser.add_argument("--host", default="127.0.0.1", help="address every member listens on")
    parser.add_argument("--client-ports", default="", help="comma-separated client ports")
    parser.add_argument("--peer-ports", default="", help="comma-separated peer ports")
    parser.add_argument("--metrics-ports", default="", help="comma-separated metrics ports")
    parser.add_argument(
        "--client-http-ports",
        default="",
        help="comma-separated ports of the HTTP JSON API (--listen-client-http-urls)",
    )


def _ports(raw: str, nodes: int, offset: int, flag: str) -> list[int]:
    if not raw:
        return [default_ports(i, offset) for i in range(nodes)]
    ports = [int(p) for p in raw.split(",") if p.strip()]
    if len(ports) != nodes:
        raise SystemExit(f"kvstore dev-cluster: {flag} needs {nodes} ports, got {len(ports)}")
    return ports


def _spawn(cmd: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        stdout=log,
        stderr=log,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 (single-threaded here)
    )


def _supervise(
    names: list[str],
    procs: list[subprocess.Popen[bytes]],
    commands: list[list[str]],
    stop: dict[str, bool],
) -> int:
    """Wait for Ctrl-C, reporting each member that exits (with the command that restarts
    it) while the others keep serving; 1 if any member exited on its own."""
    code = 0
    reported: set[str] = set()
    while not stop["now"]:
        time.sleep(0.2)
        for name, proc, cmd in zip(names, procs, commands, strict=True):
            if proc.poll() is not None and name not in reported:
                reported.add(name)
                code = 1
                print(
                    f"{name} exited with status {proc.returncode}; the other members keep"
                    f" serving. Restart it with:\n  {shlex.join(cmd)}",
                    flush=True,
                )
        if len(reported) == len(procs):
            print("no member is left", flush=True)
            break
    return code


def run(args: argparse.Namespace) -> int:
    """Start the members, wait for Ctrl-C, stop them."""
    nodes = int(args.nodes)
    if not 1 <= nodes <= MAX_NODES:
        print(f"kvstore dev-cluster: --nodes must be 1..{MAX_NODES}", file=sys.stderr)
        return 2
    clients = _ports(args.client_ports, nodes, 0, "--client-ports")
    peers = _ports(args.peer_ports, nodes, 1, "--peer-ports")
    metrics = _ports(args.metrics_ports, nodes, 2, "--metrics-ports")
    http = _ports(args.client_http_ports, nodes, 3, "--client-http-ports")
    data = Path(args.data_dir or tempfile.mkdtemp(prefix="kvstore-dev-"))
    data.mkdir(parents=True, exist_ok=True)
    host = args.host
    names = [f"infra{i + 1}" for i in range(nodes)]
    cluster = ",".join(f"{n}=http://{host}:{p}" for n, p in zip(names, peers, strict=True))
    print(f"kvstore dev-cluster: {nodes} members, data in {data}", flush=True)
    commands = [
        [
            sys.executable, "-m", "kvstore.cli", "serve",
            "--name", name,
            "--data-dir", str(data / name),
            "--listen-client-urls", f"http://{host}:{clients[i]}",
            "--advertise-client-urls", f"http://{host}:{clients[i]}",
            "--listen-peer-urls", f"http://{host}:{peers[i]}",
            "--initial-advertise-peer-urls", f"http://{host}:{peers[i]}",
            "--listen-metrics-urls", f"http://{host}:{metrics[i]}",
            "--listen-client-http-urls", f"http://{host}:{http[i]}",
            "--initial-cluster", cluster,
            "--initial-cluster-token", "kvstore-dev-cluster",
        ]
        for i, name in enumerate(names)
    ]  # fmt: skip
    procs, logs = [], []
    for i, (name, cmd) in enumerate(zip(names, commands, strict=True)):
        log = (data / f"{name}.log").open("ab")
        logs.append(log)
        procs.append(_spawn(cmd, log))
        print(
            f"  {name}: client http://{host}:{clients[i]}  http http://{host}:{http[i]}  "
            f"peer http://{host}:{peers[i]}  metrics http://{host}:{metrics[i]}/metrics  "
            f"log {data / name}.log  pid {procs[-1].pid}",
            flush=True,
        )
    endpoints = ",".join(f"{host}:{p}" for p in clients)
    print(f"  try: kvstore put hello world --endpoints {endpoints}", flush=True)
    print(
        f'   or: curl -X POST http://{host}:{http[0]}/v3/kv/range -d \'{{"key":"aGVsbG8="}}\'',
        flush=True,
    )
    print("Press Ctrl-C to stop.", flush=True)
    stop = {"now": False}

    def request_stop(signum: int, frame: object) -> None:
        del signum, frame
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    code = _supervise(names, procs, commands, stop)
    print("stopping members ...", flush=True)
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_BUDGET_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = 1
    for log in logs:
        log.close()
    print(f"stopped; data kept in {data}", flush=True)
    return code
