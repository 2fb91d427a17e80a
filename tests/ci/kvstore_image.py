"""Build the repository's Dockerfile with the real Docker engine, offline.

No registry can be pulled from and the build's containers cannot reach PyPI here, so:
the base is the locally built Debian image (``--build-arg BASE_IMAGE=...``), and pip in
the builder stage installs from a wheelhouse that this helper downloads on the host (with
the project's constraints) and serves over HTTP on a loopback port (``--network=host``,
``PIP_NO_INDEX``/``PIP_FIND_LINKS``). The Dockerfile itself is the one users build.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.tooling import ROOT

WHEELHOUSE = ROOT / "dist" / "wheelhouse"
IMAGE_TAG = "localhost/kvstore:test"
PREFERRED_PORT = 38765


def requirements() -> list[str]:
    """The store's runtime dependencies and its build backend, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def fill_wheelhouse(target: Path = WHEELHOUSE) -> Path:
    """Download every wheel the build needs, once per change of requirements or pins."""
    constraints = ROOT / "constraints.txt"
    wanted = hashlib.sha256(
        "\n".join([*requirements(), constraints.read_text()]).encode()
    ).hexdigest()
    stamp = target / ".requirements.sha256"
    if stamp.is_file() and stamp.read_text() == wanted:
        return target
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"),
            *("--dest", str(target), "--constraint", str(constraints)),
            *requirements(),
        ],
        check=True,
        timeout=600,
    )
    stamp.write_text(wanted)
    return target


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep pip's requests out of the test output."""


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a pip --find-links page); yield its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        # A stable URL keeps Docker's layer cache: the build arg is part of its key.
        server = ThreadingHTTPServer(("127.0.0.1", PREFERRED_PORT), handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build_image(docker: str, base_image: str, tag: str = IMAGE_TAG) -> str:
    """``docker build`` the repository with the legacy builder; return the tag."""
    wheelhouse = fill_wheelhouse()
    with serve_directory(wheelhouse) as url:
        subprocess.run(
            [
                *(docker, "build", "--quiet", "--network=host", "--tag", tag),
                *("--build-arg", f"BASE_IMAGE={base_image}"),
                *("--build-arg", "PIP_NO_INDEX=1", "--build-arg", f"PIP_FIND_LINKS={url}"),
                str(ROOT),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            timeout=900,
        )
    return tag
