"""What serving HTTP beside gRPC on one port would cost: a measurement, not a server mode.

grpcio's server owns its listening socket and cannot be handed connections, so the only way
to put an HTTP/1.1 API on the gRPC client port is a front that accepts every connection,
looks at its first bytes (the HTTP/2 client preface ``PRI * HTTP/2.0`` means gRPC) and relays
gRPC connections byte for byte to the gRPC server on an internal socket. This module builds
the cheapest such relay asyncio allows (protocols, no stream objects, pause/resume for back
pressure) inside the member's own process and event loop, and measures a put's latency and
the member's CPU per put with and without it::

    python -m kvstore.bench.sniff_front --count 3000

The figures and the decision they led to are in docs/http-gateway.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import grpc
import uvloop

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _Pipe(asyncio.Protocol):
    """One direction's sink: writes what the peer side received, with back pressure."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        transport = self.transport
        if self.pending:
            transport.write(bytes(self.pending))
            self.pending.clear()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            return
        if peer.transport is None:
            peer.pending += data
        else:
            peer.transport.write(data)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Front(_Pipe):
    """The accepted side: sniffs the preface, then relays to the gRPC server."""

    def __init__(self, backend: tuple[str, int]) -> None:
        super().__init__()
        self._backend = backend
        self._head = bytearray()
        self._connecting: asyncio.Task[object] | None = None

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            super().data_received(data)
            return
        self._head += data
        n = min(len(self._head), len(PREFACE))
        if self._head[:n] != PREFACE[:n]:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        if n < len(PREFACE):
            return
        back = _Pipe()
        back.peer = self
        self.peer = back
        back.pending += self._head
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_task(loop.create_connection(lambda: back, *self._backend))


async def _serve(argv: list[str], front_port: int, backend_port: int) -> None:
    from kvstore.server.config import add_serve_arguments, build_config  # noqa: PLC0415
    from kvstore.server.member import Member  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    member = Member(build_config(parser.parse_args(argv), {}))
    await member.start()
    if front_port:
        loop = asyncio.get_running_loop()
        backend = ("127.0.0.1", backend_port)
        await loop.create_server(lambda: _Front(backend), "127.0.0.1", front_port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await member.stop()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _measure(front: bool, count: int, root: Path) -> tuple[list[float], float]:
    client, peer, metrics, fport = _free_port(), _free_port(), _free_port(), _free_port()
    argv = [
        "--name", "m", "--data-dir", str(root / ("front" if front else "direct")),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--listen-metrics-urls", f"http://127.0.0.1:{metrics}",
        "--heartbeat-interval", "50", "--election-timeout", "500",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "kvstore.bench.sniff_front", "--serve", str(fport if front else 0)]
    proc = subprocess.Popen([*cmd, str(client), "--", *argv])
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{fport if front else client}")
        stub = rpc_pb2_grpc.KVStub(channel)
        deadline = time.monotonic() + 20
        while True:
            try:
                stub.Put(rpc_pb2.PutRequest(key=b"warm", value=b"x"), timeout=1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for i in range(200):
            stub.Put(rpc_pb2.PutRequest(key=b"warm%d" % i, value=b"x" * 256))
        cpu0 = _cpu_seconds(proc.pid)
        latencies = []
        for i in range(count):
            started = time.perf_counter()
            stub.Put(rpc_pb2.PutRequest(key=b"k%d" % (i % 1000), value=b"v" * 256))
            latencies.append(time.perf_counter() - started)
        cpu = _cpu_seconds(proc.pid) - cpu0
        channel.close()
        return latencies, cpu / count
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def main() -> None:
    """``--serve FRONT_PORT BACKEND_PORT -- serve flags``: a member (with the front when
    FRONT_PORT is not 0); otherwise measure both, alternating, and print the figures."""
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        front_port, backend_port = int(sys.argv[2]), int(sys.argv[3])
        uvloop.run(_serve(sys.argv[5:], front_port, backend_port))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[bool, list[tuple[list[float], float]]] = {False: [], True: []}
    shm = Path("/dev/shm")  # noqa: S108 (a private temporary directory is made inside)
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as d:
        for r in range(args.rounds):
            for front in (False, True):
                results[front].append(_measure(front, args.count, Path(d) / str(r)))
    for front in (False, True):
        lat = sorted(x for run in results[front] for x in run[0])
        cpu = statistics.mean(run[1] for run in results[front])
        print(
            f"{'front ' if front else 'direct'}: p50 {lat[len(lat) // 2] * 1e6:.0f} us  "
            f"p99 {lat[int(len(lat) * 0.99)] * 1e6:.0f} us  "
            f"mean {statistics.mean(lat) * 1e6:.0f} us  member CPU/put {cpu * 1e6:.0f} us"
        )


if __name__ == "__main__":
    main()
