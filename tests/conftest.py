"""Suite-wide fixtures. Tool lookup and the skip-or-fail rule live in tests/tooling.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvstore.verify import cluster
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
    return lambda: cluster.free_port("127.0.0.1")
