"""etcd3gw (PyPI), a client of etcd's JSON API nobody here wrote, against the store's
``--listen-client-http-urls``: it discovers the API path from ``/version`` and parses
every answer as etcd's gateway writes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from etcd3gw.client import Etcd3Client

from kvstore.verify.cluster import LocalCluster


@pytest.fixture(scope="module")
def clients(http_cluster: LocalCluster) -> Iterator[list[Etcd3Client]]:
    made = [
        Etcd3Client(host=m.host, port=m.http_port, timeout=10, api_path=None)
        for m in http_cluster.members
    ]
    yield made
    for c in made:
        c.session.close()


def test_discovers_v3_and_reads_status_and_members(clients: list[Etcd3Client]) -> None:
    c = clients[0]
    assert c.api_path == "/v3/"
    assert c.status()["version"] == "3.5.13"
    assert len(c.members()) == 3


def test_put_get_delete_and_prefix(clients: list[Etcd3Client]) -> None:
    a, b, c = clients
    assert a.put("g3/one", "1") is True
    assert b.put("g3/two", "2") is True
    assert c.get("g3/one") == [b"1"]
    ((value, meta),) = c.get("g3/two", metadata=True)
    assert value == b"2" and meta["key"] == b"g3/two" and int(meta["version"]) == 1
    assert sorted(v for v, _ in a.get_prefix("g3/")) == [b"1", b"2"]
    assert b.get("g3/none") == []
    assert a.create("g3/one", "again") is False  # the key exists: the txn fails
    assert a.create("g3/three", "3") is True
    assert a.replace("g3/three", "3", "33") is True
    assert a.replace("g3/three", "3", "x") is False
    assert c.delete("g3/one") is True
    assert c.delete("g3/one") is False
    assert b.delete_prefix("g3/") is True
    assert a.get_prefix("g3/") == []


def test_lease_grant_refresh_ttl_and_revoke(clients: list[Etcd3Client]) -> None:
    a, b, _ = clients
    lease = a.lease(ttl=30)
    assert a.put("g3/leased", "v", lease=lease) is True
    assert 25 <= lease.ttl() <= 30
    assert lease.refresh() == 30
    assert b.get("g3/leased") == [b"v"]
    assert list(lease.keys()) == [b"g3/leased"]
    assert lease.revoke() is True
    assert b.get("g3/leased") == []
    assert lease.ttl() == -1


def test_watch_sees_puts_and_deletes(clients: list[Etcd3Client]) -> None:
    a, b, _ = clients
    events, cancel = a.watch_prefix("g3w/")
    seen: list[tuple[str, bytes]] = []

    def consume() -> None:
        for event in events:
            seen.append((event.get("type", "PUT"), event["kv"]["key"]))
            if len(seen) == 3:
                return

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(0.5)  # the watch is created before the first write
    b.put("g3w/x", "1")
    b.put("g3w/y", "2")
    b.delete("g3w/x")
    reader.join(timeout=10)
    cancel()
    assert seen == [("PUT", b"g3w/x"), ("PUT", b"g3w/y"), ("DELETE", b"g3w/x")]


def test_lock_is_exclusive(clients: list[Etcd3Client]) -> None:
    a, b, _ = clients
    first = a.lock("g3-lock", ttl=30)
    second = b.lock("g3-lock", ttl=30)
    assert first.acquire() is True
    assert first.is_acquired() is True
    assert second.acquire() is False
    assert first.refresh() == 30
    assert first.release() is True
    assert second.acquire() is True
    assert first.is_acquired() is False
    assert second.release() is True
