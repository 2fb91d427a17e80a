"""The store's HTTP JSON API against etcd 3.4's gateway (Debian etcd-server): the same
requests on two fresh 3-member clusters must get the same statuses and the same JSON, once
the values that differ between any two clusters (ids, terms, remaining TTLs, hashes,
addresses) are masked.

Only behaviour etcd 3.4 and 3.5 share is compared. Where they differ the store follows
3.5, and these are left out or allowed for: FAILED_PRECONDITION is 412 in 3.4's gateway
and 400 in 3.5's; 3.4 orders the error body's keys error, message, code (3.5: error, code,
message; compared here as objects); 3.4 has no /v3/maintenance/hashkv route, no /livez or
/readyz, and no ``reason`` in /health.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Set
from pathlib import Path
from typing import Any

import httpx
import pytest

from kvstore.verify.cluster import RAFT_FLAGS, Kind, LocalCluster
from tests.kvstore.server.conftest import running
from tests.tooling import require_tool

MASKED = {"cluster_id", "member_id", "raft_term", "ID", "hash", "peerURLs", "clientURLs"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, LocalCluster]]:
    """Two fresh clusters: etcd's and the store's."""
    require_tool("etcd")
    root: Path = tmp_path_factory.mktemp("differential")
    etcd = LocalCluster(root / "etcd", 3, kind=Kind.ETCD, extra=RAFT_FLAGS)
    ours = LocalCluster(root / "kvstore", 3, extra=RAFT_FLAGS, client_http=True)
    with running(etcd), running(ours):
        yield etcd, ours


def mask(value: Any, key: str = "") -> Any:
    """``value`` with cluster-specific values replaced by their kind."""
    if key in MASKED:
        return "<masked>"
    if key == "TTL" and isinstance(value, str) and int(value) > 0:
        return "<positive>"  # remaining seconds tick independently
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [mask(v, key) for v in value]
        return sorted(items, key=json.dumps) if key == "members" else items
    return value


def same(etcd: httpx.Response, ours: httpx.Response, known: Set[str] = frozenset()) -> Any:
    """Assert the two answers match (but for our ``known`` extra header fields); return
    ours, masked."""
    assert ours.status_code == etcd.status_code, (etcd.text, ours.text)
    assert ours.headers["content-type"] == etcd.headers["content-type"]
    if etcd.headers["content-type"] == "application/json":
        theirs, mine = mask(etcd.json()), mask(ours.json())
        for name in known:
            mine.get("header", {}).pop(name, None)
        assert mine == theirs
        return mine
    assert ours.text == etcd.text
    return ours.text


def test_same_requests_same_answers(pair: tuple[LocalCluster, LocalCluster]) -> None:
    etcd_url, our_url = (c.members[0].http_url for c in pair)
    with httpx.Client(timeout=15) as http:

        def both(
            path: str, body: object | bytes = None, method: str = "POST", known: str = ""
        ) -> Any:
            content = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
            if method == "GET":
                answers = [http.get(url + path) for url in (etcd_url, our_url)]
            else:
                answers = [http.post(url + path, content=content) for url in (etcd_url, our_url)]
            return same(answers[0], answers[1], known={known} if known else set())

        k, k2 = b64("d/k"), b64("d/k2")
        assert both("/v3/kv/put", {"key": k, "value": b64("v1")})["header"]["revision"] == "2"
        both("/v3/kv/put", {"key": k, "value": b64("v2"), "prev_kv": True})
        both("/v3/kv/put", {"key": k2, "value": b64("x"), "ignore_value": False})
        both("/v3/kv/range", {"key": k})
        both("/v3/kv/range", {"key": b64("d/"), "range_end": b64("d0"), "limit": 1})
        both("/v3/kv/range", {"key": b64("d/"), "range_end": b64("d0"), "count_only": True})
        both("/v3/kv/range", {"key": b64("d/"), "range_end": b64("d0"), "keys_only": True,
                              "sort_order": "DESCEND", "sort_target": "KEY"})  # fmt: skip
        both("/v3/kv/range", {"key": k, "revision": "2"})
        both("/v3/kv/range", {"key": b64("none")})
        for bad in (b"", b'{"key":', b'{"key":"@@"}', b"[]", b'{"key":"YWI"}'):
            both("/v3/kv/range", bad)
        both("/v3beta/kv/range", {"key": k})
        txn = {
            "compare": [{"key": k, "result": "EQUAL", "target": "VALUE", "value": b64("v2")}],
            "success": [{"request_put": {"key": k, "value": b64("v3")}}],
            "failure": [{"request_range": {"key": k}}],
        }
        assert both("/v3/kv/txn", txn)["succeeded"] is True
        assert "succeeded" not in both("/v3/kv/txn", txn)  # false: left out
        both("/v3/kv/deleterange", {"key": k2, "prev_kv": True})
        both("/v3/kv/deleterange", {"key": k2})
        both("/v3/kv/compaction", {"revision": "100"})
        both("/v3/lease/grant", {"TTL": 60, "ID": 7001})
        both("/v3/kv/put", {"key": b64("d/leased"), "value": b64("l"), "lease": 7001})
        both("/v3/lease/timetolive", {"ID": 7001, "keys": True})
        both("/v3/kv/lease/timetolive", {"ID": 7002})
        both("/v3/lease/leases")
        both("/v3/lease/keepalive", {"ID": 7001})
        both("/v3/lease/keepalive", {"ID": 7002})
        both("/v3/lease/revoke", {"ID": 7001})
        both("/v3/lease/revoke", {"ID": 7001})
        both("/v3/kv/range", {"key": b64("d/leased")})
        # etcd's Cluster service sends no revision in its header; the store does.
        both("/v3/cluster/member/list", known="revision")
        both("/v3/cluster/member/remove", {"ID": 5})
        both("/v3/maintenance/hash")
        both("/v3/kv/nope")
        both("/v3/kv/range", method="GET")
        both("/nope", method="GET")
        versions = [http.get(url + "/version").json() for url in (etcd_url, our_url)]
        assert list(versions[1]) == list(versions[0]) == ["etcdserver", "etcdcluster"]

        # FAILED_PRECONDITION: 412 from 3.4's gateway, 400 from 3.5's (and the store's).
        # (Sent to the leaders: a follower of the store forwards MoveLeader to its leader,
        # where etcd's answers "not leader".)
        answers = [
            http.post(c.leader().http_url + "/v3/maintenance/transfer-leadership",
                      json={"targetID": 5})
            for c in pair
        ]  # fmt: skip
        assert [a.status_code for a in answers] == [412, 400]
        assert answers[0].json() == answers[1].json()

        # A watch from revision 1 replays the history, as result lines (how the events are
        # split into responses is left to each server, as etcd's own clients allow).
        body = {"create_request": {"key": k, "start_revision": 1, "prev_kv": True}}
        streams = []
        for url in (etcd_url, our_url):
            with http.stream("POST", url + "/v3/watch", json=body) as resp:
                lines = resp.iter_lines()
                created = mask(json.loads(next(lines)))
                events: list[Any] = []
                while len(events) < 3:
                    events += json.loads(next(lines))["result"]["events"]
                streams.append((created, mask(events)))
        assert streams[1] == streams[0]
        assert streams[1][0]["result"]["created"] is True
        assert [e["kv"]["mod_revision"] for e in streams[1][1]] == ["2", "3", "5"]
