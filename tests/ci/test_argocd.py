"""Argo CD sync-and-wait against a local stand-in of Argo CD's REST API.

No Argo CD can run here (it needs a Kubernetes cluster), so these tests use a STAND-IN: a
real HTTP server on 127.0.0.1 that serves the two endpoints the pipeline uses with Argo
CD's documented shapes (``POST /api/v1/applications/{name}/sync`` taking an
``ApplicationSyncRequest``; ``GET /api/v1/applications/{name}`` returning an ``Application``
with ``status.sync``, ``status.health``, ``status.operationState`` and ``status.history``;
errors as gRPC-gateway bodies ``{"error", "code", "message"}``). It plays a scripted list of
application states, one per GET after the sync request, and records every request, so the
tests check both what the client sends and how it reads each transition.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kvstore_ci.argocd import (
    ArgoCdClient,
    ArgoCdRequestError,
    SyncFailedError,
    SyncTimeoutError,
)

APP = "kvstore-staging"
TOKEN = "argocd-token-value"
OLD = "1" * 40
NEW = "2" * 40


def app_state(
    sync: str,
    revision: str,
    health: str,
    phase: str = "",
    message: str = "",
    started: str = "",
    health_message: str = "",
    history: list[str] | None = None,
) -> dict[str, Any]:
    """An Application object with the status fields Argo CD documents."""
    status: dict[str, Any] = {
        "sync": {"status": sync, "revision": revision},
        "health": {"status": health},
        "history": [
            {"id": n, "revision": rev, "deployedAt": "2026-01-01T00:00:00Z"}
            for n, rev in enumerate(history or [OLD])
        ],
    }
    if health_message:
        status["health"]["message"] = health_message
    if phase:
        status["operationState"] = {
            "phase": phase,
            "message": message,
            "startedAt": started,
            "operation": {"sync": {"revision": revision}},
            "syncResult": {"revision": revision},
        }
    return {"metadata": {"name": APP}, "status": status}


BEFORE = app_state("Synced", OLD, "Healthy", "Succeeded", "successfully synced", "T0")


@dataclass
class StandIn:
    """The scripted server: states per GET, optional error replies, recorded requests."""

    states: list[dict[str, Any]]
    errors: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, str, dict[str, Any] | None]] = field(default_factory=list)
    synced: bool = False
    served: int = 0
    url: str = ""


def _error(code: int, message: str) -> dict[str, Any]:
    """A gRPC-gateway error body, as Argo CD's API server sends them."""
    return {"error": message, "code": code, "message": message}


@pytest.fixture
def standin() -> Iterator[StandIn]:
    state = StandIn(states=[])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            auth = self.headers.get("Authorization", "")
            state.requests.append((method, self.path, auth, body))
            if auth != f"Bearer {TOKEN}":
                self._reply(
                    401,
                    {
                        "error": "invalid session",
                        "code": 16,
                        "message": "invalid session: token is expired",
                    },
                )
                return
            queued = state.errors.get(method, [])
            if queued:
                code = queued.pop(0)
                if code == 400:
                    self._reply(
                        400,
                        {
                            "error": "busy",
                            "code": 9,
                            "message": "another operation is already in progress",
                        },
                    )
                else:
                    self._reply(
                        code,
                        {"error": "unavailable", "code": 14, "message": "upstream connect error"},
                    )
                return
            path = self.path.split("?")[0]
            if not path.startswith(f"/api/v1/applications/{APP}"):
                self._reply(
                    404,
                    {
                        "error": "not found",
                        "code": 5,
                        "message": f'applications.argoproj.io "{path.split("/")[4]}" not found',
                    },
                )
                return
            if method == "POST" and path.endswith("/sync"):
                state.synced = True
                self._reply(200, state.states[0] if state.states else BEFORE)
            elif not state.synced:
                self._reply(200, BEFORE)
            else:
                index = min(state.served, len(state.states) - 1)
                state.served += 1
                self._reply(200, state.states[index])

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def client(standin: StandIn, token: str = TOKEN) -> ArgoCdClient:
    return ArgoCdClient(standin.url, token, backoff=0.01, max_retries=3)


def test_success_waits_for_synced_healthy_at_revision(standin: StandIn) -> None:
    standin.states = [
        BEFORE,  # the controller has not picked the request up yet
        app_state("OutOfSync", OLD, "Healthy", "Running", "syncing", "T1"),
        app_state("Synced", NEW, "Progressing", "Running", "waiting for healthy state", "T1"),
        app_state(
            "Synced", NEW, "Healthy", "Succeeded", "successfully synced", "T1", history=[OLD, NEW]
        ),
    ]
    argocd = client(standin)
    state = argocd.sync_and_wait(APP, revision=NEW, timeout=10, poll_interval=0.01)
    argocd.close()
    assert (state.sync_status, state.health, state.phase) == ("Synced", "Healthy", "Succeeded")
    assert state.revision == NEW and state.history_id == 1
    assert standin.served == 4, "polled until the last scripted state, not before"
    methods = [(m, p) for m, p, _, _ in standin.requests]
    assert methods[0] == ("GET", f"/api/v1/applications/{APP}?refresh=normal")
    assert methods[1] == ("POST", f"/api/v1/applications/{APP}/sync")
    assert standin.requests[1][3] == {"name": APP, "prune": True, "revision": NEW}
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth, _ in standin.requests)


def test_short_revision_matches(standin: StandIn) -> None:
    standin.states = [app_state("Synced", NEW, "Healthy", "Succeeded", "ok", "T1")]
    state = client(standin).sync_and_wait(APP, revision=NEW[:7], timeout=5, poll_interval=0.01)
    assert state.revision == NEW


def test_degraded_fails_fast_with_argo_message(standin: StandIn) -> None:
    standin.states = [
        app_state("Synced", NEW, "Progressing", "Running", "", "T1"),
        app_state(
            "Synced",
            NEW,
            "Degraded",
            "Succeeded",
            "successfully synced",
            "T1",
            health_message="statefulset kvstore: 0 of 3 pods ready (CrashLoopBackOff)",
        ),
        app_state("Synced", NEW, "Healthy", "Succeeded", "", "T1"),
    ]
    with pytest.raises(
        SyncFailedError,
        match=r"kvstore-staging is Degraded at 222222222222: "
        r"statefulset kvstore: 0 of 3 pods ready \(CrashLoopBackOff\)",
    ):
        client(standin).sync_and_wait(APP, revision=NEW, timeout=10, poll_interval=0.01)
    assert standin.served == 2, "stopped at the Degraded state, did not poll on"


def test_degraded_before_the_sync_is_not_held_against_it(standin: StandIn) -> None:
    standin.states = [
        app_state("OutOfSync", OLD, "Degraded", "Succeeded", "old", "T0"),  # stale operation
        app_state("Synced", NEW, "Healthy", "Succeeded", "successfully synced", "T1"),
    ]
    state = client(standin).sync_and_wait(APP, revision=NEW, timeout=5, poll_interval=0.01)
    assert state.health == "Healthy"


def test_failed_operation_fails_fast(standin: StandIn) -> None:
    message = (
        'one or more objects failed to apply, reason: StatefulSet.apps "kvstore" is '
        "invalid: spec.replicas: Invalid value: -1"
    )
    standin.states = [
        app_state("OutOfSync", OLD, "Healthy", "Running", "syncing", "T1"),
        app_state("OutOfSync", OLD, "Healthy", "Failed", message, "T1"),
        app_state("Synced", NEW, "Healthy", "Succeeded", "", "T1"),
    ]
    with pytest.raises(SyncFailedError) as info:
        client(standin).sync_and_wait(APP, revision=NEW, timeout=10, poll_interval=0.01)
    assert str(info.value).startswith(f"Argo CD sync of {APP} failed: {message}")
    assert standin.served == 2


def test_timeout_reports_last_state(standin: StandIn) -> None:
    standin.states = [
        app_state(
            "Synced",
            NEW,
            "Progressing",
            "Running",
            "waiting for healthy state of apps/StatefulSet/kvstore",
            "T1",
        ),
    ]
    with pytest.raises(SyncTimeoutError) as info:
        client(standin).sync_and_wait(APP, revision=NEW, timeout=0.3, poll_interval=0.05)
    text = str(info.value)
    assert text.startswith(f"{APP} not Synced and Healthy after 0.3s (want 222222222222)")
    assert (
        "last state: sync=Synced at 222222222222, health=Progressing, operation=Running: "
        "waiting for healthy state of apps/StatefulSet/kvstore"
    ) in text
    assert standin.served >= 2


def test_transient_errors_are_retried(standin: StandIn) -> None:
    standin.errors = {"POST": [503, 400], "GET": [502]}
    standin.states = [app_state("Synced", NEW, "Healthy", "Succeeded", "ok", "T1")]
    state = client(standin).sync_and_wait(APP, revision=NEW, timeout=10, poll_interval=0.01)
    assert state.health == "Healthy"
    posts = [r for r in standin.requests if r[0] == "POST"]
    assert len(posts) == 3, "503 and 'operation in progress' retried, third attempt succeeds"


def test_persistent_5xx_gives_up_with_the_status(standin: StandIn) -> None:
    standin.errors = {"GET": [503] * 10}
    with pytest.raises(ArgoCdRequestError, match="HTTP 503: upstream connect error"):
        client(standin).sync_and_wait(APP, revision=NEW, timeout=10, poll_interval=0.01)
    assert len(standin.requests) == 4, "one try and three retries"


def test_refused_token_and_unknown_app_are_not_retried(standin: StandIn) -> None:
    with pytest.raises(
        ArgoCdRequestError,
        match="HTTP 401: invalid session: token is expired; the token was refused",
    ):
        client(standin, token="wrong").sync_and_wait(APP, timeout=5)
    assert len(standin.requests) == 1
    with pytest.raises(ArgoCdRequestError, match=r"HTTP 404: .*no such application"):
        client(standin).sync_and_wait("kvstore-qa", timeout=5)


def test_command_line(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m kvstore_ci argocd-sync`, what the stage's container runs."""
    import argparse  # noqa: PLC0415

    from kvstore_ci.delivery_cli import add_commands, run  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    standin.states = [app_state("Synced", NEW, "Healthy", "Succeeded", "ok", "T1")]
    argv = ["argocd-sync", "--server", standin.url, "--application", APP, "--revision", NEW]
    monkeypatch.delenv("ARGOCD_AUTH_TOKEN", raising=False)
    assert run(parser.parse_args(argv)) == 2
    assert "ARGOCD_AUTH_TOKEN is not set" in capsys.readouterr().err
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", TOKEN)
    assert run(parser.parse_args(argv)) == 0
    assert json.loads(capsys.readouterr().out)["health"] == "Healthy"


def test_multi_source_application_without_expected_revision(standin: StandIn) -> None:
    """Monitoring apps have several sources: status carries ``revisions``, not ``revision``."""
    synced = app_state("Synced", "", "Healthy", "Succeeded", "ok", "T1")
    synced["status"]["sync"] = {"status": "Synced", "revisions": ["88.5.3", NEW]}
    synced["status"]["operationState"]["syncResult"] = {"revisions": ["88.5.3", NEW]}
    standin.states = [app_state("OutOfSync", OLD, "Healthy", "Running", "", "T1"), synced]
    state = client(standin).sync_and_wait(APP, timeout=5, poll_interval=0.01)
    assert state.revision == f"88.5.3,{NEW}" and standin.served == 2
    assert standin.requests[1][3] == {"name": APP, "prune": True}, "no revision requested"
