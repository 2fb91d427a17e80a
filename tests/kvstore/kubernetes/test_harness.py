"""The pure parts of the Kubernetes test harness, and the build script's contract with it.
These need no Kubernetes binary, so they run in the pipeline's test stage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests import tooling
from tests.kvstore.kubernetes import logscan
from tests.kvstore.kubernetes.apiserver import ApiServerConfig, apiserver_argv
from tests.kvstore.kubernetes.client import Endpoint, kubeconfig, path_with
from tests.kvstore.kubernetes.pki import ApiServerPki, make_pki

SCRIPT = tooling.ROOT / "scripts" / "kubernetes"

LOG = """\
I1204 18:40:00.000001    4242 feature_support_checker.go:133] RequestWatchProgress feature is not supported by "http://127.30.0.2:2379" endpoint
W1204 18:40:01.000001    4242 watcher.go:331] watch chan error: etcdserver: mvcc: required revision has been compacted
E1204 18:40:02.000001    4242 watcher.go:335] watch chan error: rpc error: code = Unavailable desc = etcdserver: no leader
W1204 18:40:03.000001    4242 logging.go:55] [core] [Channel #5 SubChannel #6]grpc: addrConn.createTransport failed to connect
E1204 18:40:04.000001    4242 cacher.go:498] cacher (configmaps): unexpected ListAndWatch error: boom; reinitializing...
I1204 18:40:05.000001    4242 reflector.go:578] "Warning: watch ended with error" reflector="k8s.io/client-go/informers/factory.go:160" err="very short watch"
{"level":"warn","msg":"transport: Client received GoAway with error code ENHANCE_YOUR_CALM and debug data equal to ASCII \\"too_many_pings\\"."}
"""  # noqa: E501


def test_logscan_sorts_the_lines_that_concern_the_store() -> None:
    found = logscan.scan(LOG)
    lines = LOG.splitlines()
    assert found.watch_errors == [lines[2]]  # the compaction warning is expected, not an error
    assert found.cache_restarts == [lines[4], lines[5]]
    assert found.too_many_pings == [lines[6]]
    assert found.progress_notify_unsupported == [lines[0]]
    assert found.problems == [lines[6], lines[2], lines[4], lines[5]]
    assert logscan.scan("I1204 18:40:00.000001 1 x.go:1] all fine\n").problems == []


@pytest.mark.parametrize(
    ("line", "severity"),
    [("E1204 18:40:02.000001 1 a.go:1] x", "E"), ("I0101 00:00:00.0 1 a.go:1] x", "I"),
     ("panic: boom", None), ("Error: something", None)],
)  # fmt: skip
def test_klog_severity(line: str, severity: str | None) -> None:
    assert logscan.severity(line) == severity


def config(tmp_path: Path, **changes: object) -> ApiServerConfig:
    pki = ApiServerPki(
        tmp_path / "ca", tmp_path / "c", tmp_path / "k", tmp_path / "sa", tmp_path / "sa.pub"
    )
    fields: dict[str, object] = {
        "binary": "/bin/kube-apiserver",
        "etcd_servers": ["http://127.30.0.2:1", "http://127.30.0.3:2", "http://127.30.0.4:3"],
        "port": 6443,
        "etcd_prefix": "/registry-x",
        "pki": pki,
        "token_file": tmp_path / "tokens.csv",
        "cert_dir": tmp_path / "certs",
        **changes,
    }
    return ApiServerConfig(**fields)  # type: ignore[arg-type]


def test_apiserver_argv_names_every_member_and_binds_loopback_only(tmp_path: Path) -> None:
    argv = apiserver_argv(config(tmp_path))
    assert argv[0] == "/bin/kube-apiserver"
    flags = dict(a.removeprefix("--").split("=", 1) for a in argv[1:])
    assert flags["etcd-servers"] == "http://127.30.0.2:1,http://127.30.0.3:2,http://127.30.0.4:3"
    assert flags["etcd-prefix"] == "/registry-x"
    assert (flags["bind-address"], flags["secure-port"]) == ("127.0.0.1", "6443")
    assert flags["authorization-mode"] == "AlwaysAllow"
    assert flags["anonymous-auth"] == "false"
    assert flags["token-auth-file"] == str(tmp_path / "tokens.csv")
    assert flags["service-account-signing-key-file"] == str(tmp_path / "sa")
    assert flags["service-account-key-file"] == str(tmp_path / "sa.pub")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"etcd_servers": []}, "at least one etcd server"),
     ({"etcd_prefix": "registry"}, "absolute key prefix")],
)  # fmt: skip
def test_apiserver_argv_refuses_what_the_apiserver_would(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        apiserver_argv(config(tmp_path, **changes))


def test_pki_serves_loopback_and_keeps_keys_private(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, ["127.0.0.1", "localhost"])
    cert = x509.load_pem_x509_certificate(pki.serving_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    for secret in (pki.serving_key, pki.service_account_key):
        assert secret.stat().st_mode & 0o777 == 0o600
    # the public key file is the public half of the signing key
    private = serialization.load_pem_private_key(pki.service_account_key.read_bytes(), None)
    public = serialization.load_pem_public_key(pki.service_account_public_key.read_bytes())
    assert private.public_key() == public


def test_kubeconfig_points_kubectl_at_the_apiserver_with_the_token(tmp_path: Path) -> None:
    config = json.loads(kubeconfig(Endpoint("127.0.0.1", 6443, tmp_path / "ca.pem", "t0k")))
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority": str(tmp_path / "ca.pem"),
    }
    assert config["users"][0]["user"] == {"token": "t0k"}
    assert config["current-context"] == config["contexts"][0]["name"]


def test_path_with_leaves_out_unset_parameters() -> None:
    assert path_with("/api/v1/pods") == "/api/v1/pods"
    assert path_with("/x", limit=5, watch=True, resourceVersion="") == "/x?limit=5&watch=true"
    assert path_with("/x", **{"continue": "a=b/c"}) == "/x?continue=a%3Db%2Fc"


def test_tests_look_for_the_binaries_where_the_build_script_puts_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    version = tooling.tool_pins()["KUBERNETES_VERSION"]
    for cache in ("", str(tmp_path)):
        monkeypatch.setenv("KVSTORE_KUBERNETES_CACHE", cache)
        out = subprocess.run([SCRIPT, "path"], capture_output=True, text=True, check=True)
        assert Path(out.stdout.strip()) == tooling.kubernetes_bin_dir()
        assert tooling.kubernetes_bin_dir().parts[-2:] == (version, "bin")


def test_build_script_refuses_an_unknown_binary() -> None:
    out = subprocess.run(
        [SCRIPT, "build", "kube-nonesuch"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 1
    assert "unknown binary kube-nonesuch" in out.stderr
    usage = subprocess.run([SCRIPT], capture_output=True, text=True, check=False)
    assert usage.returncode == 1 and "usage:" in usage.stderr


def test_a_missing_binary_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KVSTORE_KUBERNETES_CACHE", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/kubernetes build kubectl"):
        tooling.require_kubernetes_binary("kubectl")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="has not been built"):
        tooling.require_kubernetes_binary("kubectl")
    built = tooling.kubernetes_bin_dir() / "kubectl"
    built.parent.mkdir(parents=True)
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    assert tooling.require_kubernetes_binary("kubectl") == str(built)
