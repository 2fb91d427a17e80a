"""Configuration of ``kvstore serve``: etcd's flag names, ``KVSTORE_*`` environment variables.

Every flag ``--some-flag`` can also be set with ``KVSTORE_SOME_FLAG``; a flag on the command
line wins over the environment. Parsing is pure (argv and environ are passed in), and every
invalid value raises :class:`ConfigError` naming the flag, so a misconfigured member fails at
start instead of half-working.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from kvstore.server.tokens import TokenError, make_provider

DEFAULT_NAME = "default"
DEFAULT_CLIENT_URL = "http://localhost:2379"
DEFAULT_PEER_URL = "http://localhost:2380"
DEFAULT_METRICS_URL = "http://localhost:2381"
DEFAULT_CLUSTER_TOKEN = "kvstore-cluster"  # noqa: S105 (a cluster name, not a secret)
DEFAULT_SNAPSHOT_COUNT = 10_000
DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024**3
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
DEFAULT_MAX_TXN_OPS = 128
DEFAULT_HEARTBEAT_INTERVAL_MS = 100
DEFAULT_ELECTION_TIMEOUT_MS = 1000
DEFAULT_GRPC_KEEPALIVE_MIN_TIME = "5s"
DEFAULT_GRPC_KEEPALIVE_INTERVAL = "2h"
DEFAULT_GRPC_KEEPALIVE_TIMEOUT = "20s"
DEFAULT_AUTH_TOKEN = "simple"  # noqa: S105 (a token type, not a secret)
DEFAULT_AUTH_TOKEN_TTL_S = 300
DEFAULT_BCRYPT_COST = 10
MIN_BCRYPT_COST = 4
MAX_BCRYPT_COST = 31
ENV_PREFIX = "KVSTORE_"


class ConfigError(ValueError):
    """An invalid setting; the message starts with the flag's name."""


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Server certificate and, optionally, client-certificate authentication."""

    cert_file: Path | None = None
    key_file: Path | None = None
    trusted_ca_file: Path | None = None
    client_cert_auth: bool = False

    @property
    def enabled(self) -> bool:
        """Whether a server certificate is configured."""
        return self.cert_file is not None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One member's settings, validated."""

    name: str = DEFAULT_NAME
    data_dir: Path = Path("default.kvstore")
    listen_client_urls: tuple[str, ...] = (DEFAULT_CLIENT_URL,)
    advertise_client_urls: tuple[str, ...] = (DEFAULT_CLIENT_URL,)
    listen_peer_urls: tuple[str, ...] = (DEFAULT_PEER_URL,)
    initial_advertise_peer_urls: tuple[str, ...] = (DEFAULT_PEER_URL,)
    listen_metrics_urls: tuple[str, ...] = (DEFAULT_METRICS_URL,)
    listen_client_http_urls: tuple[str, ...] = ()
    """Where the etcd v3 JSON API (grpc-gateway mapping) and the probes are served; none
    by default. etcd serves them on the client port too; here gRPC owns that port."""
    initial_cluster: tuple[tuple[str, str], ...] = ((DEFAULT_NAME, DEFAULT_PEER_URL),)
    """(name, peer URL) pairs; a member with several peer URLs appears several times."""
    initial_cluster_state: str = "new"
    initial_cluster_token: str = DEFAULT_CLUSTER_TOKEN
    snapshot_count: int = DEFAULT_SNAPSHOT_COUNT
    quota_backend_bytes: int = DEFAULT_QUOTA_BACKEND_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS
    election_timeout_ms: int = DEFAULT_ELECTION_TIMEOUT_MS
    client_tls: TLSConfig = field(default_factory=TLSConfig)
    peer_tls: TLSConfig = field(default_factory=TLSConfig)
    log_level: str = "info"
    grpc_keepalive_min_time_s: float = 5.0
    """Shortest interval at which a client may ping; faster pings earn a GOAWAY."""
    grpc_keepalive_interval_s: float = 2 * 3600.0
    """How often the server pings an idle connection to check it is alive."""
    grpc_keepalive_timeout_s: float = 20.0
    """How long the server waits for the answer to its ping before closing."""
    auth_token: str = DEFAULT_AUTH_TOKEN
    """etcd's --auth-token: ``simple`` or ``jwt,pub-key=...,priv-key=...,sign-method=...``."""
    auth_token_ttl_s: int = DEFAULT_AUTH_TOKEN_TTL_S
    bcrypt_cost: int = DEFAULT_BCRYPT_COST

    def initial_members(self) -> dict[str, tuple[str, ...]]:
        """The initial cluster as name -> peer URLs, in first-seen order."""
        members: dict[str, list[str]] = {}
        for name, url in self.initial_cluster:
            members.setdefault(name, []).append(url)
        return {name: tuple(urls) for name, urls in members.items()}


def _flag_spec() -> list[tuple[str, str, str]]:
    """(flag, default, help) for every flag; defaults are strings, parsed like env values."""
    return [
        ("--name", DEFAULT_NAME, "human-readable name of this member"),
        ("--data-dir", "", "directory of the WAL and snapshots (default: <name>.kvstore)"),
        ("--listen-client-urls", DEFAULT_CLIENT_URL, "URLs to serve the client API on"),
        ("--advertise-client-urls", DEFAULT_CLIENT_URL, "client URLs told to the cluster"),
        ("--listen-peer-urls", DEFAULT_PEER_URL, "URLs to serve peer (Raft) traffic on"),
        (
            "--initial-advertise-peer-urls",
            DEFAULT_PEER_URL,
            "peer URLs told to the cluster",
        ),
        (
            "--listen-metrics-urls",
            DEFAULT_METRICS_URL,
            "URLs for /metrics and the probes (/health, /livez, /readyz, /healthz)",
        ),
        (
            "--listen-client-http-urls",
            "",
            "URLs to serve the v3 JSON API (/v3/...), /health, /version, /metrics on "
            "(must differ from --listen-client-urls)",
        ),
        ("--initial-cluster", "", "name=peerURL,... of the initial members"),
        ("--initial-cluster-state", "new", "'new' to bootstrap, 'existing' to join"),
        ("--initial-cluster-token", DEFAULT_CLUSTER_TOKEN, "token that makes cluster ids unique"),
        ("--snapshot-count", str(DEFAULT_SNAPSHOT_COUNT), "applied entries between snapshots"),
        ("--quota-backend-bytes", str(DEFAULT_QUOTA_BACKEND_BYTES), "storage quota (NOSPACE)"),
        ("--max-request-bytes", str(DEFAULT_MAX_REQUEST_BYTES), "largest accepted request"),
        ("--max-txn-ops", str(DEFAULT_MAX_TXN_OPS), "most operations in one txn"),
        ("--heartbeat-interval", str(DEFAULT_HEARTBEAT_INTERVAL_MS), "milliseconds per tick"),
        ("--election-timeout", str(DEFAULT_ELECTION_TIMEOUT_MS), "election timeout in ms"),
        ("--cert-file", "", "client server TLS certificate"),
        ("--key-file", "", "client server TLS key"),
        ("--trusted-ca-file", "", "CA for client certificates"),
        ("--client-cert-auth", "false", "require client certificates"),
        ("--peer-cert-file", "", "peer server TLS certificate"),
        ("--peer-key-file", "", "peer server TLS key"),
        ("--peer-trusted-ca-file", "", "CA for peer certificates"),
        ("--peer-client-cert-auth", "false", "require peer client certificates"),
        ("--log-level", "info", "debug, info, warning or error"),
        (
            "--grpc-keepalive-min-time",
            DEFAULT_GRPC_KEEPALIVE_MIN_TIME,
            "shortest interval clients may send keepalive pings at, with or without streams",
        ),
        (
            "--grpc-keepalive-interval",
            DEFAULT_GRPC_KEEPALIVE_INTERVAL,
            "how often the server pings an idle client connection",
        ),
        (
            "--grpc-keepalive-timeout",
            DEFAULT_GRPC_KEEPALIVE_TIMEOUT,
            "how long the server waits for a ping's answer before closing the connection",
        ),
        ("--auth-token", DEFAULT_AUTH_TOKEN, "simple, or jwt,pub-key=F,priv-key=F,sign-method=M"),
        ("--auth-token-ttl", str(DEFAULT_AUTH_TOKEN_TTL_S), "seconds a simple token lives unused"),
        ("--bcrypt-cost", str(DEFAULT_BCRYPT_COST), "bcrypt cost of stored passwords (4-31)"),
    ]


def env_name(flag: str) -> str:
    """``--data-dir`` -> ``KVSTORE_DATA_DIR``."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the serve flags; values stay raw strings (None when not given)."""
    for flag, default, help_text in _flag_spec():
        parser.add_argument(
            flag, default=None, help=f"{help_text} [env {env_name(flag)}, default {default!r}]"
        )


def _raw_values(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """Flag > environment > default, as strings keyed by flag."""
    values: dict[str, str] = {}
    for flag, default, _ in _flag_spec():
        given = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if given is not None:
            values[flag] = str(given)
        else:
            values[flag] = environ.get(env_name(flag), default)
    return values


def _int(flag: str, raw: str, minimum: int = 1) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{flag}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{flag}: must be >= {minimum}, got {value}")
    return value


def _bool(flag: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no", ""}:
        return False
    raise ConfigError(f"{flag}: expected true or false, got {raw!r}")


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def _duration(flag: str, raw: str) -> float:
    """A duration in Go's syntax, as etcd's flags take it (``5s``, ``1m30s``, ``2h``),
    in seconds; it must be positive."""
    text = raw.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ConfigError(f"{flag}: expected a duration such as 5s, 100ms or 2h, got {raw!r}")
    if total <= 0:
        raise ConfigError(f"{flag}: must be positive, got {raw!r}")
    return total


def parse_url(flag: str, raw: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL with an explicit port."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"}:
        raise ConfigError(f"{flag}: URL {raw!r} must start with http:// or https://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{flag}: URL {raw!r} has an invalid port") from None
    if not parts.hostname or port is None:
        raise ConfigError(f"{flag}: URL {raw!r} needs a host and a port")
    if parts.path not in {"", "/"}:
        raise ConfigError(f"{flag}: URL {raw!r} must not have a path")
    return parts.scheme, parts.hostname, port


def _urls(flag: str, raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
    if not urls:
        raise ConfigError(f"{flag}: at least one URL is required")
    for url in urls:
        parse_url(flag, url)
    return urls


def _optional_urls(flag: str, raw: str) -> tuple[str, ...]:
    return _urls(flag, raw) if raw.strip() else ()


def _endpoint(flag: str, url: str) -> tuple[str, int]:
    _, host, port = parse_url(flag, url)
    return host, port


def _same_socket(a: tuple[str, int], b: tuple[str, int]) -> bool:
    wildcard = {"0.0.0.0", "::"}  # noqa: S104 (compared, not bound)
    return a[1] == b[1] and (a[0] == b[0] or a[0] in wildcard or b[0] in wildcard)


def _check_http_urls(config: ServerConfig) -> None:
    """The HTTP API cannot share a socket with gRPC: grpcio's server owns it."""
    flag = "--listen-client-http-urls"
    grpc_ports = [_endpoint("--listen-client-urls", u) for u in config.listen_client_urls]
    metrics = [_endpoint("--listen-metrics-urls", u) for u in config.listen_metrics_urls]
    for url in config.listen_client_http_urls:
        where = _endpoint(flag, url)
        if any(_same_socket(where, other) for other in grpc_ports):
            raise ConfigError(
                f"{flag}: {url} is also a --listen-client-urls address; the gRPC server owns "
                "that port, so the HTTP API needs a port of its own"
            )
        if any(_same_socket(where, other) for other in metrics):
            raise ConfigError(f"{flag}: {url} is also a --listen-metrics-urls address")


def _initial_cluster(raw: str) -> tuple[tuple[str, str], ...]:
    flag = "--initial-cluster"
    pairs: list[tuple[str, str]] = []
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        name, sep, url = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"{flag}: expected name=URL, got {item!r}")
        parse_url(flag, url)
        pairs.append((name, url.rstrip("/")))
    if not pairs:
        raise ConfigError(f"{flag}: at least one member is required")
    return tuple(pairs)


def _tls(prefix: str, values: Mapping[str, str]) -> TLSConfig:
    def path(flag: str) -> Path | None:
        raw = values[flag]
        if not raw:
            return None
        p = Path(raw)
        if not p.is_file():
            raise ConfigError(f"{flag}: file {raw!r} does not exist")
        return p

    cert = path(f"--{prefix}cert-file")
    key = path(f"--{prefix}key-file")
    ca = path(f"--{prefix}trusted-ca-file")
    auth = _bool(f"--{prefix}client-cert-auth", values[f"--{prefix}client-cert-auth"])
    if (cert is None) != (key is None):
        raise ConfigError(f"--{prefix}cert-file: needs --{prefix}key-file too (and vice versa)")
    if auth and (ca is None or cert is None):
        raise ConfigError(
            f"--{prefix}client-cert-auth: needs --{prefix}trusted-ca-file and a certificate"
        )
    return TLSConfig(cert_file=cert, key_file=key, trusted_ca_file=ca, client_cert_auth=auth)


def _auth_token(raw: str) -> str:
    """Validate --auth-token now (key files readable, method known), so a bad setting
    fails at start."""
    value = raw.strip() or DEFAULT_AUTH_TOKEN
    try:
        make_provider(value, DEFAULT_AUTH_TOKEN_TTL_S)
    except TokenError as exc:
        raise ConfigError(f"--auth-token: {exc}") from None
    return value


def _check_schemes(flag: str, urls: Sequence[str], tls: TLSConfig) -> None:
    for url in urls:
        scheme, _, _ = parse_url(flag, url)
        if scheme == "https" and not tls.enabled:
            raise ConfigError(f"{flag}: {url} is https but no certificate is configured")


def build_config(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Turn parsed flags plus the environment into a validated :class:`ServerConfig`."""
    values = _raw_values(args, os.environ if environ is None else environ)
    name = values["--name"].strip()
    if not name:
        raise ConfigError("--name: must not be empty")
    peer_urls = _urls("--initial-advertise-peer-urls", values["--initial-advertise-peer-urls"])
    cluster_raw = values["--initial-cluster"] or ",".join(f"{name}={u}" for u in peer_urls)
    state = values["--initial-cluster-state"].strip()
    if state not in {"new", "existing"}:
        raise ConfigError(f"--initial-cluster-state: expected 'new' or 'existing', got {state!r}")
    level = values["--log-level"].strip().lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ConfigError(f"--log-level: expected debug, info, warning or error, got {level!r}")
    heartbeat = _int("--heartbeat-interval", values["--heartbeat-interval"])
    election = _int("--election-timeout", values["--election-timeout"])
    if election < 5 * heartbeat:
        raise ConfigError(
            f"--election-timeout: must be at least 5 x --heartbeat-interval ({5 * heartbeat} ms)"
        )
    bcrypt_cost = _int("--bcrypt-cost", values["--bcrypt-cost"], MIN_BCRYPT_COST)
    if bcrypt_cost > MAX_BCRYPT_COST:
        raise ConfigError(f"--bcrypt-cost: must be <= {MAX_BCRYPT_COST}, got {bcrypt_cost}")
    auth_token = _auth_token(values["--auth-token"])
    config = ServerConfig(
        name=name,
        data_dir=Path(values["--data-dir"] or f"{name}.kvstore"),
        listen_client_urls=_urls("--listen-client-urls", values["--listen-client-urls"]),
        advertise_client_urls=_urls("--advertise-client-urls", values["--advertise-client-urls"]),
        listen_peer_urls=_urls("--listen-peer-urls", values["--listen-peer-urls"]),
        initial_advertise_peer_urls=peer_urls,
        listen_metrics_urls=_urls("--listen-metrics-urls", values["--listen-metrics-urls"]),
        listen_client_http_urls=_optional_urls(
            "--listen-client-http-urls", values["--listen-client-http-urls"]
        ),
        initial_cluster=_initial_cluster(cluster_raw),
        initial_cluster_state=state,
        initial_cluster_token=values["--initial-cluster-token"].strip() or DEFAULT_CLUSTER_TOKEN,
        snapshot_count=_int("--snapshot-count", values["--snapshot-count"]),
        quota_backend_bytes=_int("--quota-backend-bytes", values["--quota-backend-bytes"]),
        max_request_bytes=_int("--max-request-bytes", values["--max-request-bytes"]),
        max_txn_ops=_int("--max-txn-ops", values["--max-txn-ops"]),
        heartbeat_interval_ms=heartbeat,
        election_timeout_ms=election,
        client_tls=_tls("", values),
        peer_tls=_tls("peer-", values),
        log_level=level,
        grpc_keepalive_min_time_s=_duration(
            "--grpc-keepalive-min-time", values["--grpc-keepalive-min-time"]
        ),
        grpc_keepalive_interval_s=_duration(
            "--grpc-keepalive-interval", values["--grpc-keepalive-interval"]
        ),
        grpc_keepalive_timeout_s=_duration(
            "--grpc-keepalive-timeout", values["--grpc-keepalive-timeout"]
        ),
        auth_token=auth_token,
        auth_token_ttl_s=_int("--auth-token-ttl", values["--auth-token-ttl"]),
        bcrypt_cost=bcrypt_cost,
    )
    _check_schemes("--listen-client-urls", config.listen_client_urls, config.client_tls)
    _check_schemes("--listen-peer-urls", config.listen_peer_urls, config.peer_tls)
    _check_schemes("--listen-client-http-urls", config.listen_client_http_urls, config.client_tls)
    _check_http_urls(config)
    own = config.initial_members().get(name)
    if own is None:
        raise ConfigError(f"--initial-cluster: does not list this member's --name {name!r}")
    if set(own) != set(peer_urls):
        raise ConfigError(
            f"--initial-cluster: URLs of {name!r} ({','.join(own)}) differ from "
            f"--initial-advertise-peer-urls ({','.join(peer_urls)})"
        )
    return config
