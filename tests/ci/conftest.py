"""Fixtures shared by the tests of the pipeline module (tests/ci)."""

from __future__ import annotations

import pytest

from tests.ci.kvstore_image import build_image


@pytest.fixture(scope="session")
def kvstore_image(docker: str, base_image: str) -> str:
    """The store's image, built once per session from the repository's Dockerfile."""
    return build_image(docker, base_image)
