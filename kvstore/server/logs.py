"""Structured JSON logs: one object per line with the member name and current Raft term.

The node reports its term with :func:`set_term`, so every line, from any module, says which
member wrote it and in which term, which is what an operator greps for across a cluster.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message"}


_term = [0]


def set_term(term: int) -> None:
    """Record the member's current Raft term for later log lines."""
    _term[0] = term


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON object with ``member`` and ``term`` fields."""

    def __init__(self, member: str) -> None:
        super().__init__()
        self._member = member

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line; extra attributes passed with ``extra=`` become fields."""
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "member": self._member,
            "term": _term[0],
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value if isinstance(value, int | float | str | bool) else str(value)
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return json.dumps(payload, separators=(",", ":"))


def configure(member: str, level: str) -> None:
    """Send every log record to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(member))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
