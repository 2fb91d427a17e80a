"""The HTTP gateway's pure parts: JSON as etcd's gateway writes and reads it, the route
table, error bodies, call metadata, and the probes' answers (with a stand-in target)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.server import errors, gateway, jsonpb, probes

HEADER = rpc_pb2.ResponseHeader(
    cluster_id=14841639068965178418, member_id=10276657743932975437, revision=2, raft_term=2
)


def test_range_response_is_etcds_bytes() -> None:
    resp = rpc_pb2.RangeResponse(header=HEADER, count=1)
    resp.kvs.add(key=b"foo", value=b"bar", create_revision=2, mod_revision=2, version=1)
    assert jsonpb.dumps(resp) == (
        '{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437",'
        '"revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2",'
        '"mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}'
    )


def test_defaults_are_left_out_but_a_set_oneof_member_and_empty_messages_stay() -> None:
    watch = rpc_pb2.WatchResponse(header=rpc_pb2.ResponseHeader(), created=True)
    watch.events.add(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"a"))
    watch.events.add(kv=kv_pb2.KeyValue(key=b"a"))  # PUT is the enum's zero: left out
    assert jsonpb.dumps(watch) == (
        '{"header":{},"created":true,"events":[{"type":"DELETE","kv":{"key":"YQ=="}},'
        '{"kv":{"key":"YQ=="}}]}'
    )
    txn = rpc_pb2.TxnRequest()
    txn.compare.add(key=b"k", target=rpc_pb2.Compare.CREATE, create_revision=0)
    # create_revision 0 is the oneof's chosen member, so it is written; fields follow
    # declaration order (target before key), not field numbers.
    assert (
        jsonpb.dumps(txn) == '{"compare":[{"target":"CREATE","key":"aw==","create_revision":"0"}]}'
    )
    assert jsonpb.dumps(rpc_pb2.WatchResponse(watch_id=-1)) == '{"watch_id":"-1"}'
    assert jsonpb.dumps(rpc_pb2.HashResponse(hash=4163051025)) == '{"hash":4163051025}'


def test_strings_are_escaped_as_go_escapes_them() -> None:
    member = rpc_pb2.Member(ID=1, name='a<b>&"c"\\\n\x01\u2028é')
    assert jsonpb.dumps(member) == (
        '{"ID":"1","name":"a\\u003cb\\u003e\\u0026\\"c\\"\\\\\\n\\u0001\\u2028é"}'
    )


def test_requests_read_either_field_spelling_numbers_as_strings_and_ignore_unknowns() -> None:
    body = b'{"key":"YWI=","range_end":"AA==","limit":"5","keysOnly":true,"zzz":[1]} trailing'
    req = jsonpb.loads_first(body, rpc_pb2.RangeRequest())
    assert (req.key, req.range_end, req.limit, req.keys_only) == (b"ab", b"\0", 5, True)
    assert jsonpb.loads_first(b"", rpc_pb2.RangeRequest()) == rpc_pb2.RangeRequest()
    assert jsonpb.loads_first(b"  null ", rpc_pb2.RangeRequest()) == rpc_pb2.RangeRequest()
    url_safe = jsonpb.loads_first(b'{"key":"-_8="}', rpc_pb2.RangeRequest())
    assert url_safe.key == b"\xfb\xff"
    grant = jsonpb.loads_first(b'{"TTL": 30, "ID": "77"}', rpc_pb2.LeaseGrantRequest())
    assert (grant.TTL, grant.ID) == (30, 77)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"key":', "unexpected EOF"),
        (b'{"key":"@@"}', "illegal base64 data at input byte 0"),
        (b'{"key":"YWI"}', "illegal base64 data at input byte 0"),
        (b'{"key":"YWJjYWI"}', "illegal base64 data at input byte 4"),
        (b"[]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
        (b'"k"', "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"),
        (b"{x}", "invalid JSON"),
        (b'{"sort_order":"SIDEWAYS"}', "SIDEWAYS"),
    ],
)
def test_bad_request_bodies_are_refused_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(jsonpb.JsonError, match=message.replace("[", r"\[")):
        jsonpb.loads_first(body, rpc_pb2.RangeRequest())


def test_a_request_stream_splits_on_value_boundaries_wherever_the_bytes_break() -> None:
    text = (
        b'{"create_request":{"key":"YQ=="}} {"progress_request":{}}'
        b'{"cancel_request":{"watch_id":"1"}}'
    )
    for cut in range(1, len(text)):
        decoder = jsonpb.StreamDecoder()
        values = decoder.feed(text[:cut]) + decoder.feed(text[cut:])
        decoder.finish()
        assert [next(iter(v)) for v in values if isinstance(v, dict)] == [
            "create_request",
            "progress_request",
            "cancel_request",
        ], cut
    unicode = '{"name":"é"}'.encode()
    decoder = jsonpb.StreamDecoder()
    assert decoder.feed(unicode[:10]) == []  # cut inside the two-byte é
    assert decoder.feed(unicode[10:]) == [{"name": "é"}]
    truncated = jsonpb.StreamDecoder()
    truncated.feed(b'{"a":')
    with pytest.raises(jsonpb.JsonError, match="unexpected EOF"):
        truncated.finish()


def test_routes_are_etcd_35s() -> None:
    g = gateway.Gateway({}, 1024)
    assert isinstance(g.match("POST", "/v3/kv/range?x=1"), gateway.Route)
    assert g.match("POST", "/v3beta/kv/put") == gateway.ROUTES["/v3/kv/put"]
    for alias in ("revoke", "timetolive", "leases"):
        assert gateway.ROUTES[f"/v3/kv/lease/{alias}"] is gateway.ROUTES[f"/v3/lease/{alias}"]
    assert gateway.ROUTES["/v3/maintenance/transfer-leadership"].method == "MoveLeader"
    assert gateway.ROUTES["/v3/kv/compaction"].method == "Compact"
    assert gateway.ROUTES["/v3/auth/user/changepw"].method == "UserChangePassword"
    assert gateway.ROUTES["/v3/auth/role/revoke"].method == "RoleRevokePermission"
    streams = {p for p, r in gateway.ROUTES.items() if r.server_stream}
    assert streams == {"/v3/watch", "/v3/lease/keepalive", "/v3/maintenance/snapshot"}
    assert len(gateway.ROUTES) == 44  # 41 methods (KV 5, Watch 1, Lease 5, Cluster 5,
    # Maintenance 8, Auth 17) and the 3 /v3/kv/lease/ aliases
    missing = g.match("POST", "/v3/kv/nope")
    assert isinstance(missing, gateway.Response)
    assert (missing.status, missing.body) == (404, b"Not Found\n")
    wrong = g.match("GET", "/v3/kv/range")
    assert isinstance(wrong, gateway.Response)
    assert (wrong.status, wrong.body) == (405, b"Method Not Allowed\n")
    assert ("Allow", "POST") in wrong.headers


def test_error_bodies_and_statuses_are_grpc_gateways() -> None:
    resp = gateway.error_response(errors.EMPTY_KEY.code, errors.EMPTY_KEY.message)
    assert resp.status == 400
    assert resp.body == (
        b'{"error":"etcdserver: key is not provided","code":3,'
        b'"message":"etcdserver: key is not provided"}'
    )
    statuses = {
        code: gateway.error_response(code, "m").status
        for code in (
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.UNIMPLEMENTED,
            grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
        )
    }
    assert list(statuses.values()) == [400, 404, 503, 429, 501, 400, 401, 403]
    chunk = gateway.stream_error(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    assert chunk.status == 404
    assert chunk.data == (
        b'{"error":{"grpc_code":5,"http_code":404,'
        b'"message":"etcdserver: requested lease not found","http_status":"Not Found"}}'
    )


def test_call_metadata_carries_the_token_and_grpc_metadata_headers() -> None:
    headers = [
        ("Authorization", "tok.en"),
        ("Grpc-Metadata-Hello", "world"),
        ("traceparent", "00-abc-def-01"),
        ("Content-Type", "application/json"),
    ]
    assert gateway.call_metadata(headers) == (
        ("authorization", "tok.en"),
        ("hello", "world"),
        ("traceparent", "00-abc-def-01"),
    )


class _KV:
    """A servicer that answers Range and fails Put with an etcd error."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[str, str], ...]] = []

    async def Range(
        self, request: rpc_pb2.RangeRequest, context: gateway.CallContext
    ) -> rpc_pb2.RangeResponse:
        self.seen.append(context.invocation_metadata())
        return rpc_pb2.RangeResponse(header=HEADER, count=len(request.key))

    async def Put(
        self, request: rpc_pb2.PutRequest, context: gateway.CallContext
    ) -> rpc_pb2.PutResponse:
        context.set_trailing_metadata((("kvstore-leader", "a1"),))
        await context.abort(errors.NOT_LEADER.code, errors.NOT_LEADER.message)
        raise AssertionError("unreachable")


def test_unary_calls_reach_the_servicer_with_the_metadata() -> None:
    kv = _KV()
    g = gateway.Gateway({"etcdserverpb.KV": kv}, 1024)
    ctx = gateway.CallContext((("authorization", "t"),))
    resp = asyncio.run(g.unary(gateway.ROUTES["/v3/kv/range"], b'{"key":"YWJj"}', ctx))
    assert resp.status == 200
    assert resp.body.endswith(b',"count":"3"}')
    assert kv.seen == [(("authorization", "t"),)]
    failed = asyncio.run(g.unary(gateway.ROUTES["/v3/kv/put"], b"{}", gateway.CallContext(())))
    assert failed.status == 400
    assert (gateway.LEADER_HEADER, "a1") in failed.headers
    too_big = asyncio.run(
        g.unary(gateway.ROUTES["/v3/kv/range"], b'{"key":"' + b"QUFB" * 400 + b'"}', ctx)
    )
    assert too_big.status == 429
    assert b"grpc: received message larger than max" in too_big.body
    auth = asyncio.run(g.unary(gateway.ROUTES["/v3/auth/status"], b"{}", ctx))
    assert auth.status == 501  # this test's member has no Auth servicer
    assert b"unknown method AuthStatus for service etcdserverpb.Auth" in auth.body


class _Watch:
    async def Watch(
        self, requests: AsyncIterator[rpc_pb2.WatchRequest], context: gateway.CallContext
    ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        async for request in requests:
            yield rpc_pb2.WatchResponse(watch_id=request.cancel_request.watch_id)
        raise errors.EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")


def test_streams_write_one_result_line_per_message_and_end_with_the_error() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"cancel_request":{"watch_id":"1"}}{"cancel_'
        yield b'request":{"watch_id":"2"}}'

    async def collect() -> list[gateway.Chunk]:
        g = gateway.Gateway({"etcdserverpb.Watch": _Watch()}, 1024)
        opened = await g.stream(gateway.ROUTES["/v3/watch"], body(), gateway.CallContext(()))
        assert not isinstance(opened, gateway.Response)
        return [chunk async for chunk in opened]

    chunks = asyncio.run(collect())
    assert [c.data for c in chunks[:2]] == [
        b'{"result":{"watch_id":"1"}}\n',
        b'{"result":{"watch_id":"2"}}\n',
    ]
    assert chunks[2].status == 503
    assert chunks[2].data.startswith(b'{"error":{"grpc_code":14,"http_code":503,')


def test_a_stream_whose_first_request_is_bad_is_refused_before_it_starts() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"xx"

    g = gateway.Gateway({"etcdserverpb.Watch": _Watch()}, 1024)
    opened = asyncio.run(g.stream(gateway.ROUTES["/v3/watch"], body(), gateway.CallContext(())))
    assert isinstance(opened, gateway.Response)
    assert opened.status == 500  # grpc-gateway passes the decoder's error on as UNKNOWN
    assert opened.body.startswith(b'{"error":"invalid JSON')


class _Target:
    """Stand-in probe target with settable state."""

    def __init__(self) -> None:
        self.alarm_list: list[int] = []
        self.leader_id = 7
        self.learner = False
        self.failing: dict[bool, errors.EtcdError] = {}
        self.reads: list[bool] = []

    async def read(self, serializable: bool) -> object:
        self.reads.append(serializable)
        if serializable in self.failing:
            raise self.failing[serializable]
        return None

    def target(self) -> probes.Target:
        return probes.Target(
            alarms=lambda: self.alarm_list,
            leader=lambda: self.leader_id,
            is_learner=lambda: self.learner,
            read=self.read,
            timeout_s=1,
        )


def _answer(t: _Target, path: str, method: str = "GET") -> tuple[int, str]:
    resp = asyncio.run(probes.answer(t.target(), method, path))
    return resp.status, resp.body.decode()


def test_health_reports_the_first_failing_cause_as_etcd_does() -> None:
    t = _Target()
    assert _answer(t, "/health") == (200, '{"health":"true","reason":""}')
    assert t.reads == [False]
    t.failing[False] = errors.TIMEOUT
    assert _answer(t, "/health") == (
        503,
        '{"health":"false","reason":"RANGE ERROR:etcdserver: request timed out"}\n',
    )
    assert _answer(t, "/health?serializable=true")[0] == 200
    t.leader_id = 0
    assert _answer(t, "/health")[1] == '{"health":"false","reason":"RAFT NO LEADER"}\n'
    assert _answer(t, "/health?serializable=true")[0] == 200  # no leader needed then
    t.alarm_list = [rpc_pb2.AlarmType.Value("NOSPACE")]
    assert '"reason":"ALARM NOSPACE"' in _answer(t, "/health")[1]
    assert '"reason":"RAFT NO LEADER"' in _answer(t, "/health?exclude=NOSPACE")[1]
    assert _answer(t, "/health", "POST")[0] == 405


def test_livez_and_readyz_list_their_checks() -> None:
    t = _Target()
    assert _answer(t, "/livez") == (200, "ok\n")
    assert _answer(t, "/readyz?verbose") == (
        200,
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n"
        "[+]non_learner ok\nok\n",
    )
    t.failing[False] = errors.NO_LEADER
    t.learner = True
    assert _answer(t, "/readyz") == (
        503,
        "[+]data_corruption ok\n[+]serializable_read ok\n"
        "[-]linearizable_read failed: etcdserver: no leader\n"
        "[-]non_learner failed: not supported for learner\n\n",
    )
    assert _answer(t, "/readyz?exclude=linearizable_read&exclude=non_learner")[0] == 200
    assert _answer(t, "/readyz/serializable_read") == (200, "ok\n")
    assert _answer(t, "/livez") == (200, "ok\n")
    t.alarm_list = [rpc_pb2.AlarmType.Value("CORRUPT")]
    assert "[-]data_corruption failed: alarm activated: CORRUPT" in _answer(t, "/readyz")[1]
    assert _answer(t, "/version") == (200, '{"etcdserver":"3.5.13","etcdcluster":"3.5.0"}')
    assert probes.handles("/readyz/non_learner") and not probes.handles("/readyz/nope")
