"""The metrics port: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

A deliberately tiny HTTP/1.1 server on asyncio (GET only, one response per connection),
so the metrics endpoint needs no framework and runs on the member's own event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kvstore.server.metrics import Metrics

Probe = Callable[[], tuple[bool, str]]
"""Returns (ok, reason)."""


class MetricsHttp:
    """Serves one member's metrics and probes."""

    def __init__(self, metrics: Metrics, health: Probe, ready: Probe) -> None:
        self._metrics = metrics
        self._health = health
        self._ready = ready
        self._servers: list[asyncio.Server] = []

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port``."""
        self._servers.append(await asyncio.start_server(self._handle, host, port))

    async def close(self) -> None:
        """Stop listening."""
        for server in self._servers:
            server.close()
            await server.wait_closed()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        route = path.split("?", 1)[0]
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        if route in {"/healthz", "/health", "/readyz"}:
            ok, reason = (self._ready if route == "/readyz" else self._health)()
            body = json.dumps({"health": "true" if ok else "false", "reason": reason})
            return (200 if ok else 503), "application/json", body.encode()
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            if len(parts) < 2 or parts[0] not in {"GET", "HEAD"}:
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, ctype, body = self.respond(parts[1])
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (body if parts and parts[0] == "GET" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
