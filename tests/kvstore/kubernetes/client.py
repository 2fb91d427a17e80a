"""Talking to a test kube-apiserver: a small REST client and a kubectl runner.

The REST client speaks the API's JSON over one kept-alive HTTPS connection (one client per
thread), verifying the apiserver's certificate against the test CA and sending the static
bearer token. It exists beside kubectl because some checks need what kubectl hides: the
exact ``limit``/``continue`` exchange of a paged list, the raw event stream of a watch, and
the status code and timing of each write in a load loop.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """Where the apiserver listens and how to prove who we are."""

    host: str
    port: int
    ca: Path
    token: str

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


@dataclass(frozen=True)
class Response:
    status: int
    body: JsonObject


def path_with(path: str, **query: str | int | bool) -> str:
    """``path`` with the query parameters that are set (false values are left out)."""
    params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in query.items() if v}
    return f"{path}?{urlencode(params)}" if params else path


def kubeconfig(endpoint: Endpoint) -> str:
    """A kubeconfig (JSON is YAML) for kubectl: the cluster, its CA and the token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kvstore",
                "cluster": {"server": endpoint.url, "certificate-authority": str(endpoint.ca)},
            }
        ],
        "users": [{"name": "admin", "user": {"token": endpoint.token}}],
        "contexts": [{"name": "kvstore", "context": {"cluster": "kvstore", "user": "admin"}}],
        "current-context": "kvstore",
    }
    return json.dumps(config, indent=2)


class ApiClient:
    """JSON requests to the apiserver over one connection, reopened after an error."""

    def __init__(self, endpoint: Endpoint, timeout: float = 30) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._tls = ssl.create_default_context(cafile=str(endpoint.ca))
        self._conn: http.client.HTTPSConnection | None = None

    def _connection(self, timeout: float) -> http.client.HTTPSConnection:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                self.endpoint.host, self.endpoint.port, timeout=timeout, context=self._tls
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.endpoint.token}",
            "Accept": "application/json",
            "Content-Type": content_type,
        }

    def request(
        self,
        method: str,
        path: str,
        body: JsonObject | None = None,
        *,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Response:
        """One request; a connection error is raised (the connection is dropped first)."""
        conn = self._connection(timeout or self.timeout)
        conn.timeout = timeout or self.timeout
        payload = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, path, body=payload, headers=self._headers(content_type))
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        decoded: JsonObject = json.loads(raw) if raw else {}
        return Response(resp.status, decoded)

    def ok(self, method: str, path: str, body: JsonObject | None = None, **kw: Any) -> JsonObject:
        """A request that must succeed (2xx); its decoded body."""
        resp = self.request(method, path, body, **kw)
        if not 200 <= resp.status < 300:
            raise AssertionError(f"{method} {path} answered {resp.status}: {resp.body}")
        return resp.body

    def list_pages(self, path: str, limit: int) -> list[JsonObject]:
        """Every page of a list, following ``metadata.continue`` until the last."""
        pages: list[JsonObject] = []
        token = ""
        while True:
            page = self.ok("GET", path_with(path, limit=limit, **{"continue": token}))
            pages.append(page)
            token = page["metadata"].get("continue", "")
            if not token:
                return pages

    def watch(
        self, path: str, resource_version: str, timeout_s: int, *, stop_after: int = 0
    ) -> Iterator[JsonObject]:
        """The events of a watch from ``resource_version``, as the server streams them; it
        ends when the server closes the watch after ``timeout_s`` (or after ``stop_after``
        events, when set). A watch uses its own connection, as a streaming response would
        block any other request on this one."""
        conn = http.client.HTTPSConnection(
            self.endpoint.host, self.endpoint.port, timeout=timeout_s + 10, context=self._tls
        )
        query = path_with(
            path,
            watch=True,
            resourceVersion=resource_version,
            timeoutSeconds=timeout_s,
            allowWatchBookmarks=False,
        )
        try:
            conn.request("GET", query, headers=self._headers())
            resp = conn.getresponse()
            if resp.status != 200:
                raise AssertionError(f"watch {query} answered {resp.status}: {resp.read()!r}")
            seen = 0
            for line in resp:
                if line.strip():
                    yield json.loads(line)
                    seen += 1
                    if stop_after and seen >= stop_after:
                        return
        finally:
            conn.close()

    def wait_ready(self, timeout: float, alive: Any = None) -> None:
        """Wait until ``/readyz`` answers ok; ``alive`` (a callable) aborts the wait early
        when it returns false, for a process that died."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise RuntimeError("the apiserver exited while starting")
            try:
                conn = self._connection(5)
                conn.request("GET", "/readyz", headers=self._headers())
                resp = conn.getresponse()
                text = resp.read().decode(errors="replace")
                if resp.status == 200:
                    return
                last = f"{resp.status}: {text}"
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                last = repr(exc)
            time.sleep(0.5)
        raise TimeoutError(f"/readyz did not answer ok within {timeout}s (last: {last})")


class Kubectl:
    """Runs kubectl with the test kubeconfig; failures raise with kubectl's own output."""

    def __init__(self, binary: str, kubeconfig_path: Path) -> None:
        self.binary = binary
        self.kubeconfig_path = kubeconfig_path

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig_path), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str) -> JsonObject:
        """``kubectl ARGS -o json``, decoded."""
        out: JsonObject = json.loads(self.run(*args, "-o", "json").stdout)
        return out

    def apply(self, manifest: JsonObject, *args: str) -> str:
        """Server-side ``kubectl [ARGS] apply`` of one object, as controllers now apply."""
        return self.run(
            *args, "apply", "--server-side", "--field-manager=kvstore-tests", "-f", "-",
            stdin=json.dumps(manifest),
        ).stdout  # fmt: skip
