"""Every container image the pipeline starts from, pinned by digest in one place.

A stage never names an image itself: it asks for one here, so a private mirror is one
constructor argument (``mirror``) away and a bump is a one-line change.
"""

from __future__ import annotations

# python:3.11-slim-bookworm, the image stages run Python tools in.
PYTHON = (
    "docker.io/library/python:3.11-slim-bookworm"
    "@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b"
)


def with_mirror(reference: str, mirror: str) -> str:
    """Rewrite ``reference`` to pull from ``mirror`` (a registry host plus optional path).

    ``docker.io/library/python:3.11@sha256:...`` with mirror ``registry.local:5000/hub``
    becomes ``registry.local:5000/hub/library/python:3.11@sha256:...``: the registry host
    is replaced and the repository path and digest are kept, so the content is the same.
    """
    if not mirror:
        return reference
    _host, _, path = reference.partition("/")
    return f"{mirror.rstrip('/')}/{path}"
