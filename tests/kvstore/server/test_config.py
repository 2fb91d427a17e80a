"""``kvstore serve`` configuration: etcd's flags, KVSTORE_* variables, validation that names
the flag, and the deterministic ids every member derives from them."""

from __future__ import annotations

import argparse
import socket
import subprocess
from pathlib import Path

import pytest

from kvstore.server import ids
from kvstore.server.config import ConfigError, ServerConfig, add_serve_arguments, build_config
from kvstore.server.member import bootstrap_identity
from kvstore.verify.cluster import free_port
from tests.kvstore.server.conftest import KVSTORE


def _config(argv: list[str], env: dict[str, str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return build_config(parser.parse_args(argv), env or {})


def test_defaults_are_etcds() -> None:
    cfg = _config([])
    assert cfg.listen_client_urls == ("http://localhost:2379",)
    assert cfg.listen_peer_urls == ("http://localhost:2380",)
    assert cfg.listen_metrics_urls == ("http://localhost:2381",)
    assert cfg.max_request_bytes == 1536 * 1024
    assert cfg.max_txn_ops == 128
    assert cfg.quota_backend_bytes == 2 * 1024**3
    assert cfg.initial_members() == {"default": ("http://localhost:2380",)}
    assert cfg.data_dir == Path("default.kvstore")


def test_environment_and_flag_precedence() -> None:
    env = {"KVSTORE_NAME": "a", "KVSTORE_DATA_DIR": "/data/a", "KVSTORE_SNAPSHOT_COUNT": "50",
           "KVSTORE_INITIAL_CLUSTER": "a=http://10.0.0.1:2380",
           "KVSTORE_INITIAL_ADVERTISE_PEER_URLS": "http://10.0.0.1:2380"}  # fmt: skip
    cfg = _config([], env)
    assert (cfg.name, cfg.data_dir, cfg.snapshot_count) == ("a", Path("/data/a"), 50)
    cfg = _config(["--snapshot-count", "7"], env)
    assert cfg.snapshot_count == 7


def test_keepalive_durations_take_gos_syntax() -> None:
    cfg = _config([], {})
    assert (cfg.grpc_keepalive_min_time_s, cfg.grpc_keepalive_interval_s) == (5.0, 7200.0)
    assert cfg.grpc_keepalive_timeout_s == 20.0
    cfg = _config(["--grpc-keepalive-min-time", "1m30.5s", "--grpc-keepalive-timeout", "250ms"])
    assert (cfg.grpc_keepalive_min_time_s, cfg.grpc_keepalive_timeout_s) == (90.5, 0.25)


@pytest.mark.parametrize(
    ("argv", "env", "flag"),
    [
        (["--snapshot-count", "many"], {}, "--snapshot-count"),
        ([], {"KVSTORE_MAX_TXN_OPS": "0"}, "--max-txn-ops"),
        (["--listen-client-urls", "ftp://x:1"], {}, "--listen-client-urls"),
        (["--listen-peer-urls", "http://nohost"], {}, "--listen-peer-urls"),
        (["--initial-cluster-state", "maybe"], {}, "--initial-cluster-state"),
        (["--initial-cluster", "other=http://h:2380"], {}, "--initial-cluster"),
        (["--listen-client-urls", "https://127.0.0.1:2379"], {}, "--listen-client-urls"),
        (["--cert-file", "/nonexistent.pem"], {}, "--cert-file"),
        (["--client-cert-auth", "true"], {}, "--client-cert-auth"),
        (["--election-timeout", "100"], {}, "--election-timeout"),
        (["--log-level", "loud"], {}, "--log-level"),
        (["--grpc-keepalive-min-time", "5"], {}, "--grpc-keepalive-min-time"),
        (["--grpc-keepalive-interval", "0s"], {}, "--grpc-keepalive-interval"),
        ([], {"KVSTORE_GRPC_KEEPALIVE_TIMEOUT": "20 s"}, "--grpc-keepalive-timeout"),
    ],
)
def test_invalid_settings_name_the_flag(argv: list[str], env: dict[str, str], flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(argv, env)
    assert str(info.value).startswith(flag)


def test_bad_flag_fails_at_start_naming_it() -> None:
    result = subprocess.run(
        [KVSTORE, "serve", "--quota-backend-bytes", "lots"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--quota-backend-bytes" in result.stderr


def test_ids_are_deterministic_and_distinct() -> None:
    cluster = "a=http://h1:2380,b=http://h2:2380,c=http://h3:2380"
    identities = [
        bootstrap_identity(
            _config(["--name", n, "--initial-cluster", cluster,
                     "--initial-advertise-peer-urls", f"http://h{i + 1}:2380"])
        )
        for i, n in enumerate("abc")
    ]  # fmt: skip
    assert len({i.cluster_id for i in identities}) == 1
    assert len({i.member_id for i in identities}) == 3
    assert identities[0].members == identities[2].members
    assert ids.member_id(["http://h1:2380"], "t1") != ids.member_id(["http://h1:2380"], "t2")
    assert ids.member_id(["http://h1:2380"], "t", "5") != ids.member_id(
        ["http://h1:2380"], "t", "6"
    )


def test_a_port_in_use_fails_at_start_naming_the_flag(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        peer, metrics = free_port("127.0.0.1"), free_port("127.0.0.1")
        result = subprocess.run(
            [KVSTORE, "serve", "--name", "busy", "--data-dir", str(tmp_path / "d"),
             "--listen-client-urls", f"http://127.0.0.1:{port}",
             "--advertise-client-urls", f"http://127.0.0.1:{port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--listen-metrics-urls", f"http://127.0.0.1:{metrics}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"--listen-client-urls: cannot listen on http://127.0.0.1:{port}" in result.stderr


def test_auth_flags() -> None:
    cfg = _config([])
    assert (cfg.auth_token, cfg.auth_token_ttl_s, cfg.bcrypt_cost) == ("simple", 300, 10)
    cfg = _config(["--bcrypt-cost", "4", "--auth-token-ttl", "30"], {"KVSTORE_AUTH_TOKEN": ""})
    assert (cfg.auth_token, cfg.auth_token_ttl_s, cfg.bcrypt_cost) == ("simple", 30, 4)
    for argv, flag in [
        (["--bcrypt-cost", "3"], "--bcrypt-cost"),
        (["--bcrypt-cost", "32"], "--bcrypt-cost"),
        (["--auth-token-ttl", "0"], "--auth-token-ttl"),
        (["--auth-token", "jwt,sign-method=RS256,pub-key=/no/such/file"], "--auth-token"),
        (["--auth-token", "opaque"], "--auth-token"),
    ]:
        with pytest.raises(ConfigError) as info:
            _config(argv)
        assert str(info.value).startswith(flag)


def test_client_http_urls_are_off_by_default_and_need_their_own_port() -> None:
    assert _config([]).listen_client_http_urls == ()
    cfg = _config(["--listen-client-http-urls", "http://127.0.0.1:2382,http://[::1]:2382"])
    assert cfg.listen_client_http_urls == ("http://127.0.0.1:2382", "http://[::1]:2382")
    assert _config([], {"KVSTORE_LISTEN_CLIENT_HTTP_URLS": "http://h:9"}).listen_client_http_urls
    with pytest.raises(ConfigError, match=r"^--listen-client-http-urls: .* gRPC server owns"):
        _config(["--listen-client-urls", "http://0.0.0.0:2379",
                 "--listen-client-http-urls", "http://127.0.0.1:2379"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"^--listen-client-http-urls: .*--listen-metrics"):
        _config(["--listen-client-http-urls", "http://localhost:2381"])
    with pytest.raises(ConfigError, match=r"^--listen-client-http-urls: .* is https but"):
        _config(["--listen-client-http-urls", "https://localhost:2382"])
    with pytest.raises(ConfigError, match=r"^--listen-client-http-urls: URL 'h:1' must start"):
        _config(["--listen-client-http-urls", "h:1"])
