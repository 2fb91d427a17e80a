"""Errors the client raises.

::

    ClientError                 a call failed; ``code`` and ``details`` are the gRPC status
    └── NoEndpointAvailable     every endpoint was tried and none could serve the call
"""

from __future__ import annotations

import grpc


class ClientError(Exception):
    """A call failed with a gRPC status (as the server, or the channel, reported it)."""

    def __init__(self, code: grpc.StatusCode, details: str, endpoint: str = "") -> None:
        super().__init__(
            f"{code.name}: {details}" + (f" (endpoint {endpoint})" if endpoint else "")
        )
        self.code = code
        self.details = details
        self.endpoint = endpoint


class NoEndpointAvailable(ClientError):
    """No endpoint answered."""
