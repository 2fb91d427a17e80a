"""The plan's executor: records every step a function takes instead of running it.

``python -m kvstore_ci plan`` sets a :class:`Recorder` as the executor of a module object
and calls a function as ``dagger call`` would. The function's code runs unchanged: each
step it awaits (:class:`~kvstore_ci.executor.Step`) is noted with its lazy object and
answered with the step's placeholder (an exit code of 0, or the one the function says shows
the path that does the most; ``<stdout of stage>``; a digest of zeros...). Files of the
checkout are read from disk, as the engine would read them, and are not shown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import dagger
from dagger.client.base import Type as LazyObject

from kvstore_ci.executor import Executor, Step
from kvstore_ci.plan import Stage, node_of

__all__ = ["Recorder", "host_path"]

T = TypeVar("T")

RECORDED_RUN_ID = "<run-id>"


def host_path(obj: LazyObject) -> Path | None:
    """The local path of a file or directory taken from the host, else ``None``."""
    ops = node_of(obj).ops
    if not ops or (ops[0].on, ops[0].name) != ("Query", "host"):
        return None
    path = Path()
    for op in ops[1:]:
        step = op.args.get("path")
        if op.name not in ("directory", "file") or not isinstance(step, str):
            return None
        path = path / step
    return path


@dataclass
class _Noted:
    name: str
    subject: LazyObject | None
    actions: list[str]
    inputs: Mapping[str, dagger.Secret] = field(default_factory=dict)


class Recorder(Executor):
    """Notes each step as a stage (one per stage name and object, one per API call) and
    answers placeholders."""

    def __init__(self) -> None:
        self._noted: list[_Noted] = []

    @property
    def stages(self) -> list[Stage]:
        """What was recorded, in the order the function first touched each stage."""
        return [Stage(n.name, n.subject, tuple(n.actions), dict(n.inputs)) for n in self._noted]

    def _note(self, step: Step) -> None:
        for noted in self._noted:  # an API call (no subject) is a stage of its own
            if (
                noted.name == step.stage
                and step.subject is not None
                and noted.subject is step.subject
            ):
                noted.actions.extend(step.action.splitlines())
                return
        noted = _Noted(step.stage, step.subject, step.action.splitlines(), step.inputs)
        self._noted.append(noted)

    async def perform(self, step: Step, query: Callable[[], Awaitable[T]], recorded: T) -> T:
        """Note the step; answer ``recorded``."""
        self._note(step)
        return recorded

    async def call(self, step: Step, api: Callable[[Mapping[str, str]], T], recorded: T) -> T:
        """Note the API call with its secrets (by name); answer ``recorded``."""
        self._note(step)
        return recorded

    def run_id(self) -> str:
        """A readable stand-in for the fresh value a real run sets."""
        return RECORDED_RUN_ID

    async def contents(self, stage: str, file: dagger.File, *, note: str = "") -> str:
        """A checkout file's text from disk (not shown); any other file is a step."""
        local = host_path(file)
        if local is not None and local.is_file():
            return local.read_text(encoding="utf-8")
        return await super().contents(stage, file, note=note)

    async def file_name(self, stage: str, file: dagger.File, *, note: str = "") -> str:
        """Note the step; answer the name the file was given where the plan can see it."""
        await super().file_name(stage, file, note=note)
        paths = [op.args.get("path") for op in node_of(file).ops]
        named = [p for p in paths if isinstance(p, str)]
        return Path(named[-1]).name if named else "<name>"
