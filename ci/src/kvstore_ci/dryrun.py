"""``python -m kvstore_ci plan``: build a function's pipeline lazily and describe it.

Arguments are read the way ``dagger call`` reads them (kebab-case ``--name value``), and a
plan never fails for a missing argument: a Secret becomes a placeholder secret named after
the argument, a Directory with a default path is the current checkout, a Container comes
from the module's own ``build``, and any other required value is shown as ``<name>``.

A function whose work is awaited (``lint``, ``test``, ``publish``...) has a private
companion ``_plan_<name>`` on the module object that returns its :class:`Stage` list from
the same builders the function uses; a function that returns a lazy object is simply
called.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagger
from dagger import dag

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


def _missing(arg: ArgInfo, module: object, functions: Mapping[str, FunctionInfo]) -> Any:  # noqa: ANN401
    kind = _base_type(arg.type)
    if arg.default_path is not None:
        root = context_root(Path.cwd())
        path = os.path.relpath(root / arg.default_path.lstrip("/"), Path.cwd())
        return dag.host().directory(path, exclude=list(arg.ignore))
    if not arg.required:
        return arg.default
    if kind is dagger.Secret:
        return dag.secret(f"<{arg.name}>")
    if kind in PRODUCERS:
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
    module: object,
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
    module: object,
    info: FunctionInfo,
    flags: Mapping[str, str],
    functions: Mapping[str, FunctionInfo],
) -> list[Stage]:
    kwargs = _arguments(info, flags, module, functions)
    planner = getattr(module, f"_plan_{info.python_name}", None)
    if planner is not None:
        stages: list[Stage] = planner(**kwargs)
        return stages
    function = getattr(module, info.python_name)
    if inspect.iscoroutinefunction(function):
        raise PlanError(f"function {info.name!r} has no plan (it runs when called)")
    result = function(**kwargs)
    if not isinstance(result, LazyObject):
        raise PlanError(f"function {info.name!r} returns {type(result).__name__}, not a pipeline")
    return [Stage(info.name, result)]


def plan_function(
    cls: type,
    name: str,
    flags: Mapping[str, str] | None = None,
    constructor_flags: Mapping[str, str] | None = None,
) -> list[StagePlan]:
    """The stages of function ``name`` (kebab-case) of module object ``cls``."""
    functions = functions_of(cls)
    if not name or name not in functions:
        known = ", ".join(sorted(n for n in functions if n))
        raise PlanError(f"no function {name!r}; the module has: {known}")
    constructor = functions[""]
    module = cls(**_arguments(constructor, constructor_flags or {}, None, {}))
    return [describe(s) for s in _stages(module, functions[name], flags or {}, functions)]


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
    from kvstore_ci.main import KvstoreCi  # noqa: PLC0415 - main imports this module's peers

    try:
        module_flags, name, flags = split_command(words)
        plans = plan_function(KvstoreCi, name, flags, module_flags)
    except PlanError as e:
        sys.stderr.write(f"plan: {e}\n{PLAN_USAGE}")
        return 2
    if "--json" in argv:
        sys.stdout.write(json.dumps([to_json(p) for p in plans], indent=2) + "\n")
    else:
        sys.stdout.write(render(plans))
    return 0
