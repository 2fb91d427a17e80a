"""The client port's HTTP/2 keepalive policy is etcd's: a client may ping every
--grpc-keepalive-min-time, with or without a stream open, and keeps its connection.

kube-apiserver's etcd client (grpc-go) pings idle connections every 30 s; a server left at
gRPC's own policy (one ping per five minutes without data) answers with GOAWAY
``too_many_pings`` and the apiserver's watches break. grpc-go keeps pinging where
Python's client stops after two pings without data, so the test speaks HTTP/2 itself:
the preface, SETTINGS, and PING frames at a chosen pace."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster
from tests.kvstore.server.conftest import running

pytestmark = pytest.mark.slow

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7
ACK = 0x1
ENHANCE_YOUR_CALM = 0xB


def _frame(kind: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + b"\0\0\0\0" + payload


class _Connection:
    """A bare HTTP/2 client connection: answers SETTINGS, sends PINGs, notes GOAWAY."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self.goaway: tuple[int, bytes] | None = None
        sock.sendall(PREFACE + _frame(SETTINGS, 0))

    def ping(self, n: int) -> None:
        self._sock.sendall(_frame(PING, 0, struct.pack(">Q", n)))

    def read(self, wait_s: float) -> bool:
        """Handle what the server sends within ``wait_s``; False once it closed."""
        self._sock.settimeout(wait_s)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            return True
        if not chunk:
            return False
        self._buf += chunk
        while len(self._buf) >= 9:
            length = int.from_bytes(self._buf[:3], "big")
            if len(self._buf) < 9 + length:
                break
            kind, flags, payload = self._buf[3], self._buf[4], self._buf[9 : 9 + length]
            self._buf = self._buf[9 + length :]
            if kind == SETTINGS and not flags & ACK:
                self._sock.sendall(_frame(SETTINGS, ACK))
            elif kind == GOAWAY:
                self.goaway = (int.from_bytes(payload[4:8], "big"), payload[8:])
        return True


def _goaway_after_pings(endpoint: str, interval_s: float, pings: int) -> bytes | None:
    """Ping an idle connection ``pings`` times at ``interval_s``; the debug data of a
    GOAWAY with ENHANCE_YOUR_CALM if the server sent one, else None."""
    host, port = endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        conn = _Connection(sock)
        for n in range(pings):
            deadline = time.monotonic() + interval_s
            while (left := deadline - time.monotonic()) > 0 and conn.read(left):
                pass
            if conn.goaway is not None:
                break
            try:
                conn.ping(n)
            except OSError:
                break
        deadline = time.monotonic() + 1.0
        while conn.goaway is None and (left := deadline - time.monotonic()) > 0:
            if not conn.read(left):
                break
    if conn.goaway is not None and conn.goaway[0] == ENHANCE_YOUR_CALM:
        return conn.goaway[1]
    return None


def test_pings_at_the_min_time_keep_an_idle_connection_faster_ones_are_sent_away(
    tmp_path: Path,
) -> None:
    extra = [*RAFT_FLAGS, "--grpc-keepalive-min-time", "1s"]
    with running(LocalCluster(tmp_path, 1, extra=extra, cluster_name="keepalive")) as cluster:
        endpoint = cluster.members[0].endpoint
        assert _goaway_after_pings(endpoint, interval_s=1.2, pings=5) is None
        # The control: the same client pinging faster than the policy is sent away, so the
        # first answer is the policy's doing, not a blind spot of the test.
        assert _goaway_after_pings(endpoint, interval_s=0.2, pings=6) == b"too_many_pings"
