"""Turn what the pipeline's tools report into results and into one readable error.

Stages run several tools and must report every finding, not only the first: a stage
collects a :class:`CheckResult` per tool and raises one :class:`StageFailed` that lists all
the failures. The test stage reads pytest's JUnit XML to name the failing tests.

Every failure a function reports is one of these (the executor converts the engine's own
errors into them, :mod:`kvstore_ci.executor`)::

    StageFailed               a stage failed; the message says why and what to do
    ├── CommandFailed         a command in a stage's container exited non-zero
    └── OperationFailed       the engine refused an operation (pull, push, read a file)

``StageFailed`` is the SDK's ``FunctionError``: the module runtime reports it as the
function's error, the message alone, without a Python traceback.
"""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET  # pytest's own report
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The runtime's "handled error": reported as the function's error without a traceback.
from dagger.mod._exceptions import FunctionError

__all__ = [
    "LINT_ADVICE",
    "CheckResult",
    "CommandFailed",
    "OperationFailed",
    "StageFailed",
    "failing_tests",
    "failure_message",
    "stage_failures",
    "summary",
]

# How much of one tool's output goes into an error message.
MAX_OUTPUT_CHARS = 8000
# How much of a failed command's output its error shows: the end, where tools say why.
TAIL_LINES = 40
TAIL_CHARS = 4000
# What to do when the function has nothing more specific to say.
DEFAULT_ADVICE = "read the output above, fix the cause and run the function again"


class StageFailed(FunctionError):
    """A pipeline stage failed; the message says every reason."""


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The end of a tool's output, where it says why it failed."""
    kept = text.strip().splitlines()[-lines:]
    joined = "\n".join(kept)
    return joined if len(joined) <= chars else "..." + joined[-chars:]


def _indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"


class CommandFailed(StageFailed):
    """A command in a stage's container failed: which stage, which command, its exit code,
    the tail of its output and what to do next."""

    def __init__(
        self,
        stage: str,
        command: Sequence[str],
        exit_code: int,
        output: str,
        *,
        meaning: str = "",
        advice: str = "",
    ) -> None:
        self.stage, self.command, self.exit_code = stage, tuple(command), exit_code
        self.output = tail(output)
        self.meaning, self.advice = meaning, advice or DEFAULT_ADVICE
        word = command[0] if command else "a command"
        lines = [
            f"{stage}: {meaning or f'{word} failed'} (exit {exit_code})",
            f"  command: {shlex.join(self.command)}",
            f"  output (last {TAIL_LINES} lines at most):",
            _indented(self.output),
            f"  what to do: {self.advice}",
        ]
        super().__init__(
            "\n".join(lines),
            extra={"stage": stage, "command": list(command), "exitCode": exit_code},
        )


class OperationFailed(StageFailed):
    """The engine refused an operation of a stage (an image pull, a push, reading a file)."""

    def __init__(self, stage: str, action: str, message: str, *, advice: str = "") -> None:
        self.stage, self.action, self.message = stage, action, message
        self.advice = advice or DEFAULT_ADVICE
        lines = [
            f"{stage}: {action} failed",
            "  engine:",
            _indented(tail(message)),
            f"  what to do: {self.advice}",
        ]
        super().__init__("\n".join(lines), extra={"stage": stage, "action": action})


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
        first = failing[0].rpartition("::")[2]
        return (
            f"{len(failing)} test(s) failed (pytest exit {exit_code}):\n{listed}\n"
            f"  what to do: run them locally (e.g. ./scripts/test -k {first}) and fix them"
        )
    return (
        f"pytest exited with {exit_code} and the JUnit report names no failing test\n"
        "  what to do: pytest could not collect or start the suite; run ./scripts/test"
        " locally to see why"
    )


LINT_ADVICE = (
    "fix what each failing tool reports (./scripts/test runs the same tools locally)"
    " and run lint again"
)


def stage_failures(failures: Mapping[str, str], order: Sequence[str]) -> str:
    """One error for several failed stages, each with its own message, in ``order``."""
    return "\n\n".join(
        f"== {name} failed ==\n{failures[name]}" for name in order if name in failures
    )
