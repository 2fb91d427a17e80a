"""A watch client that stops reading while the store changes fast: the member holds a
bounded queue for it (its watcher catches up from history instead), and once the client
reads again it gets every event once, in order, and a progress notification only after
them."""

from __future__ import annotations

import queue
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.client import SyncClient
from kvstore.server.watch_service import MAX_QUEUED
from kvstore.verify.cluster import LocalCluster

PUTS = 3 * MAX_QUEUED
VALUE = b"v" * 65536  # enough to fill the transport's buffers long before the last put


def _metric(cluster: LocalCluster, name: str) -> float:
    with urllib.request.urlopen(cluster.members[0].metrics_url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_a_client_that_stops_reading_gets_every_event_once_it_reads(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, 1, cluster_name="slow-watch")
    try:
        cluster.start()
        requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()

        def outgoing() -> Iterator[rpc_pb2.WatchRequest]:
            while (req := requests.get()) is not None:
                yield req

        with grpc.insecure_channel(cluster.members[0].endpoint) as channel:
            stream = iter(rpc_pb2_grpc.WatchStub(channel).Watch(outgoing(), timeout=120))
            create = rpc_pb2.WatchCreateRequest(key=b"slow/", range_end=b"slow0")
            requests.put(rpc_pb2.WatchRequest(create_request=create))
            assert next(stream).created
            with SyncClient(cluster.endpoints, timeout=10) as client:
                first = client.put(b"slow/0", VALUE).header.revision
                for i in range(1, PUTS):
                    client.put(f"slow/{i}".encode(), VALUE)
            # The member stopped queueing for this client and says so.
            deadline = time.monotonic() + 10
            while _metric(cluster, "etcd_debugging_mvcc_slow_watcher_total") < 1:
                assert time.monotonic() < deadline, "the watcher never fell behind"
                time.sleep(0.2)
            # A progress request now is answered only once the watcher is level again: its
            # revision promises that every event up to it was sent (etcd 3.5.13).
            requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
            revisions: list[int] = []
            while True:
                resp = next(stream)
                assert not resp.canceled, resp.cancel_reason
                if resp.watch_id == -1 and not resp.events:
                    break
                revisions.extend(ev.kv.mod_revision for ev in resp.events)
            assert revisions == list(range(first, first + PUTS))
            assert resp.header.revision >= first + PUTS - 1
            requests.put(None)
        deadline = time.monotonic() + 10
        while _metric(cluster, "etcd_debugging_mvcc_slow_watcher_total") != 0:
            assert time.monotonic() < deadline, "the watcher never caught up"
            time.sleep(0.2)
    finally:
        cluster.stop()
