"""The Dagger module imports without an engine and exposes its functions."""

from __future__ import annotations

import subprocess
import sys

from kvstore_ci import KvstoreCi, images
from kvstore_ci.__main__ import function_names


def test_main_object_registers_its_functions() -> None:
    assert "python-base" in function_names()
    assert KvstoreCi.__dagger_object_type__.functions  # type: ignore[attr-defined]


def test_functions_command_lists_them() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kvstore_ci", "functions"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == function_names()


def test_base_images_are_pinned_by_digest() -> None:
    for name in dir(images):
        value = getattr(images, name)
        if name.isupper() and isinstance(value, str):
            repo, _, digest = value.partition("@sha256:")
            assert repo and len(digest) == 64, f"images.{name} is not pinned by digest"


def test_mirror_keeps_repository_path_and_digest() -> None:
    ref = "docker.io/library/python:3.11@sha256:" + "a" * 64
    assert images.with_mirror(ref, "") == ref
    assert (
        images.with_mirror(ref, "mirror.internal:5000/hub/")
        == "mirror.internal:5000/hub/library/python:3.11@sha256:" + "a" * 64
    )
