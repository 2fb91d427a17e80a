"""What each HTTP port of a member serves, as request handlers for :class:`HttpServer`.

- The client HTTP port (``--listen-client-http-urls``), as etcd's client port serves HTTP:
  ``POST /v3/...`` (and ``/v3beta/...``) the JSON API, ``/health``, ``/livez``,
  ``/readyz``, ``/version``, ``/metrics``; ``OPTIONS`` answers 200 for CORS preflights.
- The metrics port (``--listen-metrics-urls``), as etcd's: ``/metrics`` and the probes,
  plus ``/healthz`` (this store's own JSON probe, kept for existing deployments).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kvstore.server import probes
from kvstore.server.gateway import (
    GRPC_HEADERS,
    CallContext,
    Gateway,
    Response,
    Route,
    call_metadata,
    canonical_path,
    plain,
)
from kvstore.server.http import BadRequest, Reply, Request, Streamed
from kvstore.server.metrics import Metrics

Probe = Callable[[], tuple[bool, str]]
"""Returns (ok, reason)."""


def page_not_found() -> Response:
    """Go's ``http.NotFound``, which etcd answers outside its handlers."""
    return plain(404, "404 page not found")


def _metrics(metrics: Metrics) -> Response:
    body = generate_latest(metrics.registry)
    return Response(200, body, (("Content-Type", CONTENT_TYPE_LATEST),))


class ClientSite:
    """The client HTTP port."""

    def __init__(
        self, gateway: Gateway, target: probes.Target, metrics: Metrics, body_limit: int
    ) -> None:
        self._gateway = gateway
        self._target = target
        self._metrics = metrics
        self._body_limit = body_limit

    async def __call__(self, req: Request) -> Reply:
        """Route one request."""
        if req.method == "OPTIONS":
            return Response(200, b"", ())
        path = canonical_path(req.target)
        if path.startswith("/v3/"):
            match = self._gateway.match(req.method, req.target)
            if isinstance(match, Response):
                return match
            return await self._call(req, match)
        if probes.handles(path):
            return await probes.answer(self._target, req.method, req.target)
        if path == "/metrics":
            return _metrics(self._metrics)
        return page_not_found()

    async def _call(self, req: Request, route: Route) -> Reply:
        ctx = CallContext(call_metadata(req.headers), req.peer)
        if not (route.client_stream or route.server_stream):
            body = await req.read_body(self._body_limit)
            return await self._gateway.unary(route, body, ctx)
        opened = await self._gateway.stream(route, _until_gone(req.body_chunks()), ctx)
        if isinstance(opened, Response):
            return opened
        return Streamed(opened, headers=GRPC_HEADERS)


async def _until_gone(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A streamed request body that just ends if the client goes away inside it (the
    response side notices and ends the call)."""
    try:
        async for data in chunks:
            yield data
    except BadRequest:
        return


class MetricsSite:
    """The metrics port."""

    def __init__(self, metrics: Metrics, target: probes.Target, health: Probe) -> None:
        self._metrics = metrics
        self._target = target
        self._health = health

    async def __call__(self, req: Request) -> Reply:
        """Route one request."""
        path = req.path
        if path == "/metrics":
            return _metrics(self._metrics)
        if probes.handles(path):
            return await probes.answer(self._target, req.method, req.target)
        if path == "/healthz":
            if req.method not in ("GET", "HEAD"):
                resp = plain(405, "Method Not Allowed")
                return Response(405, resp.body, (*resp.headers, ("Allow", "GET")))
            ok, reason = self._health()
            body = json.dumps({"health": "true" if ok else "false", "reason": reason})
            return Response(200 if ok else 503, body.encode())
        if path.startswith(("/v3/", "/v3beta/")):
            return plain(
                404,
                "404 page not found: the etcd v3 JSON API is served on "
                "--listen-client-http-urls, not on the metrics port",
            )
        return page_not_found()
