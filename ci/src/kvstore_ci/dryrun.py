"""``python -m kvstore_ci plan``: build a function's pipeline lazily and describe it.

Arguments are read the way ``dagger call`` reads them (kebab-case ``--name value``), and a
plan never fails for a missing argument: a Secret becomes a placeholder secret named after
the argument, a Directory with a default path is the current checkout, a Container comes
from the module's own ``build``, and any other required value is shown as ``<name>``.

The function itself runs, with a :class:`~kvstore_ci.recorder.Recorder` as the module
object's executor: every step it awaits becomes a :class:`Stage` of the plan, and a lazy
object it returns is shown last (``returned``). Optional arguments keep their defaults, so a
call that would fail (``deploy`` without the tokens its strategy needs) fails its plan too,
with the same error.

This module depends on the module object; nothing below it imports this module.
"""

from __future__ import annotations

import json
import os
import sys
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import dagger
from dagger import dag

from kvstore_ci.main import KvstoreCi
from kvstore_ci.plan import (
    ArgInfo,
    FunctionInfo,
    LazyObject,
    Stage,
    StagePlan,
    describe,
    functions_of,
    render,
    to_json,
)
from kvstore_ci.recorder import Recorder
from kvstore_ci.reports import StageFailed

__all__ = ["PlanError", "main", "parse_flags", "plan_function", "split_command"]

# Which of the module's functions provides an object argument that was not given.
PRODUCERS: Mapping[type, str] = {dagger.Container: "build"}


class PlanError(Exception):
    """The command line does not name a function or argument of the module."""


def parse_flags(words: Sequence[str]) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs; a flag with no value means ``true``."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            raise PlanError(f"expected --name value, got {word!r}")
        name, sep, value = word[2:].partition("=")
        if not sep:
            if i + 1 < len(words) and not words[i + 1].startswith("--"):
                value = words[i + 1]
                i += 1
            else:
                value = "true"
        flags[name] = value
        i += 1
    return flags


def context_root(start: Path) -> Path:
    """The directory holding dagger.json (the module's context), searching upwards."""
    for candidate in [start, *start.parents]:
        if (candidate / "dagger.json").is_file():
            return candidate
    return start


def _base_type(hint: Any) -> Any:  # noqa: ANN401 - typing objects
    """``X`` from ``X | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        return members[0] if len(members) == 1 else hint
    return hint


def _missing(arg: ArgInfo, module: KvstoreCi | None, functions: Mapping[str, FunctionInfo]) -> Any:  # noqa: ANN401
    kind = _base_type(arg.type)
    if arg.default_path is not None:
        root = context_root(Path.cwd())
        path = os.path.relpath(root / arg.default_path.lstrip("/"), Path.cwd())
        return dag.host().directory(path, exclude=list(arg.ignore))
    if not arg.required:
        return arg.default
    if kind is dagger.Secret:
        return dag.secret(f"<{arg.name}>")
    if kind in PRODUCERS and module is not None:
        producer = PRODUCERS[kind]
        stages = _stages(module, functions[producer], {}, functions)
        result = stages[-1].result
        if result is not None:
            return result
    if kind is dagger.Directory:
        return dag.directory()
    return f"<{arg.name}>"


def _given(arg: ArgInfo, value: str) -> Any:  # noqa: ANN401
    """A command-line value as ``dagger call`` reads it for the argument's type."""
    kind = _base_type(arg.type)
    readers: dict[Any, Callable[[str], Any]] = {
        dagger.Secret: dag.secret,  # a secret URI: env://NAME, file://PATH, ...
        dagger.Directory: lambda path: dag.host().directory(path, exclude=list(arg.ignore)),
        dagger.File: lambda path: dag.host().file(path),
        dagger.Container: lambda address: dag.container().from_(address),
        bool: lambda text: text.lower() in {"true", "1", "yes"},
        int: int,
    }
    return readers.get(kind, str)(value)


def _arguments(
    info: FunctionInfo,
    flags: Mapping[str, str],
    module: KvstoreCi | None,
    functions: Mapping[str, FunctionInfo],
) -> dict[str, Any]:
    known = {a.name for a in info.args}
    unknown = sorted(set(flags) - known)
    if unknown:
        where = f"function {info.name!r}" if info.name else "the module"
        raise PlanError(f"{where} has no argument {', '.join('--' + u for u in unknown)}")
    return {
        a.python_name: _given(a, flags[a.name])
        if a.name in flags
        else _missing(a, module, functions)
        for a in info.args
    }


def _stages(
    module: KvstoreCi,
    info: FunctionInfo,
    flags: Mapping[str, str],
    functions: Mapping[str, FunctionInfo],
    recorder: Recorder | None = None,
) -> list[Stage]:
    """Call the function with a recorder as the executor; its steps, then what it returned."""
    kwargs = _arguments(info, flags, module, functions)
    recorder = recorder or Recorder()
    function = getattr(module, info.python_name)

    async def call() -> object:
        result = function(**kwargs)
        return await result if isinstance(result, Awaitable) else result

    previous, module._executor = module._executor, recorder
    try:
        result = anyio.run(call)
    finally:
        module._executor = previous
    stages = recorder.stages
    if isinstance(result, LazyObject) and not any(s.result is result for s in stages):
        stages.append(Stage("returned", result))
    return stages


def plan_function(
    cls: type[KvstoreCi],
    name: str,
    flags: Mapping[str, str] | None = None,
    constructor_flags: Mapping[str, str] | None = None,
    recorder: Recorder | None = None,
) -> list[StagePlan]:
    """The stages of function ``name`` (kebab-case) of module object ``cls``.

    A function that fails before its steps are all recorded raises its own
    :class:`~kvstore_ci.reports.StageFailed`, exactly as the call would. ``recorder`` may
    be a :class:`~kvstore_ci.recorder.Recorder` that answers some steps differently.
    """
    functions = functions_of(cls)
    if not name or name not in functions:
        known = ", ".join(sorted(n for n in functions if n))
        raise PlanError(f"no function {name!r}; the module has: {known}")
    constructor = functions[""]
    module = cls(**_arguments(constructor, constructor_flags or {}, None, {}))
    stages = _stages(module, functions[name], flags or {}, functions, recorder)
    return [describe(s) for s in stages]


PLAN_USAGE = """\
usage: python -m kvstore_ci plan [--json] [--mirror M] FUNCTION [--arg value ...]

Print what FUNCTION would do (images, mounts, caches, secrets by name, commands, exports,
publishes) without a Dagger engine. Names are spelled as for `dagger call`.
"""


def split_command(words: Sequence[str]) -> tuple[dict[str, str], str, dict[str, str]]:
    """Module flags, function name and function flags of a ``dagger call``-style line."""
    i = 0
    while i < len(words) and words[i].startswith("--"):
        # "--flag value" takes the next word; "--flag=value" does not.
        i += 1 if "=" in words[i] else 2
    if i >= len(words):
        raise PlanError("no function named")
    return parse_flags(words[:i]), words[i], parse_flags(words[i + 1 :])


def main(argv: Sequence[str]) -> int:
    """The ``plan`` command: print one function's pipeline as text or JSON."""
    words = [w for w in argv if w != "--json"]
    if "-h" in words or "--help" in words:
        sys.stdout.write(PLAN_USAGE)
        return 0
    try:
        module_flags, name, flags = split_command(words)
        plans = plan_function(KvstoreCi, name, flags, module_flags)
    except PlanError as e:
        sys.stderr.write(f"plan: {e}\n{PLAN_USAGE}")
        return 2
    except StageFailed as e:
        sys.stderr.write(f"plan: {name} would fail:\n{e}\n")
        return 1
    if "--json" in argv:
        sys.stdout.write(json.dumps([to_json(p) for p in plans], indent=2) + "\n")
    else:
        sys.stdout.write(render(plans))
    return 0
