"""A real local kvstore cluster and a real Prometheus scraping it, for the monitoring tests.

Both are started as child processes on free 127.0.0.1 ports with their data in a temporary
directory, and stopped (by process id) when the test module ends. The cluster is started
with ``kvstore serve`` and the flags of the server's contract, the way the chart starts it.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

READY_TIMEOUT_SECONDS = 90.0
KVSTORE = str(Path(sys.executable).parent / "kvstore")


@dataclasses.dataclass
class Member:
    """One running ``kvstore serve`` process and its ports."""

    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def metrics_target(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


class Watched(Protocol):
    """A process a wait gives up on when it dies: its name, process and log file."""

    @property
    def name(self) -> str: ...
    @property
    def process(self) -> subprocess.Popen[bytes]: ...
    @property
    def log(self) -> Path: ...


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, watch: Sequence[Watched] = ()
) -> None:
    """Poll ``check`` until it holds; fail with ``what`` (and dead members' logs) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for member in watch:
            if member.process.poll() is not None:
                code = member.process.returncode
                raise AssertionError(
                    f"{member.name} exited with {code} while waiting for {what}:\n"
                    + member.log.read_text()[-4000:]
                )
        time.sleep(0.5)
    logs = "\n".join(f"--- {m.name}\n{m.log.read_text()[-2000:]}" for m in watch)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def start_cluster(directory: Path, ports: Callable[[], int], size: int = 3) -> list[Member]:
    """Start ``size`` members of a new cluster; return once every member reports ready."""
    layout = [(f"m{i}", ports(), ports(), ports()) for i in range(size)]
    initial = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, _, peer, _ in layout)
    members: list[Member] = []
    for name, client, peer, metrics in layout:
        log = directory / f"{name}.log"
        args = [
            KVSTORE, "serve",
            f"--name={name}",
            f"--data-dir={directory / name}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--listen-metrics-urls=http://127.0.0.1:{metrics}",
            f"--initial-cluster={initial}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=monitoring-test",
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        members.append(Member(name, client, peer, metrics, process, log))
    wait_until(
        "every member's /readyz",
        lambda: all(http_get(f"http://{m.metrics_target}/readyz")[0] == 200 for m in members),
        READY_TIMEOUT_SECONDS,
        members,
    )
    return members


def cli(members: Sequence[Member], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``kvstore`` CLI against the cluster."""
    endpoints = ",".join(m.client_url for m in members)
    return subprocess.run(
        [KVSTORE, *args, f"--endpoints={endpoints}"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def stop(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM ``process`` (by its id), then SIGKILL it if it does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def stop_all(processes: Sequence[subprocess.Popen[Any]], grace: float = 15.0) -> None:
    """SIGTERM every process at once (members stop in parallel, as pods do), then stop each."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        stop(process, max(0.1, deadline - time.monotonic()))


@dataclasses.dataclass
class Prometheus:
    """A running Prometheus server and its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> dict[str, Any]:
        """The /api/v1/query answer for ``promql`` (status, data or error)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        _, body = http_get(url)
        answer: dict[str, Any] = (
            json.loads(body) if body else {"status": "error", "error": "no answer"}
        )
        return answer

    def vector(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of ``promql``; fails on a query error."""
        answer = self.query(promql)
        assert answer["status"] == "success", f"{promql}: {answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        """Every rule Prometheus evaluates, with its health and state."""
        _, body = http_get(f"{self.url}/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


def start_prometheus(
    binary: str, directory: Path, port: int, targets: Sequence[str], rule_file: Path
) -> Prometheus:
    """Prometheus scraping ``targets`` every second as job "kvstore" in namespace "kvstore"
    (the labels the ServiceMonitor produces in the cluster), evaluating ``rule_file``."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {
                "job_name": "kvstore",
                "static_configs": [{"targets": list(targets), "labels": {"namespace": "kvstore"}}],
            }
        ],
    }
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = directory / "prometheus.log"
    args = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while http_get(f"{server.url}/-/ready")[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError("Prometheus did not become ready:\n" + log.read_text()[-4000:])
        time.sleep(0.5)
    return server
