"""Turn what the pipeline's tools report into results and into one readable error.

Stages run several tools and must report every finding, not only the first: a stage
collects a :class:`CheckResult` per tool and raises one :class:`StageFailed` that lists all
the failures. The test stage reads pytest's JUnit XML to name the failing tests.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # pytest's own report
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CheckResult",
    "StageFailed",
    "failing_tests",
    "failure_message",
    "stage_failures",
    "summary",
]

# How much of one tool's output goes into an error message.
MAX_OUTPUT_CHARS = 8000


class StageFailed(Exception):
    """A pipeline stage failed; the message says every reason."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one tool run: which tool, what it ran, its exit code and output."""

    name: str
    command: tuple[str, ...]
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        """Whether the tool found nothing."""
        return self.exit_code == 0


def _tail(text: str) -> str:
    text = text.strip()
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return "...\n" + text[-MAX_OUTPUT_CHARS:]


def summary(stage: str, results: Sequence[CheckResult]) -> str:
    """One line per tool with its status, then the output of every failed tool."""
    failed = [r for r in results if not r.ok]
    lines = [f"{stage}: {len(results) - len(failed)} of {len(results)} checks passed"]
    lines += [
        f"  {'ok  ' if r.ok else 'FAIL'} {r.name}: {' '.join(r.command)} (exit {r.exit_code})"
        for r in results
    ]
    for r in failed:
        lines += ["", f"--- {r.name} ---", _tail(r.output) or "(no output)"]
    return "\n".join(lines)


def failing_tests(junit_xml: str) -> list[str]:
    """The ``classname::name`` of every test case with a failure or an error, in order."""
    root = ET.fromstring(junit_xml)  # noqa: S314 - see the import
    names: list[str] = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            classname = case.get("classname", "")
            name = case.get("name", "")
            names.append(f"{classname}::{name}" if classname else name)
    return names


def failure_message(exit_code: int, failing: Sequence[str]) -> str:
    """The error of a failed test stage: the failing tests, or why none are named."""
    if failing:
        listed = "\n".join(f"  {name}" for name in failing)
        return f"{len(failing)} test(s) failed (pytest exit {exit_code}):\n{listed}"
    return f"pytest exited with {exit_code} and the JUnit report names no failing test"


def stage_failures(failures: Mapping[str, str], order: Sequence[str]) -> str:
    """One error for several failed stages, each with its own message, in ``order``."""
    return "\n\n".join(
        f"== {name} failed ==\n{failures[name]}" for name in order if name in failures
    )
