"""Metrics, health and tracing: the endpoints answer, the etcd-named metrics exist and move,
gRPC health reports SERVING, and a forwarded write leaves one trace with spans from two
members (collected by a local OTLP receiver, the same protocol a Jaeger or OpenTelemetry
collector speaks)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from kvstore.client import ClientError, SyncClient
from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster
from tests.kvstore.server.conftest import running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(shared_cluster: LocalCluster) -> LocalCluster:
    """This module's tests never kill a member: they share the session's cluster."""
    return shared_cluster


ETCD_METRICS = (
    "etcd_server_has_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_disk_wal_fsync_duration_seconds_bucket",
    "etcd_disk_backend_commit_duration_seconds_bucket",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_server_quota_backend_bytes",
    "grpc_server_handled_total",
    "grpc_server_handling_seconds_bucket",
)


def _get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def _sample(text: str, name: str, labels: str = "") -> float:
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    total = 0.0
    found = False
    for match in pattern.finditer(text):
        if labels and labels not in (match.group(1) or ""):
            continue
        total += float(match.group(2))
        found = True
    assert found, f"{name} {labels} not in metrics"
    return total


def test_metrics_exist_and_move(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    _, before = _get(leader.metrics_url + "/metrics")
    for name in ETCD_METRICS:
        assert re.search(rf"^{name}", before, re.MULTILINE), name
    assert _sample(before, "etcd_server_has_leader") == 1
    assert _sample(before, "etcd_server_quota_backend_bytes") == 2 * 1024**3
    with cluster.client([leader]) as c:
        for i in range(10):
            c.put(f"metric/{i}".encode(), b"v")
    _, after = _get(leader.metrics_url + "/metrics")
    assert _sample(after, "etcd_server_proposals_committed_total") >= (
        _sample(before, "etcd_server_proposals_committed_total") + 10
    )
    assert _sample(after, "etcd_server_proposals_applied_total") > _sample(
        before, "etcd_server_proposals_applied_total"
    )
    put_ok = 'grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"'
    assert _sample(after, "grpc_server_handled_total", 'grpc_code="OK",' + put_ok) >= 10
    assert _sample(after, "etcd_disk_wal_fsync_duration_seconds_count") > _sample(
        before, "etcd_disk_wal_fsync_duration_seconds_count"
    )
    # The size gauge is sampled once per tick: wait for the tick after the puts.
    deadline = time.monotonic() + 5
    while _sample(after, "etcd_mvcc_db_total_size_in_bytes") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        _, after = _get(leader.metrics_url + "/metrics")
    assert _sample(after, "etcd_mvcc_db_total_size_in_bytes") > 0


def test_health_endpoints_and_grpc_health(cluster: LocalCluster) -> None:
    for m in cluster.members:
        for path in ("/healthz", "/health"):
            status, body = _get(m.metrics_url + path)
            assert status == 200
            assert json.loads(body)["health"] == "true"
        assert _get(m.metrics_url + "/readyz") == (200, "ok\n")
        assert _get(m.metrics_url + "/livez") == (200, "ok\n")
        with grpc.insecure_channel(m.endpoint) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    assert _get(cluster.members[0].metrics_url + "/nope")[0] == 404


def test_health_turns_false_without_a_quorum(tmp_path: Path) -> None:
    with running(LocalCluster(tmp_path, 2, extra=RAFT_FLAGS)) as pair:
        survivor = pair.members[0]
        pair.members[1].kill()
        deadline = time.monotonic() + 15
        status = 200
        while time.monotonic() < deadline and status == 200:
            status, body = _get(survivor.metrics_url + "/healthz")
            time.sleep(0.1)
        assert status == 503
        assert json.loads(body)["reason"] == "no leader"
        assert _get(survivor.metrics_url + "/health") == (
            503,
            '{"health":"false","reason":"RAFT NO LEADER"}\n',
        )
        # The linearizable read waits out the request timeout (5 s + 2 election timeouts).
        status, body = _get(survivor.metrics_url + "/readyz", timeout=15)
        assert status == 503
        assert "[+]serializable_read ok\n[-]linearizable_read failed: etcdserver: " in body
        assert _get(survivor.metrics_url + "/livez") == (200, "ok\n")  # it still reads
        with grpc.insecure_channel(survivor.endpoint) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Requests fail with etcd's errors while there is no quorum, and the member lives on.
        with SyncClient([survivor.endpoint], timeout=2, rounds=1) as c:
            for call in (lambda: c.get(b"k"), lambda: c.put(b"k", b"v")):
                with pytest.raises(ClientError) as info:
                    call()
                assert info.value.code in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
            assert c.get(b"k", serializable=True).count == 0
        assert survivor.alive
        assert _get(survivor.metrics_url + "/healthz")[0] == 503


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span with its member's name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []  # (trace id, member, span name)
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for rs in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append(
                            (span.trace_id.hex(), attrs.get("kvstore.member", "?"), span.name)
                        )
        return trace_service_pb2.ExportTraceServiceResponse()


def test_forwarded_write_is_one_trace_across_members(tmp_path: Path) -> None:
    receiver = _Receiver()
    # Bound to a port of its own before the cluster picks its ports, without SO_REUSEPORT:
    # a port handed out and released could be handed to a member again and shared.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)]
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        # the signal-specific variables win over the generic one; a runner may set them
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    traced = LocalCluster(tmp_path, 3, extra=RAFT_FLAGS, member_env=lambda _name: env)
    try:
        traced.start()
        traced.wait_healthy()
        leader = traced.leader()
        follower = next(m for m in traced.members if m is not leader)
        with SyncClient([follower.endpoint], timeout=10, rounds=1) as c:
            c.put(b"traced", b"1")
        deadline = time.monotonic() + 15
        trace_members: set[str] = set()
        names: set[str] = set()
        while time.monotonic() < deadline:
            with receiver.lock:
                puts = [t for t, _, n in receiver.spans if n == "etcdserverpb.KV/Put"]
                if puts:
                    trace_id = puts[-1]
                    mine = [(m, n) for t, m, n in receiver.spans if t == trace_id]
                    trace_members = {m for m, _ in mine}
                    names = {n for _, n in mine}
            if {follower.name, leader.name} <= trace_members and "raft.apply" in names:
                break
            time.sleep(0.2)
        assert {follower.name, leader.name} <= trace_members, (trace_members, names)
        # The follower proposes; the entry carries the trace to every member's apply.
        assert {"etcdserverpb.KV/Put", "raft.proposal", "raft.apply"} <= names
        with receiver.lock:
            applied_on = {m for t, m, n in receiver.spans if t == trace_id and n == "raft.apply"}
        assert {follower.name, leader.name} <= applied_on
    finally:
        traced.stop()
        server.stop(0)
