"""Reading a suite's results: pytest's JUnit XML, or the Go program's JSON lines.

Both become one map from a test's id to its :class:`Result`. pytest reports an error in a
fixture's teardown as a second ``<testcase>`` of the same name, so a test's outcome is the
worst of its entries.
"""

from __future__ import annotations

import enum
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


class Outcome(enum.IntEnum):
    """A test's outcome, ordered from best to worst (the worst entry of a test wins)."""

    PASSED = 0
    SKIPPED = 1
    FAILED = 2


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    message: str = ""
    """The first line of the failure or skip message."""


class ResultsError(ValueError):
    """A results file that is missing or cannot be read."""


def _first_line(text: str | None, limit: int = 300) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:limit]


def _case_result(case: ET.Element) -> Result:
    for tag in ("failure", "error"):
        node = case.find(tag)
        if node is not None:
            return Result(Outcome.FAILED, _first_line(node.get("message") or node.text))
    node = case.find("skipped")
    if node is not None:
        return Result(Outcome.SKIPPED, _first_line(node.get("message") or node.text))
    return Result(Outcome.PASSED)


def _merge(results: dict[str, Result], test_id: str, result: Result) -> None:
    known = results.get(test_id)
    if known is None or result.outcome > known.outcome:
        results[test_id] = result


def parse_junit(text: str) -> dict[str, Result]:
    """Results by ``classname::name`` from a JUnit XML document."""
    try:
        root = ET.fromstring(text)  # a report our own subprocess wrote
    except ET.ParseError as e:
        raise ResultsError(f"not JUnit XML: {e}") from e
    results: dict[str, Result] = {}
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        if not name:
            raise ResultsError("a <testcase> without a name")
        _merge(results, f"{classname}::{name}" if classname else name, _case_result(case))
    return results


def parse_json_lines(text: str) -> dict[str, Result]:
    """Results by check name from the Go program's output, one JSON object per line."""
    results: dict[str, Result] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ResultsError(f"line {number} is not JSON: {raw[:200]!r}") from e
        if not isinstance(entry, dict) or not isinstance(entry.get("check"), str):
            raise ResultsError(f"line {number} names no check: {raw[:200]!r}")
        if not isinstance(entry.get("ok"), bool):
            raise ResultsError(f"line {number} has no boolean 'ok': {raw[:200]!r}")
        outcome = Outcome.PASSED if entry["ok"] else Outcome.FAILED
        _merge(results, entry["check"], Result(outcome, _first_line(str(entry.get("error", "")))))
    return results


def load(path: Path, parse: str) -> dict[str, Result]:
    """Read ``path`` with the parser named ``parse`` (``junit`` or ``jsonl``)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise ResultsError(f"no results at {path}: {e.strerror}") from e
    if parse == "junit":
        return parse_junit(text)
    if parse == "jsonl":
        return parse_json_lines(text)
    raise ValueError(f"unknown results format {parse!r}")
