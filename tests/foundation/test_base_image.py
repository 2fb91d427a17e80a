"""The locally built base image runs Python in a container."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.docker


def test_base_image_runs_python3(docker: str, base_image: str) -> None:
    result = subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--network=none",
            base_image,
            "python3",
            "-c",
            "import sys, ssl, venv; print(sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    major, minor = result.stdout.strip().strip("()").split(", ")
    assert (int(major), int(minor)) >= (3, 11)


def test_base_image_is_debian_without_package_lists(docker: str, base_image: str) -> None:
    result = subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--network=none",
            base_image,
            "sh",
            "-c",
            ". /etc/os-release && echo $ID && ls /var/lib/apt/lists | grep -c _Packages || true",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    distro, lists = result.stdout.split()
    assert distro == "debian"
    assert int(lists) == 0, "package lists left in the image"
