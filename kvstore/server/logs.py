"""Structured JSON logs: one object per line with the member name and current Raft term.

The term comes from a callable the node installs, so every line, from any module, says which
member wrote it and in which term, which is what an operator greps for across a cluster.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON object with ``member`` and ``term`` fields."""

    def __init__(self, member: str, term: Callable[[], int]) -> None:
        super().__init__()
        self._member = member
        self._term = term

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line; extra attributes passed with ``extra=`` become fields."""
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "member": self._member,
            "term": self._term(),
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value if isinstance(value, int | float | str | bool) else str(value)
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return json.dumps(payload, separators=(",", ":"))


def configure(member: str, level: str, term: Callable[[], int]) -> None:
    """Send every log record to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(member, term))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
