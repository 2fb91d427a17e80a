"""The module's functions, arguments and defaults match what README.md and docs/pipeline.md say.

The documentation is read, not trusted: every function the module registers must have a
section in docs/pipeline.md whose argument table lists exactly its arguments, types and
defaults, and every ``dagger call`` command shown in the README or docs must name a real
function with real arguments.
"""

from __future__ import annotations

import json
import re
import shlex
import types
import typing
from typing import Any

import dagger
import pytest
from kvstore_ci import KvstoreCi
from kvstore_ci.plan import ArgInfo, FunctionInfo, functions_of

from tests.tooling import ROOT

PIPELINE_DOC = ROOT / "docs" / "pipeline.md"
FUNCTIONS = functions_of(KvstoreCi)
MODULE_SECTION = "module arguments"

Row = tuple[str, str, str]  # argument, type, default


def sections(markdown: str) -> dict[str, str]:
    """``### `name` `` (or ``### module arguments``) headings and their text."""
    found: dict[str, str] = {}
    # A section runs to the next heading of level 2 or 3; prose chapters are not sections.
    parts = re.split(r"^(#{2,3} .+)$", markdown, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        name = re.fullmatch(r"### `([a-z0-9-]+)`", heading.strip())
        if name:
            found[name.group(1)] = body
        elif heading.strip() == f"### {MODULE_SECTION}":
            found[MODULE_SECTION] = body
    return found


def argument_rows(body: str) -> list[Row]:
    """The rows of the section's ``| argument | type | default | meaning |`` table."""
    lines = body.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith("| argument | type | default |")),
        None,
    )
    assert start is not None, "no argument table"
    rows: list[Row] = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1], cells[2].strip("`")))
    return rows


def type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return type_name(inner)
    names = {str: "String", int: "Integer", bool: "Boolean", float: "Float"}
    if hint in names:
        return names[hint]
    if isinstance(hint, type) and issubclass(hint, dagger.client.base.Type):
        return hint.__name__
    if isinstance(hint, type) and hasattr(hint, "__dagger_object_type__"):
        return hint.__name__  # an object type of the module, e.g. TerraformPlan
    return str(hint)


def shown_default(arg: ArgInfo) -> str:
    if arg.default_path is not None:
        return "checkout"
    if arg.required:
        return "required"
    if arg.default is None:
        return "none"
    return json.dumps(arg.default)


def expected_rows(info: FunctionInfo) -> list[Row]:
    return [(f"--{a.name}", type_name(a.type), shown_default(a)) for a in info.args]


DOCUMENTED = sections(PIPELINE_DOC.read_text())


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_is_documented_with_its_exact_arguments(name: str) -> None:
    info = FUNCTIONS[name]
    heading = name or MODULE_SECTION
    assert heading in DOCUMENTED, f"docs/pipeline.md has no section '### `{heading}`'"
    body = DOCUMENTED[heading]
    assert argument_rows(body) == expected_rows(info)
    if name:
        returns = re.search(r"^Returns: (\w+)", body, flags=re.MULTILINE)
        assert returns, f"the section of {name} does not say what it returns"
        assert returns.group(1) == type_name(info.returns)
        cached = "Never cached." in body
        assert cached == (info.cache == "never"), "the docs and the cache policy disagree"


def test_no_documented_function_is_missing_from_the_module() -> None:
    documented = set(DOCUMENTED) - {MODULE_SECTION}
    assert documented <= set(FUNCTIONS), documented - set(FUNCTIONS)


def dagger_calls(text: str) -> list[list[str]]:
    """The words after ``dagger call`` in every command line of ``text``."""
    calls: list[list[str]] = []
    for line in text.splitlines():
        if "dagger call" not in line or line.lstrip().startswith("|"):
            continue
        command = line.split("dagger call", 1)[1].split("#", 1)[0].rstrip("`").strip()
        command = command.split("`", 1)[0]  # inline code ends at the backtick
        words = [w for w in shlex.split(command.replace("$(", "(")) if w != "\\"]
        calls.append(words)
    return calls


def check_call(words: list[str]) -> None:
    i = 0
    module = FUNCTIONS[""]
    while i < len(words) and words[i].startswith("--"):
        flag = words[i][2:].split("=", 1)[0]
        assert flag in {a.name for a in module.args}, f"module flag --{flag}"
        i += 1
    if i == len(words) or words[i].startswith("<"):
        return  # `dagger call --help` lines, or a placeholder such as `dagger call <stage>`
    name = words[i]
    assert name in FUNCTIONS, f"no function {name!r}"
    known = {a.name: a for a in FUNCTIONS[name].args}
    i += 1
    while i < len(words) and words[i].startswith("--"):
        flag, has_value, _ = words[i][2:].partition("=")
        assert flag in known, f"{name} has no argument --{flag}"
        i += 1 if has_value or known[flag].type is bool else 2


@pytest.mark.parametrize("document", ["README.md", "docs/pipeline.md"])
def test_dagger_call_examples_name_real_functions_and_arguments(document: str) -> None:
    calls = dagger_calls((ROOT / document).read_text())
    assert calls, f"{document} shows no dagger call"
    for words in calls:
        check_call(words)


def test_readme_quick_start_runs_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert ["ci"] in dagger_calls(quick_start)
    assert "install.sh" in quick_start  # how to get the Dagger CLI


@pytest.mark.parametrize("document", ["README.md", "docs/pipeline.md"])
def test_documented_cli_version_is_the_pinned_engine(document: str) -> None:
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"].lstrip("v")
    versions = re.findall(r"DAGGER_VERSION=(\S+)", (ROOT / document).read_text())
    assert versions, f"{document} does not say which Dagger CLI to install"
    assert set(versions) == {engine}


def test_the_checker_catches_a_wrong_call() -> None:
    """The example checker is itself checked, so a broken one cannot pass everything."""
    with pytest.raises(AssertionError, match="no function 'deploy-all'"):
        check_call(["deploy-all"])
    with pytest.raises(AssertionError, match="build has no argument --colour"):
        check_call(["build", "--colour=red"])
    check_call(["--mirror=m:5000/hub", "build", "--revision", "abc", "--version=1"])
