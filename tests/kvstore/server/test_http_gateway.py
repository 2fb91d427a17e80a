"""The HTTP JSON API of a real 3-member store (``--listen-client-http-urls``): every route
family, the streams, the errors, the probes, and the HTTP edges, over real sockets."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kvstore.server import errors
from kvstore.verify.cluster import LocalCluster, Member


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15) as client:
        yield client


def post(client: httpx.Client, m: Member, path: str, body: object = None) -> httpx.Response:
    return client.post(m.http_url + path, json={} if body is None else body)


def ok(client: httpx.Client, m: Member, path: str, body: object = None) -> Any:
    resp = post(client, m, path, body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["grpc-metadata-content-type"] == "application/grpc"
    data = resp.json()
    assert isinstance(data, dict)
    return data  # JSON: indexed freely by the tests


def _header(cluster: LocalCluster, m: Member) -> tuple[int, int]:
    with cluster.client([m]) as c:
        st = c.status(m.endpoint)
    return st.header.cluster_id, st.header.member_id


def test_kv_routes_answer_with_etcds_json(http_cluster: LocalCluster, http: httpx.Client) -> None:
    m1, m2, _ = http_cluster.members
    first = ok(http, m1, "/v3/kv/put", {"key": b64("gw/a"), "value": b64("1")})
    rev = int(first["header"]["revision"])
    put = post(http, m1, "/v3/kv/put", {"key": b64("gw/a"), "value": b64("2"), "prev_kv": True})
    cluster_id, member_id = _header(http_cluster, m1)
    term = put.json()["header"]["raft_term"]
    assert put.text == (
        f'{{"header":{{"cluster_id":"{cluster_id}","member_id":"{member_id}",'
        f'"revision":"{rev + 1}","raft_term":"{term}"}},"prev_kv":{{"key":"{b64("gw/a")}",'
        f'"create_revision":"{rev}","mod_revision":"{rev}","version":"1","value":"{b64("1")}"}}}}'
    )
    ok(http, m1, "/v3/kv/put", {"key": b64("gw/b"), "value": b64("3")})
    # Linearizable read on another member, with the JSON names of the fields too.
    got = ok(http, m2, "/v3/kv/range", {"key": b64("gw/"), "rangeEnd": b64("gw0"), "limit": 1})
    assert got["count"] == "2" and got["more"] is True
    assert got["kvs"] == [
        {
            "key": b64("gw/a"),
            "create_revision": str(rev),
            "mod_revision": str(rev + 1),
            "version": "2",
            "value": b64("2"),
        }
    ]
    counted = ok(http, m2, "/v3/kv/range", {"key": b64("gw/"), "range_end": b64("gw0"),
                                           "count_only": True})  # fmt: skip
    assert "kvs" not in counted and counted["count"] == "2"
    txn = ok(http, m1, "/v3/kv/txn", {
        "compare": [{"key": b64("gw/a"), "result": "EQUAL", "target": "VALUE",
                     "value": b64("2")}],
        "success": [{"request_put": {"key": b64("gw/c"), "value": b64("4")}},
                    {"request_range": {"key": b64("gw/c")}}],
        "failure": [{"request_delete_range": {"key": b64("gw/a")}}],
    })  # fmt: skip
    assert txn["succeeded"] is True
    responses = txn["responses"]
    assert isinstance(responses, list)
    assert list(responses[0]) == ["response_put"]
    assert responses[1]["response_range"]["kvs"][0]["value"] == b64("4")
    deleted = ok(http, m2, "/v3/kv/deleterange",
                 {"key": b64("gw/"), "range_end": b64("gw0"), "prev_kv": True})  # fmt: skip
    assert deleted["deleted"] == "3"
    assert sorted(kv["key"] for kv in deleted["prev_kvs"]) == [
        b64("gw/a"), b64("gw/b"), b64("gw/c")]  # fmt: skip
    head = int(deleted["header"]["revision"])
    assert ok(http, m1, "/v3/kv/compaction", {"revision": str(rev), "physical": True})
    with http_cluster.client() as c:
        assert c.get(b"gw/", prefix=True).count == 0
    compacted = post(http, m1, "/v3/kv/range", {"key": b64("gw/a"), "revision": str(rev - 1)})
    assert compacted.status_code == 400
    assert compacted.json() == {"error": errors.COMPACTED.message, "code": 11,
                                "message": errors.COMPACTED.message}  # fmt: skip
    future = post(http, m1, "/v3/kv/range", {"key": b64("gw/a"), "revision": str(head + 99)})
    assert future.json()["message"] == errors.FUTURE_REV.message


def test_errors_are_grpc_gateways(http_cluster: LocalCluster, http: httpx.Client) -> None:
    m = http_cluster.members[0]
    empty = post(http, m, "/v3/kv/put", {"value": b64("v")})
    assert empty.status_code == 400
    assert empty.content == (
        b'{"error":"etcdserver: key is not provided","code":3,'
        b'"message":"etcdserver: key is not provided"}'
    )
    cases = [
        (b'{"key":', 400, 3, "unexpected EOF"),
        (b'{"key":"@@"}', 400, 3, "illegal base64 data at input byte 0"),
        (b"[1]", 400, 3, "json: cannot unmarshal array into Go value"),
        (b'{"key":"YQ==","sort_order":"UP"}', 400, 3, 'unknown value "UP" for enum'),
    ]
    for body, status, code, message in cases:
        resp = http.post(m.http_url + "/v3/kv/range", content=body)
        assert resp.status_code == status, body
        assert resp.json()["code"] == code
        assert resp.json()["message"].startswith(message), resp.text
    lease = post(http, m, "/v3/lease/revoke", {"ID": "12345"})
    assert (lease.status_code, lease.json()["code"]) == (404, 5)
    assert lease.json()["error"] == errors.LEASE_NOT_FOUND.message
    missing = post(http, m, "/v3/kv/nope")
    assert (missing.status_code, missing.text) == (404, "Not Found\n")
    assert missing.headers["content-type"] == "text/plain; charset=utf-8"
    wrong = http.get(m.http_url + "/v3/kv/range")
    assert (wrong.status_code, wrong.text, wrong.headers["allow"]) == (
        405, "Method Not Allowed\n", "POST")  # fmt: skip
    outside = http.get(m.http_url + "/nope")
    assert (outside.status_code, outside.text) == (404, "404 page not found\n")
    beta = http.post(m.http_url + "/v3beta/kv/range", json={"key": b64("x")})
    assert beta.status_code == 200 and beta.json()["header"]["cluster_id"]
    big = post(http, m, "/v3/kv/put", {"key": b64("big"), "value": b64(b"x" * (2 * 1024**2))})
    assert (big.status_code, big.json()["code"]) == (429, 8)
    assert "grpc: received message larger than max" in big.json()["message"]
    downgrade = post(http, m, "/v3/maintenance/downgrade", {"action": "VALIDATE"})
    assert (downgrade.status_code, downgrade.json()["code"]) == (501, 12)


def test_auth_over_http_users_roles_tokens_and_checks(
    http_cluster: LocalCluster, http: httpx.Client
) -> None:
    """The /v3/auth routes reach the Auth service and the Authorization header carries the
    token, as in etcd's gateway. Auth is off again at the end (the cluster is shared)."""
    m = http_cluster.members[0]
    status = ok(http, m, "/v3/auth/status")
    assert not status.get("enabled") and int(status["authRevision"]) >= 1
    read_pub = {"permType": "READ", "key": b64("pub/"), "range_end": b64("pub0")}
    for path, body in [
        ("user/add", {"name": "root", "password": "root-pw"}),
        ("user/grant", {"user": "root", "role": "root"}),
        ("user/add", {"name": "reader", "password": "reader-pw"}),
        ("role/add", {"name": "r"}),
        ("role/grant", {"name": "r", "perm": read_pub}),
        ("user/grant", {"user": "reader", "role": "r"}),
    ]:
        ok(http, m, f"/v3/auth/{path}", body)
    assert ok(http, m, "/v3/auth/user/list")["users"] == ["reader", "root"]
    ok(http, m, "/v3/kv/put", {"key": b64("pub/x"), "value": b64("1")})
    ok(http, m, "/v3/auth/enable")
    try:
        anonymous = post(http, m, "/v3/kv/range", {"key": b64("pub/x")})
        assert anonymous.json()["message"] == "etcdserver: user name is empty"
        bad = post(http, m, "/v3/auth/authenticate", {"name": "reader", "password": "no"})
        assert bad.json()["message"] == (
            "etcdserver: authentication failed, invalid user ID or password"
        )
        token = ok(http, m, "/v3/auth/authenticate", {"name": "reader", "password": "reader-pw"})
        as_reader = {"Authorization": token["token"]}
        got = http.post(f"{m.http_url}/v3/kv/range", json={"key": b64("pub/x")},
                        headers=as_reader)  # fmt: skip
        assert got.status_code == 200 and got.json()["kvs"][0]["value"] == b64("1")
        write = {"key": b64("pub/x"), "value": b64("2")}
        denied = http.post(f"{m.http_url}/v3/kv/put", json=write, headers=as_reader)
        assert (denied.status_code, denied.json()["message"]) == (
            403, "etcdserver: permission denied")  # fmt: skip
    finally:
        root = post(http, m, "/v3/auth/authenticate", {"name": "root", "password": "root-pw"})
        off = http.post(f"{m.http_url}/v3/auth/disable", json={},
                        headers={"Authorization": root.json()["token"]})  # fmt: skip
        assert off.status_code == 200, off.text
    for path, body in [("user/delete", {"name": "reader"}), ("user/delete", {"name": "root"}),
                       ("role/delete", {"role": "r"})]:  # fmt: skip
        ok(http, m, f"/v3/auth/{path}", body)


class RawStream:
    """A hand-driven HTTP/1.1 request with a chunked body, for bidirectional streams."""

    def __init__(self, m: Member, path: str) -> None:
        self.sock = socket.create_connection((m.host, m.http_port), timeout=10)
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {m.host}\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/json\r\n\r\n".encode()
        )
        self.buffer = b""
        self.status = 0

    def send(self, value: object) -> None:
        data = json.dumps(value).encode()
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def end_body(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buffer += data

    def message(self) -> Any:
        """The next streamed JSON object (one chunk each)."""
        if not self.status:
            while b"\r\n\r\n" not in self.buffer:
                self._fill()
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.status = int(head.split()[1])
            assert b"Transfer-Encoding: chunked" in head
        while b"\r\n" not in self.buffer:
            self._fill()
        size_line, rest = self.buffer.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            self._fill()
            rest = self.buffer.split(b"\r\n", 1)[1]
        chunk, self.buffer = rest[:size], rest[size + 2 :]
        assert chunk.endswith(b"\n") or size == 0, chunk
        data = json.loads(chunk) if size else {}
        assert isinstance(data, dict)
        return data

    def close(self) -> None:
        self.sock.close()


def _watchers(m: Member, http: httpx.Client) -> float:
    text = http.get(m.metrics_url + "/metrics").text
    found = re.search(r"^etcd_debugging_mvcc_watcher_total (\S+)$", text, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


def test_watch_streams_events_and_takes_requests_while_it_runs(
    http_cluster: LocalCluster, http: httpx.Client
) -> None:
    m1, m2, m3 = http_cluster.members
    before = _watchers(m1, http)
    stream = RawStream(m1, "/v3/watch")
    try:
        stream.send({"create_request": {"key": b64("w/"), "range_end": b64("w0"),
                                        "prev_kv": True}})  # fmt: skip
        created = stream.message()
        assert stream.status == 200
        result = created["result"]
        assert isinstance(result, dict) and result["created"] is True
        assert "watch_id" not in result  # the first watcher's id is 0: left out
        ok(http, m2, "/v3/kv/put", {"key": b64("w/1"), "value": b64("a")})
        ok(http, m3, "/v3/kv/put", {"key": b64("w/1"), "value": b64("b")})
        ok(http, m2, "/v3/kv/deleterange", {"key": b64("w/1")})
        events: list[Any] = []
        while len(events) < 3:
            got = stream.message()["result"]
            assert isinstance(got, dict)
            events += got.get("events", [])
        assert [e.get("type", "PUT") for e in events] == ["PUT", "PUT", "DELETE"]
        assert events[1]["kv"]["value"] == b64("b")
        assert events[1]["prev_kv"]["value"] == b64("a")
        assert "value" not in events[2]["kv"]
        stream.send({"progress_request": {}})
        progress = stream.message()["result"]
        assert progress["watch_id"] == "-1"
        stream.send({"cancel_request": {"watch_id": "0"}})
        cancelled = stream.message()["result"]
        assert cancelled["canceled"] is True
        stream.send({"create_request": {"key": b64("w2")}})
        assert stream.message()["result"]["watch_id"] == "1"
        deadline = time.monotonic() + 5
        while _watchers(m1, http) != before + 1:  # the gauge is refreshed every tick
            assert time.monotonic() < deadline, "the second watcher never counted"
            time.sleep(0.1)
    finally:
        stream.close()
    deadline = time.monotonic() + 5
    while _watchers(m1, http) != before:  # the client went away: its watchers are dropped
        assert time.monotonic() < deadline, "watcher outlived its HTTP connection"
        time.sleep(0.1)


def test_watch_with_a_whole_body_keeps_streaming(
    http_cluster: LocalCluster, http: httpx.Client
) -> None:
    """etcd3gw and curl send the create request as the whole body; the watch goes on."""
    m1, m2, _ = http_cluster.members
    body = {"create_request": {"key": b64("ww")}}
    with http.stream("POST", m1.http_url + "/v3/watch", json=body) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        assert json.loads(next(lines))["result"]["created"] is True
        ok(http, m2, "/v3/kv/put", {"key": b64("ww"), "value": b64("z")})
        event = json.loads(next(lines))["result"]["events"][0]
        assert event["kv"]["value"] == b64("z")
    bad = http.post(m1.http_url + "/v3/watch", content=b"xx")
    assert bad.status_code == 500 and bad.json()["code"] == 2


def test_lease_routes(http_cluster: LocalCluster, http: httpx.Client) -> None:
    m1, m2, _ = http_cluster.members
    granted = ok(http, m1, "/v3/lease/grant", {"TTL": 60})
    lease_id = granted["ID"]
    assert isinstance(lease_id, str) and granted["TTL"] == "60"
    ok(http, m1, "/v3/kv/put", {"key": b64("leased"), "value": b64("v"), "lease": lease_id})
    for path in ("/v3/lease/timetolive", "/v3/kv/lease/timetolive"):
        ttl = ok(http, m2, path, {"ID": lease_id, "keys": True})
        assert ttl["grantedTTL"] == "60" and 55 <= int(ttl["TTL"]) <= 60
        assert ttl["keys"] == [b64("leased")]
    for path in ("/v3/lease/leases", "/v3/kv/lease/leases"):
        assert {"ID": lease_id} in ok(http, m2, path)["leases"]
    body = json.dumps({"ID": lease_id}) + "\n" + json.dumps({"ID": lease_id})
    with http.stream("POST", m1.http_url + "/v3/lease/keepalive", content=body) as resp:
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert [(x["result"]["ID"], x["result"]["TTL"]) for x in lines] == [(lease_id, "60")] * 2
    ok(http, m2, "/v3/kv/lease/revoke", {"ID": lease_id})
    gone = post(http, m1, "/v3/lease/revoke", {"ID": lease_id})
    assert gone.status_code == 404
    with http.stream("POST", m1.http_url + "/v3/lease/keepalive", json={"ID": lease_id}) as resp:
        after = json.loads(resp.read())
    assert after["result"]["ID"] == lease_id and "TTL" not in after["result"]
    with http_cluster.client() as c:
        assert c.get(b"leased").count == 0


def test_cluster_routes(http_cluster: LocalCluster, http: httpx.Client) -> None:
    m1, m2, _ = http_cluster.members
    listed = ok(http, m1, "/v3/cluster/member/list", {"linearizable": True})
    members = listed["members"]
    assert isinstance(members, list) and len(members) == 3
    assert {m["name"] for m in members} == {m.name for m in http_cluster.members}
    assert all(re.fullmatch(r"\d+", m["ID"]) for m in members)
    added = ok(http, m1, "/v3/cluster/member/add",
               {"peerURLs": ["http://127.0.0.1:1"], "isLearner": True})  # fmt: skip
    new = added["member"]
    assert isinstance(new, dict) and new["isLearner"] is True
    updated = ok(http, m2, "/v3/cluster/member/update",
                 {"ID": new["ID"], "peerURLs": ["http://127.0.0.1:2"]})  # fmt: skip
    assert {"ID": new["ID"], "peerURLs": ["http://127.0.0.1:2"], "isLearner": True} in (
        updated["members"]
    )
    promote = post(http, m1, "/v3/cluster/member/promote", {"ID": new["ID"]})
    assert (promote.status_code, promote.json()["message"]) == (
        400,
        errors.LEARNER_NOT_READY.message,
    )
    removed = ok(http, m2, "/v3/cluster/member/remove", {"ID": new["ID"]})
    assert len(removed["members"]) == 3
    again = post(http, m1, "/v3/cluster/member/remove", {"ID": new["ID"]})
    assert (again.status_code, again.json()["error"]) == (404, errors.MEMBER_NOT_FOUND.message)


def test_maintenance_routes(http_cluster: LocalCluster, http: httpx.Client) -> None:
    leader = http_cluster.leader()
    follower = next(m for m in http_cluster.members if m is not leader)
    status = ok(http, follower, "/v3/maintenance/status")
    assert status["version"] == "3.5.13"
    assert status["leader"] != status["header"]["member_id"]
    assert "alarms" not in ok(http, follower, "/v3/maintenance/alarm", {"action": "GET"})
    hashkv = ok(http, follower, "/v3/maintenance/hashkv", {"revision": "0"})
    assert isinstance(hashkv["hash"], int) and int(hashkv["hash_revision"]) > 0
    assert isinstance(ok(http, follower, "/v3/maintenance/hash")["hash"], int)
    assert "header" in ok(http, follower, "/v3/maintenance/defragment")
    blob = b""
    with http.stream("POST", follower.http_url + "/v3/maintenance/snapshot", json={}) as resp:
        assert resp.status_code == 200
        results = [json.loads(line)["result"] for line in resp.iter_lines() if line]
    for part in results:
        blob += base64.b64decode(part.get("blob", ""))
    assert results[-1].get("remaining_bytes", "0") == "0" and len(blob) > 0
    # As etcd's: remaining_bytes counts the database; its SHA-256 comes last, alone.
    assert int(results[0].get("remaining_bytes", "0")) == len(blob) - 32 - len(
        base64.b64decode(results[0]["blob"])
    )
    with http_cluster.client([follower]) as c:
        target = c.status(follower.endpoint).header.member_id
    ok(http, leader, "/v3/maintenance/transfer-leadership", {"targetID": str(target)})
    assert http_cluster.leader(timeout=10) is follower
    bad = post(http, follower, "/v3/maintenance/transfer-leadership", {"targetID": "5"})
    assert (bad.status_code, bad.json()["message"]) == (400, errors.BAD_LEADER_TRANSFEREE.message)


def test_probes_version_and_metrics(http_cluster: LocalCluster, http: httpx.Client) -> None:
    for m in http_cluster.members:
        for base in (m.http_url, m.metrics_url):  # both ports answer the probes
            health = http.get(base + "/health")
            assert (health.status_code, health.text) == (200, '{"health":"true","reason":""}')
            assert http.get(base + "/livez").text == "ok\n"
            ready = http.get(base + "/readyz?verbose")
            assert ready.status_code == 200 and ready.text.endswith("[+]non_learner ok\nok\n")
            assert http.get(base + "/readyz/linearizable_read").text == "ok\n"
    m = http_cluster.members[0]
    assert http.get(m.http_url + "/version").json() == {
        "etcdserver": "3.5.13", "etcdcluster": "3.5.0"}  # fmt: skip
    refused = http.post(m.http_url + "/health")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET")

    def handled_ranges() -> float:
        text = http.get(m.http_url + "/metrics").text  # the same registry as the metrics port
        pattern = (
            r'^grpc_server_handled_total\{grpc_code="OK",grpc_method="Range",'
            r'grpc_service="etcdserverpb.KV",grpc_type="unary"\} (\S+)$'
        )
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    # etcdctl check datascale reads this one (from the client URL it is given).
    assert "\nprocess_resident_memory_bytes " in http.get(m.http_url + "/metrics").text
    before = handled_ranges()
    for _ in range(3):
        ok(http, m, "/v3/kv/range", {"key": b64("metric")})
    assert handled_ranges() == before + 3  # gateway calls are counted as gRPC calls are


def _raw(m: Member, port: int, data: bytes, until_close: bool = True) -> bytes:
    with socket.create_connection((m.host, port), timeout=10) as sock:
        sock.sendall(data)
        if not until_close:
            return sock.recv(65536)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def _split(raw: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Consecutive Content-Length responses."""
    out = []
    while raw:
        head, raw = raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers.get("content-length", "0"))
        assert len(raw) >= size, "the body announced was not sent whole"
        out.append((lines[0], headers, raw[:size]))
        raw = raw[size:]
    return out


def test_http_edges(http_cluster: LocalCluster, http: httpx.Client) -> None:
    m = http_cluster.members[0]
    body = json.dumps({"key": b64("edge")}).encode()
    # Two requests on one connection, the second with a chunked body, then close.
    two = (
        b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
        b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (len(body), body, body[:5], len(body) - 5, body[5:])
    )
    answers = _split(_raw(m, m.http_port, two))
    assert [a[0] for a in answers] == ["HTTP/1.1 200 OK"] * 2
    assert answers[0][2] == answers[1][2] and b'"count"' not in answers[0][2]
    assert answers[1][1]["connection"] == "close"
    assert answers[0][1]["access-control-allow-origin"] == "*"
    # Expect: 100-continue is answered before the body is sent.
    head = (
        b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n"
    )
    with socket.create_connection((m.host, m.http_port), timeout=10) as sock:
        sock.sendall(head % len(body))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    bad_line = _split(_raw(m, m.http_port, b"NONSENSE\r\n\r\n"))
    assert bad_line[0][0] == "HTTP/1.1 400 Bad Request" and bad_line[0][2] == b"400 Bad Request\n"
    huge = b"GET /health HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"
    assert (
        _split(_raw(m, m.http_port, huge))[0][0] == "HTTP/1.1 431 Request Header Fields Too Large"
    )
    options = http.options(m.http_url + "/v3/kv/range")
    assert options.status_code == 200 and options.headers["access-control-allow-headers"] == (
        "accept, content-type, authorization"
    )
    assert http.head(m.http_url + "/health").content == b""


def test_metrics_port_sends_the_whole_body_it_announces(http_cluster: LocalCluster) -> None:
    m = http_cluster.members[0]
    request = b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    ((status, headers, body),) = _split(_raw(m, m.metrics_port, request))
    assert status == "HTTP/1.1 404 Not Found"
    assert int(headers["content-length"]) == len(body) > 0
    assert b"--listen-client-http-urls" in body
    ((status, _, body),) = _split(_raw(m, m.metrics_port, b"DELETE /healthz HTTP/1.0\r\n\r\n"))
    assert (status, body) == ("HTTP/1.1 405 Method Not Allowed", b"Method Not Allowed\n")
