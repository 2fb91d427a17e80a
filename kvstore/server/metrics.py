"""Prometheus metrics with etcd's names, and the HTTP endpoint that serves them.

Names follow etcd where the meaning is the same, so dashboards and alerts written for etcd
work unchanged. Each member owns one registry (tests run several members in one process).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.024,
    2.048,
    4.096,
    8.192,
)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric one member exports."""

    registry: CollectorRegistry
    has_leader: Gauge
    is_leader: Gauge
    leader_changes: Counter
    proposals_committed: Gauge
    proposals_applied: Gauge
    proposals_pending: Gauge
    proposals_failed: Counter
    wal_fsync: Histogram
    backend_commit: Histogram
    db_size: Gauge
    quota_bytes: Gauge
    current_revision: Gauge
    watchers: Gauge
    slow_watchers: Gauge
    grpc_handled: Counter
    grpc_started: Counter
    grpc_handling: Histogram
    snapshots_sent: Counter
    read_index_pending: Gauge
    read_index_oldest: Gauge
    slow_read_indexes: Counter
    read_indexes_failed: Counter


def new_metrics() -> Metrics:
    """A fresh registry with every metric registered, and the process's own
    (``process_resident_memory_bytes``, CPU, open fds), which etcd exports too."""
    r = CollectorRegistry()
    ProcessCollector(registry=r)
    return Metrics(
        registry=r,
        has_leader=Gauge(
            "etcd_server_has_leader", "Whether a leader exists (1) or not (0).", registry=r
        ),
        is_leader=Gauge("etcd_server_is_leader", "Whether this member is the leader.", registry=r),
        leader_changes=Counter(
            "etcd_server_leader_changes_seen", "The number of leader changes seen.", registry=r
        ),
        proposals_committed=Gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            registry=r,
        ),
        proposals_applied=Gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            registry=r,
        ),
        proposals_pending=Gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            registry=r,
        ),
        proposals_failed=Counter(
            "etcd_server_proposals_failed", "The total number of failed proposals seen.", registry=r
        ),
        wal_fsync=Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ),
        backend_commit=Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ),
        db_size=Gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database in bytes.",
            registry=r,
        ),
        quota_bytes=Gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            registry=r,
        ),
        current_revision=Gauge(
            "etcd_debugging_mvcc_current_revision", "The current revision of store.", registry=r
        ),
        watchers=Gauge(
            "etcd_debugging_mvcc_watcher_total", "Total number of watchers.", registry=r
        ),
        slow_watchers=Gauge(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            registry=r,
        ),
        grpc_handled=Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server.",
            ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            registry=r,
        ),
        grpc_started=Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            ["grpc_type", "grpc_service", "grpc_method"],
            registry=r,
        ),
        grpc_handling=Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency of RPCs handled by the server.",
            ["grpc_type", "grpc_service", "grpc_method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ),
        snapshots_sent=Counter(
            "etcd_network_snapshot_send_success",
            "Total number of successful snapshot sends.",
            registry=r,
        ),
        # Not in etcd: its read loop has no queue to show. A read waiting here long is a
        # read stuck behind ReadIndex (the alert KvstoreReadIndexStuck watches the age).
        read_index_pending=Gauge(
            "kvstore_server_read_index_pending",
            "The number of linearizable reads waiting for a ReadIndex answer.",
            registry=r,
        ),
        read_index_oldest=Gauge(
            "kvstore_server_read_index_oldest_pending_seconds",
            "How long the oldest linearizable read waiting for a ReadIndex answer has waited.",
            registry=r,
        ),
        slow_read_indexes=Counter(
            "etcd_server_slow_read_indexes",
            "The total number of pending read indexes not in sync with leader's or timed out "
            "read index requests.",
            registry=r,
        ),
        read_indexes_failed=Counter(
            "etcd_server_read_indexes_failed",
            "The total number of failed read indexes processed.",
            registry=r,
        ),
    )
