"""What the module registers with the engine, built by the SDK's own registration code.

``kvstore_ci.plan.registration`` runs the SDK's type-definition pass (what a Dagger engine
asks for when it loads the module) up to the final query; an unsupported annotation or an
invalid default fails here instead of on the first `dagger call`.
"""

from __future__ import annotations

import anyio
import dagger
import pytest
from dagger.mod import default_module
from dagger.mod._module import Module
from kvstore_ci import KvstoreCi
from kvstore_ci.plan import Node, Op, functions_of, node_of, registration
from kvstore_ci.recorder import Recorder

MODULE = registration(KvstoreCi)
MINE = ("python-base", "lint", "test", "build", "publish", "publish-to", "ci")


def main_object() -> Node:
    for op in MODULE.find("withObject"):
        node = op.args["object"]
        assert isinstance(node, Node)
        if node.ops[1].args["name"] == "KvstoreCi":
            return node
    raise AssertionError("KvstoreCi is not registered")


def registered_functions() -> dict[str, list[Op]]:
    found: dict[str, list[Op]] = {}
    for op in main_object().find("withFunction"):
        function = op.args["function"]
        assert isinstance(function, Node)
        found[str(function.ops[0].args["name"])] = list(function.ops)
    return found


FUNCTIONS = registered_functions()


def args_of(name: str) -> dict[str, dict[str, object]]:
    return {str(op.args["name"]): dict(op.args) for op in FUNCTIONS[name] if op.name == "withArg"}


def test_every_function_is_registered() -> None:
    assert sorted(FUNCTIONS) == sorted(n.replace("-", "_") for n in functions_of(KvstoreCi) if n)


@pytest.mark.parametrize("name", ["publish", "publish_to"])
def test_pushing_functions_are_registered_never_cached(name: str) -> None:
    policies = [op.args for op in FUNCTIONS[name] if op.name == "withCachePolicy"]
    assert policies == [{"policy": "Never"}]


@pytest.mark.parametrize("name", ["python_base", "lint", "test", "build", "ci"])
def test_build_type_functions_keep_the_default_cache(name: str) -> None:
    assert not [op for op in FUNCTIONS[name] if op.name == "withCachePolicy"]


@pytest.mark.parametrize("name", [n.replace("-", "_") for n in MINE])
def test_every_argument_is_documented(name: str) -> None:
    for arg, spec in args_of(name).items():
        assert spec.get("description"), f"{name}: --{arg} has no Doc"


@pytest.mark.parametrize("name", ["lint", "test", "build", "ci"])
def test_source_defaults_to_the_repository_without_clutter(name: str) -> None:
    source = args_of(name)["source"]
    assert source["defaultPath"] == "/"
    ignore = source["ignore"]
    assert isinstance(ignore, list)
    assert {".git", ".venv", ".tools", "**/__pycache__"} <= set(ignore)


def test_defaults_reach_the_engine_as_json() -> None:
    publish = args_of("publish")
    assert publish["region"]["defaultValue"] == '"us-east-1"'
    assert publish["tag"]["defaultValue"] == '""'
    assert "defaultValue" not in publish["repository"]
    token = publish["aws_session_token"]["typeDef"]
    assert isinstance(token, Node)
    assert {"optional": True} in [op.args for op in token.ops]


def test_lint_test_and_build_are_the_checks_and_need_no_argument() -> None:
    """`dagger check` runs every function registered as a check, with no arguments."""
    checks = sorted(n for n, ops in FUNCTIONS.items() if any(op.name == "withCheck" for op in ops))
    assert checks == ["build", "lint", "test"]
    for name in checks:
        for arg, spec in args_of(name).items():
            assert "defaultValue" in spec or "defaultPath" in spec, f"{name} --{arg} is required"
    assert "ci" not in checks, "ci aggregates the checks; as a check it would run them twice"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_summary_is_one_complete_sentence(name: str) -> None:
    """`dagger functions` shows a function's first line: it must stand alone."""
    (description,) = [
        str(op.args["description"]) for op in FUNCTIONS[name] if op.name == "withDescription"
    ]
    first = description.splitlines()[0]
    assert first == first.strip() and first[:1].isupper(), first
    assert first.endswith("."), f"{name}: the summary is cut mid-sentence: {first!r}"
    assert first.count(". ") == 0, f"{name}: the summary holds more than one sentence"
    assert len(first) <= 100, f"{name}: the summary is too long for one line: {first!r}"


def test_the_runtime_invokes_a_function_on_a_module_object_made_from_its_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the engine calls a function: the object from its JSON state, then the method."""
    recorder = Recorder()
    monkeypatch.setattr(KvstoreCi, "_executor", recorder)
    builder = Module(KvstoreCi.__name__)
    registered = default_module()
    builder._objects = dict(registered._objects)
    builder._main = builder._objects[KvstoreCi.__name__]

    async def call() -> object:
        result, _fn = await builder.get_structured_result(
            KvstoreCi.__name__, {"mirror": "mirror.internal:5000/hub"}, "python_base", {}
        )
        return result

    base = anyio.run(call)
    assert isinstance(base, dagger.Container)
    assert str(node_of(base).find("from")[0].args["address"]).startswith(
        "mirror.internal:5000/hub/library/python:"
    )
    assert [(s.name, s.actions) for s in recorder.stages] == [("python-base", ("sync",))]
