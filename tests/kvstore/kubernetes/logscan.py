"""What a kube-apiserver's log says about its etcd client's dealings with the store.

The apiserver logs with klog (``E1204 18:40:00.123456  4242 watcher.go:335] message``, the
first letter the severity) and lets gRPC and the etcd client write into the same stream. The
lines below are the ones that mean the store misbehaved towards the client:

* ``too_many_pings``: the store answered the client's keepalive pings (every 30 s, with or
  without open streams) with GOAWAY ENHANCE_YOUR_CALM, which drops the connection and every
  watch on it; etcd tolerates pings every 5 s.
* ``watch chan error`` at error level: a watch ended with an error the apiserver did not
  expect (it logs compaction at warning level and a cancelled watch not at all).
* ``unexpected ListAndWatch error`` (a watch cache starting again from a fresh list) and
  a reflector's ``Warning: watch ended with error`` (one of the apiserver's own informers,
  which watch through its watch cache, lost its watch).

``RequestWatchProgress feature is not supported`` is information, not an error: the store's
version (3.5.0) is below the etcd versions whose progress notifications the apiserver trusts
(3.4.31, 3.5.13), so it serves consistent lists from etcd instead of its watch cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KLOG = re.compile(r"^(?P<severity>[IWEF])\d{4} ")


@dataclass(frozen=True)
class LogFindings:
    """The problem lines of a log, by kind (each a list of whole lines)."""

    too_many_pings: list[str]
    watch_errors: list[str]
    cache_restarts: list[str]
    progress_notify_unsupported: list[str]

    @property
    def problems(self) -> list[str]:
        """Every line that shows the store misbehaving (not the version notice)."""
        return [*self.too_many_pings, *self.watch_errors, *self.cache_restarts]


def severity(line: str) -> str | None:
    """The klog severity letter of ``line`` (I, W, E, F), or None for a line klog did not
    write (a Go panic, a gRPC line without a header)."""
    match = _KLOG.match(line)
    return match.group("severity") if match else None


def scan(log: str) -> LogFindings:
    """Sort the lines of an apiserver log that concern the store."""
    pings: list[str] = []
    watch: list[str] = []
    restarts: list[str] = []
    unsupported: list[str] = []
    for line in log.splitlines():
        if "too_many_pings" in line:
            pings.append(line)
        elif "watch chan error" in line and severity(line) in {"E", "F", None}:
            watch.append(line)
        elif "unexpected ListAndWatch error" in line or "watch ended with error" in line:
            restarts.append(line)
        elif "RequestWatchProgress feature is not supported" in line:
            unsupported.append(line)
    return LogFindings(pings, watch, restarts, unsupported)
