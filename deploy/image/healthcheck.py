#!/opt/kvstore/bin/python
"""Container health check: ask the member's grpc.health.v1 service whether it serves.

Usage: ``kvstore-healthcheck [HOST:PORT]`` (default ``127.0.0.1:2379``). Exits 0 when the
overall service status is SERVING, 1 otherwise (not serving, unreachable or timed out),
which is what Docker's HEALTHCHECK and Kubernetes exec probes expect.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:2379"
TIMEOUT_SECONDS = 2.0


def check(address: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Whether the server at ``address`` reports SERVING, and a one-line reason."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as e:
            return False, f"{address}: {e.code().name} {e.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def main(argv: Sequence[str]) -> int:
    """Run the check and print its result."""
    address = argv[0] if argv else DEFAULT_ADDRESS
    healthy, reason = check(address)
    print(reason)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
