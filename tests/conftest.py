"""Suite-wide fixtures. Tool lookup and the skip-or-fail rule live in tests/tooling.py."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from tests import tooling


@pytest.fixture(scope="session")
def docker() -> str:
    """The docker CLI, with a running engine behind it."""
    return tooling.require_docker()


@pytest.fixture(scope="session")
def base_image() -> str:
    """The tag of the local Debian+python3 base image."""
    return tooling.require_base_image()


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Hand out free TCP ports on 127.0.0.1 (bound and released, so the OS picks them)."""

    def pick() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port

    return pick
