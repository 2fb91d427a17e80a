"""The one seam between the module's functions and the engine: an :class:`Executor`.

A function builds lazy Dagger objects freely, but everything that makes the engine do work
(an exit code, stdout, a sync, a publish, a file's contents, a label) and every API call the
module makes from its own process (the ECR token exchange, the EKS token) goes through the
executor of the module object, ``self._run``::

    code = await self._run.exit_code("terraform-plan", planned, recorded=2)

There are two executors. :data:`ENGINE` awaits the object and turns the engine's errors into
the module's own (:class:`~kvstore_ci.reports.CommandFailed` for a command that exited
non-zero, :class:`~kvstore_ci.reports.OperationFailed` for anything else the engine refused),
so no raw ``ExecError`` or traceback reaches ``dagger call``. The engine-free plan swaps in a
recorder (:mod:`kvstore_ci.recorder`) that notes each :class:`Step` and answers with the
``recorded`` placeholder, so a function's code runs unchanged without an engine and a
stage is written once.

This module sits below the functions and never imports them, the module object or the plan.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import dagger
from dagger.client.base import Type as LazyObject

from kvstore_ci.reports import (
    DEFAULT_ADVICE,
    CommandFailed,
    OperationFailed,
    StageFailed,
)

__all__ = ["ENGINE", "PLACEHOLDER_DIGEST", "Engine", "Executor", "Step"]

T = TypeVar("T")

# What a recorded push answers in place of the digest the registry would give.
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Step:
    """One thing a function asks of the engine, as a plan shows it.

    ``subject`` is the lazy object awaited (``None`` for an API call the module makes
    itself), ``action`` what is asked of it (``exit-code``, ``publish <address>``...),
    ``failure`` what a failure means and ``advice`` what to do then (both for the error),
    ``inputs`` the secrets an API call reads. An API call's several actions are lines.
    """

    stage: str
    subject: LazyObject | None
    action: str
    failure: str = ""
    advice: str = ""
    inputs: Mapping[str, dagger.Secret] = field(default_factory=dict)


def _action(name: str, note: str) -> str:
    return f"{name}: {note}" if note else name


class Executor(ABC):
    """Runs a function's steps: the engine in a real call, a recorder in a plan.

    Subclasses implement :meth:`perform`, :meth:`call` and :meth:`run_id`; the other
    methods say which step is which, once, for both.
    """

    @abstractmethod
    async def perform(self, step: Step, query: Callable[[], Awaitable[T]], recorded: T) -> T:
        """Await ``query`` (the engine) or note ``step`` and return ``recorded`` (a plan)."""

    @abstractmethod
    async def call(self, step: Step, api: Callable[[Mapping[str, str]], T], recorded: T) -> T:
        """Run one of the module's own API calls with the plaintexts of ``step.inputs``."""

    @abstractmethod
    def run_id(self) -> str:
        """A value no earlier run used: the cache buster of commands with side effects."""

    async def exit_code(
        self,
        stage: str,
        container: dagger.Container,
        *,
        note: str = "",
        failure: str = "",
        advice: str = "",
        recorded: int = 0,
    ) -> int:
        """The exit code of the last command (run with ``expect=ANY``).

        ``recorded`` is the code a plan assumes, chosen to show the path that does the most.
        """
        step = Step(stage, container, _action("exit-code", note), failure, advice)
        return await self.perform(step, container.exit_code, recorded)

    async def stdout(
        self,
        stage: str,
        container: dagger.Container,
        *,
        note: str = "",
        failure: str = "",
        advice: str = "",
        recorded: str = "",
    ) -> str:
        """What the last command printed; a failed command is a :class:`CommandFailed`."""
        step = Step(stage, container, _action("stdout", note), failure, advice)
        return await self.perform(step, container.stdout, recorded or f"<stdout of {stage}>")

    async def stderr(self, stage: str, container: dagger.Container, *, note: str = "") -> str:
        """What the last command wrote to stderr."""
        step = Step(stage, container, _action("stderr", note))
        return await self.perform(step, container.stderr, "")

    async def sync(
        self,
        stage: str,
        container: dagger.Container,
        *,
        failure: str = "",
        advice: str = "",
    ) -> dagger.Container:
        """Make the engine build ``container`` now, so its failure is this stage's error."""
        step = Step(stage, container, "sync", failure, advice)
        return await self.perform(step, container.sync, container)

    async def publish(
        self,
        stage: str,
        container: dagger.Container,
        address: str,
        *,
        advice: str = "",
    ) -> str:
        """Push ``container`` to ``address``; the pushed reference with its digest."""
        step = Step(stage, container, f"publish {address}", advice=advice)

        async def push() -> str:
            return await container.publish(address)

        return await self.perform(step, push, f"{address}@{PLACEHOLDER_DIGEST}")

    async def contents(self, stage: str, file: dagger.File, *, note: str = "") -> str:
        """The text of ``file``."""
        step = Step(stage, file, _action("contents", note))
        return await self.perform(step, file.contents, f"<contents of {stage}>")

    async def file_name(self, stage: str, file: dagger.File, *, note: str = "") -> str:
        """The name of ``file``."""
        step = Step(stage, file, _action("name", note))
        return await self.perform(step, file.name, "<name>")

    async def label(self, stage: str, container: dagger.Container, name: str) -> str:
        """The value of the image label ``name`` (empty when unset)."""
        step = Step(stage, container, f"label {name}")

        async def read() -> str:
            return await container.label(name) or ""

        return await self.perform(step, read, f"<{name.rsplit('.', 1)[-1]} label>")

    async def api(
        self,
        stage: str,
        request: Callable[[Mapping[str, str]], T],
        *,
        secrets: Mapping[str, dagger.Secret],
        actions: tuple[str, ...],
        recorded: T,
        advice: str = "",
    ) -> T:
        """An API call the module makes itself, in a worker thread, with ``secrets`` read.

        ``request`` gets the plaintexts by argument name; they never leave this process.
        ``actions`` say what it does, for the plan.
        """
        step = Step(stage, None, "\n".join(actions), advice=advice, inputs=secrets)
        return await self.call(step, request, recorded)


class Engine(Executor):
    """The real executor: awaits the engine and reports its failures as stage errors."""

    async def perform(self, step: Step, query: Callable[[], Awaitable[T]], recorded: T) -> T:
        """Await ``query``; an engine error becomes this stage's own error."""
        try:
            return await query()
        except dagger.ExecError as error:
            output = "\n".join(part for part in (error.stdout, error.stderr) if part.strip())
            raise CommandFailed(
                step.stage,
                error.command,
                error.exit_code,
                output,
                meaning=step.failure,
                advice=step.advice,
            ) from None
        except dagger.QueryError as error:
            raise OperationFailed(step.stage, step.action, str(error), advice=step.advice) from None

    async def call(self, step: Step, api: Callable[[Mapping[str, str]], T], recorded: T) -> T:
        """Read the secrets, then run ``api`` in a worker thread; its error is the stage's."""
        plain: dict[str, str] = {}
        for name, secret in step.inputs.items():
            plain[name] = await self.perform(
                Step(step.stage, secret, f"read secret {name}", advice=step.advice),
                secret.plaintext,
                "",
            )
        try:
            return await anyio.to_thread.run_sync(lambda: api(plain))
        except StageFailed:
            raise
        except Exception as error:  # the API's own words are the message, never a traceback
            advice = step.advice or DEFAULT_ADVICE
            raise StageFailed(f"{step.stage}: {error}\n  what to do: {advice}") from error

    def run_id(self) -> str:
        """A fresh random value."""
        return uuid.uuid4().hex


ENGINE = Engine()
"""The executor every module object uses unless a plan swaps in a recorder."""
