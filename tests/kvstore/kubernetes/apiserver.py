"""A real kube-apiserver process whose storage is the store, for the Kubernetes tests.

The apiserver listens on 127.0.0.1 only, serves a certificate of the test CA, admits one
static token (user ``admin`` in ``system:masters``) and authorizes everything, so the tests
exercise storage, not access control. It stores under its own ``--etcd-prefix`` and is given
every member's client URL, as a production apiserver is given its etcd cluster. Nothing that
needs nodes or controllers runs: there is no scheduler, controller manager or kubelet, and
the endpoint reconciler is off (it would advertise a loopback address, which the API refuses
in Endpoints).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.kvstore.kubernetes.client import ApiClient, Endpoint, Kubectl, kubeconfig
from tests.kvstore.kubernetes.pki import ApiServerPki, make_pki

HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
"""How long a start may take: the first start writes the bootstrap objects (priority levels,
flow schemas, the default namespaces, priority classes) through the store."""


@dataclass(frozen=True)
class ApiServerConfig:
    """Everything the command line is made of."""

    binary: str
    etcd_servers: list[str]
    port: int
    etcd_prefix: str
    pki: ApiServerPki
    token_file: Path
    cert_dir: Path


def apiserver_argv(config: ApiServerConfig) -> list[str]:
    """The kube-apiserver command line for ``config``."""
    if not config.etcd_servers:
        raise ValueError("kube-apiserver needs at least one etcd server")
    if not config.etcd_prefix.startswith("/"):
        raise ValueError(
            f"--etcd-prefix must be an absolute key prefix, not {config.etcd_prefix!r}"
        )
    return [
        config.binary,
        f"--etcd-servers={','.join(config.etcd_servers)}",
        f"--etcd-prefix={config.etcd_prefix}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={config.port}",
        f"--tls-cert-file={config.pki.serving_cert}",
        f"--tls-private-key-file={config.pki.serving_key}",
        f"--cert-dir={config.cert_dir}",
        f"--token-auth-file={config.token_file}",
        "--anonymous-auth=false",
        "--authorization-mode=AlwaysAllow",
        f"--service-account-key-file={config.pki.service_account_public_key}",
        f"--service-account-signing-key-file={config.pki.service_account_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.96.0.0/24",
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=1",
    ]


class ApiServer:
    """One kube-apiserver process under ``root``; restartable with the same flags."""

    def __init__(self, binary: str, root: Path, etcd_servers: list[str], port: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        token = secrets.token_hex(16)
        token_file = root / "tokens.csv"
        token_file.write_text(f'{token},admin,admin-uid,"system:masters"\n')
        token_file.chmod(0o600)
        self.config = ApiServerConfig(
            binary=binary,
            etcd_servers=etcd_servers,
            port=port,
            etcd_prefix="/registry-kvstore-test",
            pki=make_pki(root, [HOST, "localhost"]),
            token_file=token_file,
            cert_dir=root / "certs",
        )
        self.endpoint = Endpoint(HOST, port, self.config.pki.ca, token)
        self.log_path = root / "kube-apiserver.log"
        self.kubeconfig_path = root / "kubeconfig"
        self.kubeconfig_path.write_text(kubeconfig(self.endpoint))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started_at = 0.0
        """When the process was last started (time.monotonic())."""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the process and wait until ``/readyz`` is ok (every post-start hook ran
        and the store answers)."""
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts + 1} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                apiserver_argv(self.config), stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1
        self.started_at = time.monotonic()
        client = self.client()
        try:
            client.wait_ready(timeout, alive=lambda: self.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n--- kube-apiserver log ---\n{self.log_tail()}") from exc
        finally:
            client.close()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (the apiserver drains its requests), SIGKILL if it lingers."""
        if self.proc is None or not self.alive:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, timeout: float = 30) -> ApiClient:
        return ApiClient(self.endpoint, timeout=timeout)

    def kubectl(self, binary: str) -> Kubectl:
        return Kubectl(binary, self.kubeconfig_path)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]
