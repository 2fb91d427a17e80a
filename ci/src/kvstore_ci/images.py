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

# Terraform CLI, for `terraform fmt -check` in lint.
TERRAFORM = (
    "docker.io/hashicorp/terraform:1.11.3"
    "@sha256:c2c17884347f9b5f3d71067a3ef1fb736f748979f89b35a2e4b5225735e7fe01"
)

# Helm CLI, for `helm lint` of the chart.
HELM = (
    "docker.io/alpine/helm:3.19.0"
    "@sha256:aef9b56f64e866207d9591d0abd8f6d767b36aadd12edf68f8a719716d9d29c9"
)

# actionlint, for the GitHub Actions workflows.
ACTIONLINT = (
    "docker.io/rhysd/actionlint:1.7.12"
    "@sha256:b1934ee5f1c509618f2508e6eb47ee0d3520686341fec936f3b79331f9315667"
)


# python:3.11-bookworm (not slim: it has git), where promotion and the Argo CD wait run.
PYTHON_GIT = (
    "docker.io/library/python:3.11-bookworm"
    "@sha256:a8f8fbe1a0edc9e4dddafa64ba73f7e04be7be5ebc23f332362e779e0a2e4e52"
)

# kubectl, for the rollout wait and smoke check of a deploy and the monitoring manifests.
KUBECTL = (
    "registry.k8s.io/kubectl:v1.36.3"
    "@sha256:6e4fce3c83651edb91b74bc67701c5cd263dd8aa3cd4254b1798d6425a5ab789"
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


def registry_host(address: str) -> str:
    """The registry host of an image address, as ``docker push`` reads it.

    The first path component is a registry when it looks like a host (has a dot or a
    port, or is ``localhost``); otherwise the address is on Docker Hub.
    """
    first, sep, _rest = address.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"
