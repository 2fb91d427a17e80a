"""Read the Dagger SDK's lazy objects and registered functions without an engine.

The Python SDK builds a pipeline as a chain of GraphQL selections kept in each object's
private context and only sends it when something is awaited. This module is the one place
that reads those private fields (and the registry behind ``@object_type``), so a change of
SDK release touches one file; ``dagger-io`` is pinned exactly for the same reason.

Three things come out of it, all plain data:

- :class:`Node` / :class:`Op`: the operations of one lazy object (a Container, Directory,
  File, Secret...), with every nested object expanded and secret values never included;
- :class:`StagePlan`: one stage of a function (a lazy object plus the steps the function
  awaited on it, such as ``publish <address>``);
- :class:`FunctionInfo` / :class:`ArgInfo`: a function's name, arguments, defaults and cache
  policy as ``dagger call`` shows them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from unittest import mock

import anyio
import dagger
from dagger.client.base import Type as LazyObject
from dagger.mod import default_module
from dagger.mod._module import Module

__all__ = [
    "ArgInfo",
    "FunctionInfo",
    "LazyObject",
    "Node",
    "Op",
    "Stage",
    "StagePlan",
    "describe",
    "functions_of",
    "kebab",
    "node_of",
    "registration",
    "render",
    "to_json",
]

# Arguments of these fields carry secret values; they are never copied into a plan.
_SECRET_VALUE_ARGS: Mapping[tuple[str, str], frozenset[str]] = {
    ("Query", "setSecret"): frozenset({"plaintext"}),
}

# A plan value: JSON-like data, or a nested lazy object read into a Node.
Value: TypeAlias = "str | int | float | bool | list[Value] | dict[str, Value] | Node | None"


@dataclass(frozen=True)
class Op:
    """One operation of a lazy object: a GraphQL field selected on ``on``."""

    on: str
    name: str
    args: Mapping[str, Value]


@dataclass(frozen=True)
class Node:
    """A lazy object: the chain of operations that produces it, root first."""

    type: str
    ops: tuple[Op, ...]

    def find(self, name: str) -> list[Op]:
        """The operations called ``name`` (GraphQL spelling, e.g. ``withExec``)."""
        return [op for op in self.ops if op.name == name]

    def walk(self) -> list[Op]:
        """Every operation of this object and of every object nested in its arguments."""
        found: list[Op] = []
        for op in self.ops:
            found.append(op)
            for value in op.args.values():
                found.extend(_walk_value(value))
        return found


def _walk_value(value: Value) -> list[Op]:
    if isinstance(value, Node):
        return value.walk()
    if isinstance(value, list):
        return [op for item in value for op in _walk_value(item)]
    if isinstance(value, dict):
        return [op for item in value.values() for op in _walk_value(item)]
    return []


@dataclass(frozen=True)
class Stage:
    """One stage of a plan: a lazy object and what the function asked of it.

    The recorder (:mod:`kvstore_ci.recorder`) makes one per stage name and object from the
    steps a function awaits. ``actions`` are those steps (``exit-code``, ``stdout``,
    ``publish <address>``...), which never appear in the lazy graph. ``result`` is
    ``None`` for an API call the module makes itself, whose secrets are ``inputs``.
    """

    name: str
    result: LazyObject | None
    actions: tuple[str, ...] = ()
    inputs: Mapping[str, LazyObject] = field(default_factory=dict)


@dataclass(frozen=True)
class StagePlan:
    """A :class:`Stage` with its lazy objects read into :class:`Node` values."""

    name: str
    result: Node | None
    actions: tuple[str, ...]
    inputs: Mapping[str, Node] = field(default_factory=dict)


def node_of(obj: LazyObject) -> Node:
    """Read the chain of operations of a lazy SDK object."""
    selections = obj._ctx.selections  # the one reader of SDK internals
    ops = tuple(
        Op(
            on=sel.type_name,
            name=sel.name,
            args={
                key: _value(value)
                for key, value in sel.args.items()
                if key not in _SECRET_VALUE_ARGS.get((sel.type_name, sel.name), frozenset())
            },
        )
        for sel in selections
    )
    return Node(type=obj._graphql_name(), ops=ops)


def _value(value: Any) -> Value:  # noqa: ANN401 - SDK arguments are untyped JSON or objects
    if isinstance(value, LazyObject):
        return node_of(value)
    if isinstance(value, Mapping):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def describe(stage: Stage) -> StagePlan:
    """Read a stage's lazy object."""
    result = None if stage.result is None else node_of(stage.result)
    inputs = {name: node_of(obj) for name, obj in stage.inputs.items()}
    return StagePlan(name=stage.name, result=result, actions=stage.actions, inputs=inputs)


# --- rendering -------------------------------------------------------------------------


def _short(node: Node) -> str:
    """A one-line form of a nested object, e.g. ``host.directory(.)`` or ``secret(env://X)``."""
    parts: list[str] = []
    for op in node.ops:
        if op.on == "Query" and op.name == "container":
            continue
        args = ", ".join(_inline(v) for v in op.args.values())
        parts.append(f"{op.name}({args})" if args else op.name)
    return ".".join(parts) or node.type


def _inline(value: Value) -> str:
    if isinstance(value, Node):
        return _short(value)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_inline(v)}" for k, v in value.items()) + "}"
    return str(value)


def _line(op: Op) -> str:
    args = dict(op.args)
    if op.name == "withExec":
        command = " ".join(_quote(a) for a in typing.cast(list[str], args.pop("args", [])))
        rest = " ".join(f"{k}={_inline(v)}" for k, v in args.items())
        return f"exec {command}" + (f"  ({rest})" if rest else "")
    if op.name == "from":
        return f"from {args.get('address')}"
    rest = " ".join(f"{k}={_inline(v)}" for k, v in args.items())
    return f"{op.name} {rest}".rstrip()


def _quote(word: str) -> str:
    return repr(word) if not word or any(c.isspace() or c in "'\"$" for c in word) else word


def _lines(node: Node) -> list[str]:
    """One line per operation; the root calls that yield the first object (a host
    directory the build starts from, say) are shown as one ``start`` line."""
    ops = [op for op in node.ops if not (op.on == "Query" and op.name == "container")]
    lead = 0
    while lead < len(ops) and ops[lead].on in {"Query", "Host"}:
        lead += 1
    head = [f"start {_short(Node(node.type, tuple(ops[:lead])))}"] if lead else []
    return head + [_line(op) for op in ops[lead:]]


def render(plans: Sequence[StagePlan]) -> str:
    """The plan as indented text, one operation a line."""
    lines: list[str] = []
    for plan in plans:
        lines.append(f"{plan.name}:")
        lines.extend(f"  input {name}: {_short(node)}" for name, node in plan.inputs.items())
        if plan.result is not None:
            lines.extend(f"  {line}" for line in _lines(plan.result))
        lines.extend(f"  => {action}" for action in plan.actions)
    return "\n".join(lines) + "\n"


# --- the registered functions ------------------------------------------------------------


def kebab(name: str) -> str:
    """A Python or API name as ``dagger call`` spells it."""
    return name.replace("_", "-")


@dataclass(frozen=True)
class ArgInfo:
    """One argument of a module function."""

    name: str  # kebab-case, as on the command line
    python_name: str
    type: Any
    required: bool
    default: Any
    default_path: str | None
    ignore: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class FunctionInfo:
    """One function of the module object (the constructor has ``name == ""``)."""

    name: str  # kebab-case
    python_name: str
    args: tuple[ArgInfo, ...]
    cache: str | None
    returns: Any
    doc: str = field(default="")

    def arg(self, name: str) -> ArgInfo:
        """The argument called ``name`` (kebab-case)."""
        for arg in self.args:
            if arg.name == name:
                return arg
        raise KeyError(name)


def _arg_info(param: Any) -> ArgInfo:  # noqa: ANN401 - dagger.mod's private Parameter
    has_default = param.has_default
    return ArgInfo(
        name=kebab(param.name),
        python_name=param.signature.name,
        type=param.resolved_type,
        required=not param.is_optional,
        default=param.signature.default if has_default else None,
        default_path=param.default_path,
        ignore=tuple(param.ignore or ()),
        doc=param.doc or "",
    )


def functions_of(cls: type) -> dict[str, FunctionInfo]:
    """The functions ``@object_type`` registered on ``cls``, by kebab-case name.

    The constructor is included under the name ``""``.
    """
    registry = cls.__dagger_object_type__  # type: ignore[attr-defined]
    registry.get_constructor()
    found: dict[str, FunctionInfo] = {}
    for api_name, fn in registry.functions.items():
        python_name = fn.original_name if api_name else ""
        found[kebab(api_name)] = FunctionInfo(
            name=kebab(api_name),
            python_name=python_name,
            args=tuple(_arg_info(p) for p in fn.parameters.values()),
            cache=fn.cache_policy,
            returns=fn.return_type,
            doc=inspect.cleandoc(fn.doc or ""),
        )
    return found


def _json_value(value: Value) -> object:
    if isinstance(value, Node):
        return {"type": value.type, "ops": [_json_op(op) for op in value.ops]}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _json_op(op: Op) -> dict[str, object]:
    return {"on": op.on, "op": op.name, "args": {k: _json_value(v) for k, v in op.args.items()}}


def to_json(plan: StagePlan) -> dict[str, object]:
    """A stage plan as JSON-ready data."""
    return {
        "stage": plan.name,
        "result": None if plan.result is None else _json_value(plan.result),
        "actions": list(plan.actions),
        "inputs": {name: _json_value(node) for name, node in plan.inputs.items()},
    }


def registration(cls: type) -> Node:
    """The module definition the SDK sends the engine when it loads the module.

    Runs the SDK's own registration (the type definitions behind ``dagger functions``)
    for ``cls`` as the main object, stopping before the final query, and reads the lazy
    ``Module`` it built: every function, argument, default, ignore pattern and cache policy
    exactly as the engine would receive them.
    """
    builder = Module(cls.__name__)
    registered = default_module()
    builder._objects = dict(registered._objects)
    builder._enums = dict(registered._enums)
    builder._main = builder._objects[cls.__name__]
    built: list[dagger.Module] = []

    async def capture(module: dagger.Module) -> str:
        built.append(module)
        return ""

    with mock.patch.object(dagger.Module, "id", capture):
        anyio.run(builder._typedefs)
    return node_of(built[0])
