"""A small HTTP/1.1 server on asyncio: the member's HTTP ports.

Two sites use it: the metrics port (``/metrics``, the probes) and the client HTTP port
(``--listen-client-http-urls``: the etcd v3 JSON API of :mod:`kvstore.server.gateway`, the
probes, ``/metrics``, ``/version``). It runs on the member's own event loop and needs no
framework: persistent connections, request bodies by ``Content-Length`` or chunked (read
whole for unary calls, as a stream for watch and keep-alive), ``Expect: 100-continue``,
chunked streaming responses flushed message by message, and a precise status with a body
for every malformed request (400, 405, 411, 413, 431, 501) instead of a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

from kvstore.server.gateway import Chunk, Headers, Response, plain

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
"""Longest request line or header line."""
MAX_HEADER_BYTES = 1024 * 1024
"""All request headers together (Go's default, which etcd keeps)."""
HEADER_TIMEOUT_S = 300.0
"""How long a connection may take to send the next request's headers (etcd: 5 minutes)."""
CORS: Headers = (
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
)
"""What etcd adds to every client HTTP response under its default ``--cors '*'``."""


class BadRequest(Exception):
    """The request cannot be read; answered with ``status`` and closed."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(slots=True)
class Streamed:
    """A response whose body is a stream of chunks (``Transfer-Encoding: chunked``)."""

    chunks: AsyncIterator[Chunk]
    content_type: str = "application/json"
    headers: Headers = ()


Reply = Response | Streamed


@dataclass(slots=True)
class Request:
    """One request: line and headers read, body left to the handler."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    peer: str
    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter
    _length: int | None = None
    _chunked: bool = False
    _continue: bool = False
    consumed: bool = False
    body_done: asyncio.Event = field(default_factory=asyncio.Event)
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive)."""
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.split("?", 1)[0]

    async def _send_continue(self) -> None:
        if self._continue:
            self._continue = False
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self._writer.drain()

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (what is left of it); sets :attr:`client_gone` if the
        connection ends inside it."""
        await self._send_continue()
        while not self.consumed:
            try:
                data = await self._next_piece()
            except (asyncio.IncompleteReadError, ConnectionError):
                self.client_gone.set()
                raise BadRequest(400, "request body ended early") from None
            if data:
                yield data

    def _finish_body(self) -> None:
        self.consumed = True
        self.body_done.set()

    async def _next_piece(self) -> bytes:
        """Read the next piece of the body, keeping the position in the request, so a
        reader that stops early leaves the rest for the next (draining) reader."""
        if not self._chunked:
            remaining = self._length or 0
            data = await self._reader.read(min(remaining, 64 * 1024))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            self._length = remaining - len(data)
            if self._length == 0:
                self._finish_body()
            return data
        size_line = await self._reader.readline()
        if not size_line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(size_line, None)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(400, "malformed chunked encoding") from None
        if size == 0:
            while (await self._reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers are ignored
            self._finish_body()
            return b""
        data = await self._reader.readexactly(size)
        await self._reader.readexactly(2)
        return data

    async def read_body(self, limit: int) -> bytes:
        """The whole body, refused with 413 past ``limit`` bytes."""
        if not self._chunked and self._length is not None and self._length > limit:
            raise BadRequest(413, "Request Entity Too Large")
        parts = bytearray()
        async for data in self.body_chunks():
            parts += data
            if len(parts) > limit:
                raise BadRequest(413, "Request Entity Too Large")
        return bytes(parts)


Handler = Callable[[Request], Awaitable[Reply]]


def _head(status: int, headers: Headers, extra: str) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Date: {formatdate(usegmt=True)}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


async def _read_request(  # noqa: PLR0912 (one branch per malformation)
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
) -> Request | None:
    """The next request's line and headers; None when the client closed in between."""
    try:
        line = await asyncio.wait_for(reader.readline(), HEADER_TIMEOUT_S)
        while line in (b"\r\n", b"\n"):  # stray CRLF between requests is allowed
            line = await asyncio.wait_for(reader.readline(), HEADER_TIMEOUT_S)
    except (ValueError, asyncio.LimitOverrunError):
        raise BadRequest(414, "URI Too Long") from None
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "Bad Request")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        try:
            raw = await asyncio.wait_for(reader.readline(), HEADER_TIMEOUT_S)
        except (ValueError, asyncio.LimitOverrunError):
            raise BadRequest(431, "Request Header Fields Too Large") from None
        total += len(raw)
        if total > MAX_HEADER_BYTES:
            raise BadRequest(431, "Request Header Fields Too Large")
        if raw in (b"\r\n", b"\n"):
            break
        if not raw.endswith(b"\n"):
            return None
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise BadRequest(400, "Bad Request: malformed header line")
        headers.append((name, value.strip()))
    req = Request(method, target, version, headers, peer, reader, writer)
    encoding = (req.header("Transfer-Encoding") or "").lower()
    length = req.header("Content-Length")
    if encoding:
        if encoding != "chunked":
            raise BadRequest(501, "Not Implemented: unsupported transfer encoding")
        req._chunked = True
    elif length is not None:
        if not length.isdigit():
            raise BadRequest(400, "Bad Request: invalid Content-Length")
        req._length = int(length)
    req._continue = (req.header("Expect") or "").lower() == "100-continue"
    if not req._chunked and not req._length:
        req.consumed = True
        req.body_done.set()
    return req


class HttpServer:
    """Serves ``handler`` on any number of listening sockets."""

    def __init__(self, handler: Handler, extra_headers: Headers = (), drain_limit: int = 0) -> None:
        self._handler = handler
        self._extra = extra_headers
        self._drain_limit = drain_limit
        """Unread body bytes to skip (to keep the connection) after a reply; past it the
        connection is closed instead."""
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        """Listen on ``host:port`` (with TLS when ``tls`` is given)."""
        server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE_BYTES, ssl=tls)
        self._servers.append(server)

    async def close(self) -> None:
        """Stop listening and end open connections (streams included)."""
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peername = writer.get_extra_info("peername")
        peer = f"ipv4:{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else ""
        try:
            while await self._one(reader, writer, peer):
                pass
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """Serve one request; whether the connection stays open."""
        try:
            req = await _read_request(reader, writer, peer)
        except BadRequest as exc:
            await self._send(writer, plain(exc.status, f"{exc.status} {exc.text}"), "GET", True)
            return False
        if req is None:
            return False
        keep = req.version == "HTTP/1.1" and (req.header("Connection") or "").lower() != "close"
        try:
            reply = await self._handler(req)
        except BadRequest as exc:
            await self._send(writer, plain(exc.status, exc.text), req.method, True)
            return False
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("HTTP %s %s failed", req.method, req.path)
            await self._send(writer, plain(500, "Internal Server Error"), req.method, True)
            return False
        if isinstance(reply, Streamed):
            await self._stream(req, writer, reply)
            return False
        if not req.consumed:
            keep = keep and await self._drain(req)
        await self._send(writer, reply, req.method, not keep)
        return keep

    async def _drain(self, req: Request) -> bool:
        """Skip an unread body (small enough) so the connection can serve the next one."""
        if not req._chunked and req._length is not None and req._length > self._drain_limit:
            return False
        try:
            await req.read_body(self._drain_limit)
        except BadRequest:
            return False
        return True

    async def _send(
        self, writer: asyncio.StreamWriter, resp: Response, method: str, close: bool
    ) -> None:
        headers = (*resp.headers, *self._extra, ("Content-Length", str(len(resp.body))))
        if close:
            headers = (*headers, ("Connection", "close"))
        writer.write(_head(resp.status, headers, "") + (b"" if method == "HEAD" else resp.body))
        await writer.drain()

    async def _stream(self, req: Request, writer: asyncio.StreamWriter, reply: Streamed) -> None:
        """Write chunks as they come until the stream ends or the client goes away."""
        pump = asyncio.get_running_loop().create_task(self._pump(req, writer, reply))
        gone = asyncio.get_running_loop().create_task(self._watch_close(req))
        try:
            await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, gone):
                task.cancel()
            for task in (pump, gone):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            # End the call now (a watch drops its watchers) rather than when collected.
            aclose = getattr(reply.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _pump(self, req: Request, writer: asyncio.StreamWriter, reply: Streamed) -> None:
        started = False
        async for chunk in reply.chunks:
            if not started:
                started = True
                status = chunk.status or 200
                headers = (
                    ("Content-Type", reply.content_type),
                    *reply.headers,
                    *self._extra,
                    ("Connection", "close"),
                )
                writer.write(_head(status, headers, "Transfer-Encoding: chunked\r\n"))
            if chunk.data:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk.data), chunk.data))
            await writer.drain()
            if chunk.status is not None:
                break
        if not started:
            headers = (
                ("Content-Type", reply.content_type),
                *reply.headers,
                *self._extra,
                ("Connection", "close"),
            )
            writer.write(_head(200, headers, "Transfer-Encoding: chunked\r\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _watch_close(self, req: Request) -> None:
        """Return when the client closes: its body ended early, or, once the body is
        read, the connection reached EOF."""
        ended = asyncio.get_running_loop().create_task(req.body_done.wait())
        gone = asyncio.get_running_loop().create_task(req.client_gone.wait())
        try:
            await asyncio.wait((ended, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            gone.cancel()
        if req.client_gone.is_set():
            return
        with contextlib.suppress(ConnectionError):
            while await req._reader.read(4096):
                pass  # a streaming response ends its connection; nothing more is served
