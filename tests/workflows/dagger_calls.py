"""Check a `dagger call` command line against the module's real functions.

The module is introspected through the same registration the Dagger Python SDK uses to
publish it to the engine, so a renamed function or argument breaks this check exactly where
it would break `dagger call` on a runner.
"""

from __future__ import annotations

import shlex
import typing
from dataclasses import dataclass

import dagger
from kvstore_ci import KvstoreCi

# Functions of the engine's core types that a call chain may end with.
CORE_FUNCTIONS: dict[type, dict[str, set[str]]] = {
    dagger.File: {"export": {"path", "allow-parent-dir-rename"}, "contents": set(), "name": set()},
    dagger.Directory: {"export": {"path", "wipe"}, "entries": set()},
    dagger.Container: {"stdout": set(), "publish": {"address"}, "export": {"path"}},
}


@dataclass(frozen=True)
class CallProblem:
    """One thing wrong with a call, in words a workflow author understands."""

    call: str
    message: str

    def __str__(self) -> str:
        return f"`dagger call {self.call}`: {self.message}"


def _object_functions(cls: type) -> dict[str, typing.Any]:
    registered: dict[str, typing.Any] = cls.__dagger_object_type__.functions  # type: ignore[attr-defined]
    return {name.replace("_", "-"): fn for name, fn in registered.items() if name}


def _object_fields(cls: type) -> dict[str, typing.Any]:
    """Fields of an object type, by CLI name, with their types (they chain like functions)."""
    fields = cls.__dagger_object_type__.fields  # type: ignore[attr-defined]
    return {name.replace("_", "-"): field.return_type for name, field in fields.items()}


def _constructor_args() -> set[str]:
    hints = typing.get_type_hints(KvstoreCi)
    return {name.replace("_", "-") for name in hints}


def _split(tokens: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Split `fn --a=1 --b 2 next --c=3` into [(fn, {a, b}), (next, {c})]."""
    chain: list[tuple[str, dict[str, str]]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            name, eq, value = token[2:].partition("=")
            if not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                i += 1
                value = tokens[i]
            if not chain:
                chain.append(("", {}))
            chain[-1][1][name] = value
        else:
            chain.append((token, {}))
        i += 1
    return chain


def _check_arguments(
    call: str, name: str, fn: typing.Any, args: dict[str, str]
) -> list[CallProblem]:
    problems = []
    params = {p.name.replace("_", "-"): p for p in fn.parameters.values()}
    problems += [
        CallProblem(call, f"{name} has no argument --{a}") for a in args if a not in params
    ]
    for pname, param in params.items():
        if not param.is_optional and pname not in args:
            problems.append(CallProblem(call, f"{name} needs --{pname}"))
        given = args.get(pname)
        if (
            given is not None
            and param.resolved_type is dagger.Secret
            and not given.startswith(("env://", "file://", "cmd://"))
        ):
            problems.append(
                CallProblem(call, f"--{pname} is a Secret and must be given as env://...")
            )
    return problems


def _step(
    call: str, current: typing.Any, name: str, args: dict[str, str]
) -> tuple[typing.Any, list[CallProblem]]:
    """Resolve one link of a call chain: the type it returns and what is wrong with it.
    A returned type of None ends the chain."""
    if hasattr(current, "__dagger_object_type__"):
        fn = _object_functions(current).get(name)
        if fn is not None:
            return fn.return_type, _check_arguments(call, name, fn, args)
        field = _object_fields(current).get(name)
        if field is not None:
            extra = [CallProblem(call, f"field {name!r} takes no arguments")] if args else []
            return field, extra
        return None, [CallProblem(call, f"{current.__name__} has no function {name!r}")]
    if current in CORE_FUNCTIONS:
        allowed = CORE_FUNCTIONS[current].get(name)
        if allowed is None:
            return None, [CallProblem(call, f"{current.__name__} has no function {name!r}")]
        return None, [
            CallProblem(call, f"{name} has no argument --{a}") for a in set(args) - allowed
        ]
    return None, [CallProblem(call, f"cannot chain {name!r} after a {current!r}")]


def check_call(call: str) -> list[CallProblem]:
    """Every problem with ``call`` (the text after `dagger call`), or an empty list."""
    problems: list[CallProblem] = []
    chain = _split(shlex.split(call))
    if chain and chain[0][0] == "":
        unknown = set(chain[0][1]) - _constructor_args()
        problems += [
            CallProblem(call, f"module has no constructor argument --{u}") for u in unknown
        ]
        chain = chain[1:]
    if not chain:
        return [*problems, CallProblem(call, "names no function")]
    current: typing.Any = KvstoreCi
    for position, (name, args) in enumerate(chain):
        current, found = _step(call, current, name, args)
        problems += found
        if current is None and position < len(chain) - 1 and not found:
            problems.append(CallProblem(call, f"nothing can follow {name!r}"))
        if current is None:
            break
    return problems
