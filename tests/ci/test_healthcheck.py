"""The image's health check against a real gRPC server with the standard health service."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from types import ModuleType

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.tooling import ROOT

SCRIPT = ROOT / "deploy" / "image" / "healthcheck.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server() -> Iterator[tuple[str, health.HealthServicer]]:
    servicer = health.HealthServicer()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield f"127.0.0.1:{port}", servicer
    grpc_server.stop(grace=None)


def test_serving_is_healthy(server: tuple[str, health.HealthServicer]) -> None:
    address, servicer = server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), address], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0
    assert run.stdout.strip() == f"{address}: SERVING"


def test_not_serving_is_unhealthy(server: tuple[str, health.HealthServicer]) -> None:
    address, servicer = server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    healthy, reason = load().check(address)
    assert not healthy
    assert reason == f"{address}: NOT_SERVING"


def test_unreachable_is_unhealthy_within_the_timeout(free_port: object) -> None:
    healthy, reason = load().check("127.0.0.1:9", timeout=0.5)
    assert not healthy
    assert "UNAVAILABLE" in reason or "DEADLINE_EXCEEDED" in reason
