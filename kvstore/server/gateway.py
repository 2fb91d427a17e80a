"""The etcd v3 JSON API (etcd's grpc-gateway mapping), independent of HTTP I/O.

Each ``POST /v3/...`` route names one gRPC method; the request body is that method's
request message as JSON (:mod:`kvstore.server.jsonpb`), and the call goes to the very
servicer object the gRPC server uses, so metrics, tracing, validation and error
translation are shared. This module only maps: a route and body in, a status, headers and
body (or a stream of chunks) out. :mod:`kvstore.server.http` does the I/O.

What goes out is what etcd 3.5's gateway (grpc-gateway v1.16) sends:

- unary calls: 200 and the response message, or the HTTP status of the gRPC code with
  ``{"error":M,"code":N,"message":M}``;
- streams (watch, lease keep-alive, snapshot): chunked, one ``{"result":{...}}`` line per
  message; an error ends the stream with ``{"error":{"grpc_code":N,"http_code":H,
  "message":M,"http_status":"..."}}`` (with that status if nothing was sent yet);
- a path outside the routes: 404 ``Not Found``; a route with another method: 405
  ``Method Not Allowed`` (plain text, as grpc-gateway answers routing errors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

import grpc
from google.protobuf.message import Message

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.server import errors, jsonpb

log = logging.getLogger(__name__)

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
Headers = tuple[tuple[str, str], ...]
PLAIN_HEADERS: Headers = (("Content-Type", TEXT), ("X-Content-Type-Options", "nosniff"))

_C = grpc.StatusCode
HTTP_OF_CODE: dict[grpc.StatusCode, int] = {
    _C.OK: 200,
    _C.CANCELLED: 408,
    _C.UNKNOWN: 500,
    _C.INVALID_ARGUMENT: 400,
    _C.DEADLINE_EXCEEDED: 504,
    _C.NOT_FOUND: 404,
    _C.ALREADY_EXISTS: 409,
    _C.PERMISSION_DENIED: 403,
    _C.UNAUTHENTICATED: 401,
    _C.RESOURCE_EXHAUSTED: 429,
    _C.FAILED_PRECONDITION: 400,  # grpc-gateway's choice, not 412
    _C.ABORTED: 409,
    _C.OUT_OF_RANGE: 400,
    _C.UNIMPLEMENTED: 501,
    _C.INTERNAL: 500,
    _C.UNAVAILABLE: 503,
    _C.DATA_LOSS: 500,
}
"""grpc-gateway's HTTPStatusFromCode."""

GRPC_HEADERS: Headers = (("Grpc-Metadata-Content-Type", "application/grpc"),)
"""The gRPC response headers grpc-gateway forwards with every answer that got one."""
LEADER_HEADER = "Grpc-Trailer-Kvstore-Leader"
"""The ``kvstore-leader`` trailing metadata of an error, as grpc-gateway names trailers."""


@dataclass(frozen=True, slots=True)
class Route:
    """One gateway path: the gRPC method it calls and how it streams."""

    service: str
    method: str
    request: type[Message]
    client_stream: bool = False
    server_stream: bool = False


def _routes() -> dict[str, Route]:
    kv, lease, cluster = "etcdserverpb.KV", "etcdserverpb.Lease", "etcdserverpb.Cluster"
    maint, auth = "etcdserverpb.Maintenance", "etcdserverpb.Auth"
    p = rpc_pb2
    table: dict[str, Route] = {
        "/v3/kv/range": Route(kv, "Range", p.RangeRequest),
        "/v3/kv/put": Route(kv, "Put", p.PutRequest),
        "/v3/kv/deleterange": Route(kv, "DeleteRange", p.DeleteRangeRequest),
        "/v3/kv/txn": Route(kv, "Txn", p.TxnRequest),
        "/v3/kv/compaction": Route(kv, "Compact", p.CompactionRequest),
        "/v3/watch": Route("etcdserverpb.Watch", "Watch", p.WatchRequest, True, True),
        "/v3/lease/grant": Route(lease, "LeaseGrant", p.LeaseGrantRequest),
        "/v3/lease/revoke": Route(lease, "LeaseRevoke", p.LeaseRevokeRequest),
        "/v3/lease/keepalive": Route(lease, "LeaseKeepAlive", p.LeaseKeepAliveRequest, True, True),
        "/v3/lease/timetolive": Route(lease, "LeaseTimeToLive", p.LeaseTimeToLiveRequest),
        "/v3/lease/leases": Route(lease, "LeaseLeases", p.LeaseLeasesRequest),
        "/v3/cluster/member/add": Route(cluster, "MemberAdd", p.MemberAddRequest),
        "/v3/cluster/member/remove": Route(cluster, "MemberRemove", p.MemberRemoveRequest),
        "/v3/cluster/member/update": Route(cluster, "MemberUpdate", p.MemberUpdateRequest),
        "/v3/cluster/member/list": Route(cluster, "MemberList", p.MemberListRequest),
        "/v3/cluster/member/promote": Route(cluster, "MemberPromote", p.MemberPromoteRequest),
        "/v3/maintenance/alarm": Route(maint, "Alarm", p.AlarmRequest),
        "/v3/maintenance/status": Route(maint, "Status", p.StatusRequest),
        "/v3/maintenance/defragment": Route(maint, "Defragment", p.DefragmentRequest),
        "/v3/maintenance/hash": Route(maint, "Hash", p.HashRequest),
        "/v3/maintenance/hashkv": Route(maint, "HashKV", p.HashKVRequest),
        "/v3/maintenance/snapshot": Route(maint, "Snapshot", p.SnapshotRequest, False, True),
        "/v3/maintenance/transfer-leadership": Route(maint, "MoveLeader", p.MoveLeaderRequest),
        "/v3/maintenance/downgrade": Route(maint, "Downgrade", p.DowngradeRequest),
        "/v3/auth/enable": Route(auth, "AuthEnable", p.AuthEnableRequest),
        "/v3/auth/disable": Route(auth, "AuthDisable", p.AuthDisableRequest),
        "/v3/auth/status": Route(auth, "AuthStatus", p.AuthStatusRequest),
        "/v3/auth/authenticate": Route(auth, "Authenticate", p.AuthenticateRequest),
        "/v3/auth/user/add": Route(auth, "UserAdd", p.AuthUserAddRequest),
        "/v3/auth/user/get": Route(auth, "UserGet", p.AuthUserGetRequest),
        "/v3/auth/user/list": Route(auth, "UserList", p.AuthUserListRequest),
        "/v3/auth/user/delete": Route(auth, "UserDelete", p.AuthUserDeleteRequest),
        "/v3/auth/user/changepw": Route(
            auth, "UserChangePassword", p.AuthUserChangePasswordRequest
        ),
        "/v3/auth/user/grant": Route(auth, "UserGrantRole", p.AuthUserGrantRoleRequest),
        "/v3/auth/user/revoke": Route(auth, "UserRevokeRole", p.AuthUserRevokeRoleRequest),
        "/v3/auth/role/add": Route(auth, "RoleAdd", p.AuthRoleAddRequest),
        "/v3/auth/role/get": Route(auth, "RoleGet", p.AuthRoleGetRequest),
        "/v3/auth/role/list": Route(auth, "RoleList", p.AuthRoleListRequest),
        "/v3/auth/role/delete": Route(auth, "RoleDelete", p.AuthRoleDeleteRequest),
        "/v3/auth/role/grant": Route(auth, "RoleGrantPermission", p.AuthRoleGrantPermissionRequest),
        "/v3/auth/role/revoke": Route(
            auth, "RoleRevokePermission", p.AuthRoleRevokePermissionRequest
        ),
    }
    # etcd 3.5 registers the lease calls under /v3/kv/lease/ as well.
    for name in ("revoke", "timetolive", "leases"):
        table[f"/v3/kv/lease/{name}"] = table[f"/v3/lease/{name}"]
    return table


ROUTES: Mapping[str, Route] = _routes()


@dataclass(frozen=True, slots=True)
class Response:
    """A whole HTTP response."""

    status: int
    body: bytes
    headers: Headers = (("Content-Type", JSON),)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed response; ``status`` is set on an error chunk, which ends
    the stream (and decides the status if it comes first)."""

    data: bytes
    status: int | None = None


def plain(status: int, text: str) -> Response:
    """A plain-text answer, as Go's ``http.Error`` writes it."""
    return Response(status, (text + "\n").encode(), PLAIN_HEADERS)


def not_found() -> Response:
    """grpc-gateway's answer to a path it has no route for."""
    return plain(404, "Not Found")


def method_not_allowed() -> Response:
    """grpc-gateway's answer to a route asked with another method than POST."""
    resp = plain(405, "Method Not Allowed")
    return Response(resp.status, resp.body, (*resp.headers, ("Allow", "POST")))


def error_body(code: grpc.StatusCode, message: str) -> bytes:
    """grpc-gateway's unary error body."""
    text = jsonpb.quote(message)
    number = code.value[0]
    parts = [f'"error":{text}'] if message else []
    if number:
        parts.append(f'"code":{number}')
    if message:
        parts.append(f'"message":{text}')
    return ("{" + ",".join(parts) + "}").encode()


def error_response(code: grpc.StatusCode, message: str, leader: str = "") -> Response:
    """A unary call's failure."""
    headers: Headers = (("Content-Type", JSON),)
    if leader:
        headers = (*headers, (LEADER_HEADER, leader))
    return Response(HTTP_OF_CODE.get(code, 500), error_body(code, message), headers)


def stream_error(code: grpc.StatusCode, message: str) -> Chunk:
    """The last chunk of a stream that failed."""
    http_code = HTTP_OF_CODE.get(code, 500)
    parts = [f'"grpc_code":{code.value[0]}'] if code.value[0] else []
    parts.append(f'"http_code":{http_code}')
    if message:
        parts.append(f'"message":{jsonpb.quote(message)}')
    parts.append(f'"http_status":{jsonpb.quote(HTTPStatus(http_code).phrase)}')
    return Chunk(('{"error":{' + ",".join(parts) + "}}").encode(), http_code)


def result_chunk(message: Message) -> Chunk:
    """One message of a stream, with grpc-gateway's newline delimiter."""
    return Chunk(('{"result":' + jsonpb.dumps(message) + "}\n").encode())


class Abort(Exception):
    """Raised by :meth:`CallContext.abort`, as grpc's ``abort`` raises."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class CallContext:
    """What a servicer uses of ``grpc.aio.ServicerContext``, for a call that came over
    HTTP: the request's metadata (``authorization`` from the ``Authorization`` header,
    ``Grpc-Metadata-*`` headers, the W3C trace headers), abort, trailing metadata."""

    metadata: tuple[tuple[str, str], ...]
    peer_address: str = ""
    trailing: tuple[tuple[str, str], ...] = ()
    code: grpc.StatusCode | None = None
    details: str = ""
    _done: list[Callable[[Any], None]] = field(default_factory=list)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        """The request's metadata as (key, value) pairs."""
        return self.metadata

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()
    ) -> None:
        """End the call with ``code``: raises :class:`Abort`."""
        if trailing_metadata:
            self.set_trailing_metadata(trailing_metadata)
        raise Abort(code, details)

    def set_trailing_metadata(self, metadata: Sequence[Any]) -> None:
        """Keep the trailers (the leader hint goes out as a header)."""
        self.trailing = tuple((str(k), str(v)) for k, v in metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        """As grpc's: the status a call ends with when it returns normally."""
        self.code = code

    def set_details(self, details: str) -> None:
        """As grpc's."""
        self.details = details

    def peer(self) -> str:
        """The client's address, as grpc spells it (``ipv4:127.0.0.1:5000``)."""
        return self.peer_address

    def auth_context(self) -> dict[str, list[bytes]]:
        """No TLS identity is exposed to servicers over HTTP."""
        return {}

    def time_remaining(self) -> float | None:
        """HTTP requests carry no deadline."""
        return None

    def cancelled(self) -> bool:
        """A cancelled HTTP call is a cancelled task; a running one is not cancelled."""
        return False

    def done(self) -> bool:
        """As :meth:`cancelled`."""
        return False

    def leader(self) -> str:
        """The ``kvstore-leader`` trailer, if the servicer set one."""
        return next((v for k, v in self.trailing if k == "kvstore-leader"), "")


def call_metadata(headers: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata grpc-gateway makes of request headers (the subset servicers
    read): ``authorization``, ``Grpc-Metadata-<key>`` as ``<key>``, and the trace
    context headers."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "authorization":
            out.append(("authorization", value))
        elif lower.startswith("grpc-metadata-") and len(lower) > len("grpc-metadata-"):
            out.append((lower[len("grpc-metadata-") :], value))
        elif lower in ("traceparent", "tracestate"):
            out.append((lower, value))
    return tuple(out)


def canonical_path(path: str) -> str:
    """The route path of a request target: no query, ``/v3beta/`` read as ``/v3/`` (etcd
    3.5 still accepts it)."""
    route = path.split("?", 1)[0]
    if route.startswith("/v3beta/"):
        route = "/v3/" + route[len("/v3beta/") :]
    return route


Servicers = Mapping[str, object]
"""Service name (``etcdserverpb.KV``) -> the servicer object the gRPC server uses."""


class Gateway:
    """Calls the servicers for HTTP requests."""

    def __init__(self, servicers: Servicers, max_request_bytes: int) -> None:
        self._servicers = servicers
        self._max_request_bytes = max_request_bytes

    def match(self, method: str, path: str) -> Route | Response:
        """The route of a request, or the routing error to answer."""
        route = ROUTES.get(canonical_path(path))
        if route is None:
            return not_found()
        if method != "POST":
            return method_not_allowed()
        return route

    def _handler(self, route: Route) -> Callable[..., Any] | None:
        servicer = self._servicers.get(route.service)
        return None if servicer is None else getattr(servicer, route.method, None)

    def _decode(self, route: Route, body: bytes) -> Message:
        request = jsonpb.loads_first(body, route.request())
        size = request.ByteSize()
        if size > self._max_request_bytes:
            raise Abort(
                _C.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({size} vs. {self._max_request_bytes})",
            )
        return request

    async def unary(  # noqa: PLR0911 (one return per outcome)
        self, route: Route, body: bytes, ctx: CallContext
    ) -> Response:
        """Call a unary method with the JSON ``body``."""
        try:
            request = self._decode(route, body)
        except jsonpb.JsonError as exc:
            return error_response(_C.INVALID_ARGUMENT, str(exc))
        except Abort as exc:
            return error_response(exc.code, exc.message)
        handler = self._handler(route)
        if handler is None:
            return error_response(*_unimplemented(route))
        try:
            response = await cast(Callable[..., Awaitable[Message]], handler)(request, ctx)
        except Abort as exc:
            return error_response(exc.code, exc.message, ctx.leader())
        except errors.EtcdError as exc:
            return error_response(exc.code, exc.message)
        except Exception:
            log.exception("gateway call %s/%s failed", route.service, route.method)
            return error_response(_C.UNKNOWN, "kvstore: internal error")
        if ctx.code not in (None, _C.OK):
            assert ctx.code is not None
            return error_response(ctx.code, ctx.details)
        return Response(
            200, jsonpb.dumps(response).encode(), (("Content-Type", JSON), *GRPC_HEADERS)
        )

    async def stream(
        self, route: Route, body: AsyncIterator[bytes], ctx: CallContext
    ) -> Response | AsyncIterator[Chunk]:
        """Open a streaming call. The body is read up to its first request (a body that
        does not start with a valid request is refused at once, with a unary error, as
        grpc-gateway refuses it); the rest is read while the response streams."""
        decoder = jsonpb.StreamDecoder()
        pending: list[Message] = []
        ended = False
        try:
            while not pending and not ended:
                try:
                    data = await anext(body)
                except StopAsyncIteration:
                    ended = True
                    decoder.finish()
                    break
                pending = [self._decode_value(route, v) for v in decoder.feed(data)]
        except jsonpb.JsonError as exc:
            # grpc-gateway passes a stream's decoding error on unwrapped: UNKNOWN, 500.
            return error_response(_C.UNKNOWN, str(exc))
        except Abort as exc:
            return error_response(exc.code, exc.message)
        handler = self._handler(route)
        if handler is None:
            return error_response(*_unimplemented(route))
        if route.client_stream:
            requests = self._requests(route, pending, body, decoder, ended)
            replies = handler(requests, ctx)
        else:
            replies = handler(pending[0] if pending else route.request(), ctx)
        return self._chunks(route, cast(AsyncIterator[Message], replies), ctx)

    def _decode_value(self, route: Route, value: object) -> Message:
        request = jsonpb.from_value(value, route.request())
        if request.ByteSize() > self._max_request_bytes:
            raise Abort(_C.RESOURCE_EXHAUSTED, "grpc: received message larger than max")
        return request

    async def _requests(
        self,
        route: Route,
        first: list[Message],
        body: AsyncIterator[bytes],
        decoder: jsonpb.StreamDecoder,
        ended: bool,
    ) -> AsyncIterator[Message]:
        """The requests of a client stream; like grpc-gateway, a bad request later in
        the body just ends the client's side of the stream."""
        for request in first:
            yield request
        if ended:
            return
        try:
            async for data in body:
                for value in decoder.feed(data):
                    yield self._decode_value(route, value)
            decoder.finish()
        except (jsonpb.JsonError, Abort) as exc:
            log.info("gateway stream: request body ends the client stream: %s", exc)

    async def _chunks(
        self, route: Route, replies: AsyncIterator[Message], ctx: CallContext
    ) -> AsyncIterator[Chunk]:
        try:
            async for message in replies:
                yield result_chunk(message)
        except Abort as exc:
            yield stream_error(exc.code, exc.message)
        except errors.EtcdError as exc:
            yield stream_error(exc.code, exc.message)
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception:
            log.exception("gateway stream %s/%s failed", route.service, route.method)
            yield stream_error(_C.UNKNOWN, "kvstore: internal error")
        finally:
            aclose = getattr(replies, "aclose", None)
            if aclose is not None:
                await aclose()


def _unimplemented(route: Route) -> tuple[grpc.StatusCode, str]:
    return _C.UNIMPLEMENTED, f"unknown method {route.method} for service {route.service}"
