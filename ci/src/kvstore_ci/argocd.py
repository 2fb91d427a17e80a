"""Argo CD sync-and-wait over Argo CD's REST API.

The pipeline asks Argo CD to sync an Application (``POST /api/v1/applications/{name}/sync``)
and then polls it (``GET /api/v1/applications/{name}``) until the cluster matches git:

- done when ``status.sync.status`` is ``Synced`` at the expected revision
  (``status.sync.revision``), ``status.health.status`` is ``Healthy`` and the sync operation
  (``status.operationState``) started by this call has phase ``Succeeded``;
- failed at once, with Argo CD's own message, when that operation ends ``Failed`` or
  ``Error``, or when the application turns ``Degraded`` after it synced to the revision (a
  ``Degraded`` state left over from before the sync is not held against the new revision);
- failed after ``timeout`` seconds with the last sync, health and operation state seen.

Requests carry an API token as ``Authorization: Bearer``. Transient failures (connection
errors, HTTP 5xx, "another operation is already in progress") are retried with exponential
backoff; a refused token or an unknown application fails at once.

Errors (all :class:`ArgoCdError`)::

    ArgoCdError
     ├── ArgoCdRequestError   the API refused a request or stayed unavailable
     ├── SyncFailedError      the sync operation failed or the app went Degraded
     └── SyncTimeoutError     not Synced and Healthy in time
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

__all__ = [
    "AppState",
    "ArgoCdClient",
    "ArgoCdError",
    "ArgoCdRequestError",
    "SyncFailedError",
    "SyncTimeoutError",
]

_RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
_BUSY = "another operation is already in progress"
_FAILED_PHASES = frozenset({"Failed", "Error"})


class ArgoCdError(RuntimeError):
    """Argo CD could not sync the application (see the subclasses)."""


class ArgoCdRequestError(ArgoCdError):
    """A request was refused (auth, not found) or Argo CD stayed unavailable."""


class SyncFailedError(ArgoCdError):
    """The sync operation failed, or the application is Degraded at the new revision."""


class SyncTimeoutError(ArgoCdError):
    """The application was not Synced and Healthy at the revision before the deadline."""


@dataclass(frozen=True)
class AppState:
    """The parts of an Application's status that decide whether a sync is done."""

    application: str
    sync_status: str
    revision: str
    health: str
    health_message: str
    phase: str
    operation_message: str
    operation_revision: str
    operation_started_at: str
    history_id: int | None

    @classmethod
    def from_application(cls, name: str, app: dict[str, Any]) -> AppState:
        """Read the state out of an ``Application`` object as the API returns it."""
        status = app.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        op = status.get("operationState") or {}
        result = op.get("syncResult") or {}
        requested = (op.get("operation") or {}).get("sync") or {}
        op_revision = _one_revision(result) or _one_revision(requested)
        history = status.get("history") or []
        revision = _one_revision(sync)
        history_id = next(
            (
                int(entry["id"])
                for entry in reversed(history)
                if entry.get("revision") == revision and "id" in entry
            ),
            None,
        )
        return cls(
            application=name,
            sync_status=sync.get("status", "Unknown"),
            revision=revision,
            health=health.get("status", "Unknown"),
            health_message=health.get("message", ""),
            phase=op.get("phase", ""),
            operation_message=op.get("message", ""),
            operation_revision=op_revision,
            operation_started_at=op.get("startedAt", ""),
            history_id=history_id,
        )

    def describe(self) -> str:
        """One line for errors and logs: sync, health and operation state."""
        text = f"sync={self.sync_status} at {self.revision[:12] or '?'}, health={self.health}"
        if self.health_message:
            text += f" ({self.health_message})"
        if self.phase:
            text += f", operation={self.phase}"
            if self.operation_message:
                text += f": {self.operation_message}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, printed by ``python -m kvstore_ci argocd-sync``."""
        return asdict(self)


def _one_revision(section: dict[str, Any]) -> str:
    """``revision``, or for a multi-source Application its ``revisions`` joined by commas."""
    return str(section.get("revision") or ",".join(section.get("revisions") or []))


def _revision_matches(actual: str, expected: str) -> bool:
    """Whether ``actual`` is ``expected`` (a full or abbreviated commit); any if none expected.

    For a multi-source Application, any of its sources' revisions may match.
    """
    if not expected:
        return True
    return any(part.startswith(expected) for part in actual.split(",") if part)


class ArgoCdClient:
    """A small client of Argo CD's REST API: sync one application and wait for it."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        verify: bool = True,
        request_timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            verify=verify,
            timeout=request_timeout,
        )
        self._server = server
        self._max_retries = max_retries
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:  # noqa: ANN401
        """One API call, retried with backoff on transient failures."""
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                if last:
                    raise ArgoCdRequestError(
                        f"{method} {path}: Argo CD at {self._server} unreachable: {error}"
                    ) from error
            else:
                message = _error_message(response)
                if response.is_success:
                    body: dict[str, Any] = response.json()
                    return body
                transient = response.status_code in _RETRYABLE_STATUS or _BUSY in message
                if not transient or last:
                    raise ArgoCdRequestError(_explain(method, path, response.status_code, message))
            self._sleep(self._backoff * 2**attempt * (0.5 + random.random()))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

    def application(self, name: str, *, refresh: bool = False) -> AppState:
        """The application's current state (``refresh`` asks Argo CD to re-read git first)."""
        params = {"refresh": "normal"} if refresh else {}
        return AppState.from_application(
            name, self._request("GET", f"/api/v1/applications/{name}", params=params)
        )

    def sync(self, name: str, *, revision: str = "", prune: bool = True) -> None:
        """Ask Argo CD to sync ``name`` (to ``revision`` if given)."""
        body: dict[str, Any] = {"name": name, "prune": prune}
        if revision:
            body["revision"] = revision
        self._request("POST", f"/api/v1/applications/{name}/sync", json=body)

    def sync_and_wait(
        self,
        name: str,
        *,
        revision: str = "",
        timeout: float = 600.0,
        poll_interval: float = 5.0,
    ) -> AppState:
        """Sync ``name`` and wait until it is Synced at ``revision`` and Healthy."""
        deadline = self._clock() + timeout
        before = self.application(name, refresh=True)
        self.sync(name, revision=revision)
        state = before
        while True:
            state = self.application(name)
            # The operation is ours once it is not the one seen before the request: a new
            # start time, or (same-second clocks) a newly reached revision.
            ours = state.operation_started_at != before.operation_started_at or (
                bool(revision)
                and not _revision_matches(before.operation_revision, revision)
                and _revision_matches(state.operation_revision, revision)
            )
            at_revision = _revision_matches(state.revision, revision) and _revision_matches(
                state.operation_revision, revision
            )
            if ours and state.phase in _FAILED_PHASES:
                raise SyncFailedError(
                    f"Argo CD sync of {name} failed: {state.operation_message or state.phase}"
                    f" ({state.describe()})"
                )
            settled = ours and state.phase == "Succeeded" and at_revision
            if settled and state.health == "Degraded":
                raise SyncFailedError(
                    f"{name} is Degraded at {state.revision[:12]}:"
                    f" {state.health_message or 'no message'} ({state.describe()})"
                )
            if settled and state.sync_status == "Synced" and state.health == "Healthy":
                return state
            if self._clock() >= deadline:
                want = f" (want {revision[:12]})" if revision else ""
                raise SyncTimeoutError(
                    f"{name} not Synced and Healthy after {timeout:g}s{want}; last state:"
                    f" {state.describe()}"
                )
            self._sleep(poll_interval)


def _error_message(response: httpx.Response) -> str:
    """Argo CD's error text: the gRPC-gateway body's ``message`` (or ``error``)."""
    if response.is_success:
        return ""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "")
    return ""


def _explain(method: str, path: str, status: int, message: str) -> str:
    """What a refused request means, in the words an operator needs."""
    hint = {
        401: "the token was refused (expired or revoked?)",
        403: "the token's account may not do this (check its RBAC policy)",
        404: "no such application (check argocd.application in the environment file)",
    }.get(status, "")
    detail = "; ".join(part for part in (message, hint) if part)
    return f"{method} {path}: HTTP {status}" + (f": {detail}" if detail else "")
