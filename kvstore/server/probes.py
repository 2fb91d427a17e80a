"""etcd 3.5's HTTP probes: ``/health``, ``/livez``, ``/readyz`` (and one check each under
``/livez/<check>``, ``/readyz/<check>``), ``/version``; the answers only, no I/O.

- ``/health``: ``{"health":"true","reason":""}``, or 503 with ``"false"`` and the first
  failing cause: an alarm (``ALARM NOSPACE``, ``ALARM CORRUPT``; ``?exclude=NOSPACE``
  ignores one), no leader (``RAFT NO LEADER``; skipped with ``?serializable=true``), or the
  read it makes failing (``RANGE ERROR:<message>``, linearizable unless serializable).
- ``/livez``: a serializable read; ``/readyz``: no CORRUPT alarm, a serializable and a
  linearizable read, not a learner. ``ok`` (with one ``[+]name ok`` line per check under
  ``?verbose``), or 503 listing every check with ``[-]name failed: <reason>`` for the
  failed ones; ``?exclude=<check>`` skips a check.
- ``/version``: ``{"etcdserver":"3.5.13","etcdcluster":"3.5.0"}``
  (see :mod:`kvstore.server.version`).

Every one of them answers only GET (405 ``Method Not Allowed`` with ``Allow: GET``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.server import errors
from kvstore.server.gateway import PLAIN_HEADERS, TEXT, Response, plain
from kvstore.server.version import ETCD_CLUSTER_VERSION, ETCD_VERSION

_NOSPACE = int(rpc_pb2.AlarmType.Value("NOSPACE"))
_CORRUPT = int(rpc_pb2.AlarmType.Value("CORRUPT"))
_ALARM_REASONS: dict[int, str] = {_NOSPACE: "ALARM NOSPACE", _CORRUPT: "ALARM CORRUPT"}


@dataclass(frozen=True, slots=True)
class Target:
    """What the probes look at, as callables so this module needs no member."""

    alarms: Callable[[], Sequence[int]]
    """The alarm types raised anywhere in the cluster."""
    leader: Callable[[], int]
    """The leader's id (0: none known)."""
    is_learner: Callable[[], bool]
    read: Callable[[bool], Awaitable[object]]
    """A one-key keys-only range, serializable if True; raises EtcdError on failure."""
    timeout_s: float
    """How long a probe's read may take (etcd's request timeout)."""


PATHS = ("/health", "/livez", "/readyz", "/version")
LIVEZ_CHECKS = ("serializable_read",)
READYZ_CHECKS = ("data_corruption", "serializable_read", "linearizable_read", "non_learner")


def handles(path: str) -> bool:
    """Whether ``path`` (no query) is a probe."""
    if path in PATHS:
        return True
    root, _, check = path.rpartition("/")
    return (root == "/livez" and check in LIVEZ_CHECKS) or (
        root == "/readyz" and check in READYZ_CHECKS
    )


def _method_not_allowed() -> Response:
    resp = plain(405, "Method Not Allowed")
    return Response(405, resp.body, (*resp.headers, ("Allow", "GET")))


async def answer(target: Target, method: str, target_path: str) -> Response:
    """The answer to ``method target_path`` (a path :func:`handles`)."""
    path, _, query = target_path.partition("?")
    if method not in ("GET", "HEAD"):
        return _method_not_allowed()
    params = parse_qs(query, keep_blank_values=True)
    if path == "/version":
        body = json.dumps(
            {"etcdserver": ETCD_VERSION, "etcdcluster": ETCD_CLUSTER_VERSION}, separators=(",", ":")
        )
        return Response(200, body.encode())
    if path == "/health":
        return await health(target, params)
    kind, _, single = path[1:].partition("/")
    return await checks(target, kind, single, params)


async def _read_error(target: Target, serializable: bool) -> str:
    """ "" when the read works, else etcd's error text."""
    try:
        await asyncio.wait_for(target.read(serializable), target.timeout_s)
    except errors.EtcdError as exc:
        return exc.message
    except TimeoutError:
        return errors.TIMEOUT.message
    return ""


async def health(target: Target, params: Mapping[str, list[str]]) -> Response:
    """``/health``: alarms, then the leader, then a read."""
    excluded = {v for v in params.get("exclude", []) if v}
    serializable = params.get("serializable", [""])[0] == "true"
    reason = ""
    for alarm in target.alarms():
        if rpc_pb2.AlarmType.Name(rpc_pb2.AlarmType.ValueType(alarm)) in excluded:
            continue
        reason = {_NOSPACE: "ALARM NOSPACE", _CORRUPT: "ALARM CORRUPT"}.get(alarm, "ALARM UNKNOWN")
        break
    if not reason and not serializable and target.leader() == 0:
        reason = "RAFT NO LEADER"
    if not reason:
        failed = await _read_error(target, serializable)
        if failed:
            reason = f"RANGE ERROR:{failed}"
    body = json.dumps(
        {"health": "false" if reason else "true", "reason": reason}, separators=(",", ":")
    )
    if reason:
        return plain(503, body)
    # etcd writes no type; Go's sniffing names it text/plain.
    return Response(200, body.encode(), (("Content-Type", TEXT),))


async def _check(target: Target, name: str) -> str:
    """ "" when the check passes, else why not."""
    if name == "data_corruption":
        return "alarm activated: CORRUPT" if _CORRUPT in target.alarms() else ""
    if name == "serializable_read":
        return await _read_error(target, True)
    if name == "linearizable_read":
        return await _read_error(target, False)
    if name == "non_learner":
        return "not supported for learner" if target.is_learner() else ""
    raise AssertionError(name)


async def checks(
    target: Target, kind: str, single: str, params: Mapping[str, list[str]]
) -> Response:
    """``/livez`` or ``/readyz`` (every check but the excluded ones), or one check."""
    if single:
        names: tuple[str, ...] = (single,)
    else:
        excluded = {v for v in params.get("exclude", []) if v}
        all_checks = LIVEZ_CHECKS if kind == "livez" else READYZ_CHECKS
        names = tuple(n for n in all_checks if n not in excluded)
    lines = []
    failed = False
    for name in names:
        why = await _check(target, name)
        failed = failed or bool(why)
        lines.append(f"[-]{name} failed: {why}\n" if why else f"[+]{name} ok\n")
    report = "".join(lines)
    if failed:
        return plain(503, report)
    verbose = "verbose" in params
    return Response(200, ((report if verbose else "") + "ok\n").encode(), PLAIN_HEADERS)
