"""The pins that must agree across files do agree."""

from __future__ import annotations

import json
import re
import tomllib

from tests.tooling import ROOT, tool_pins


def test_dagger_engine_sdk_and_cli_pins_agree() -> None:
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]
    assert re.fullmatch(r"v0\.21\.\d+", engine), engine
    assert tool_pins()["DAGGER_VERSION"] == engine
    ci_deps = tomllib.loads((ROOT / "ci" / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"dagger-io=={engine.removeprefix('v')}" in ci_deps
    assert f"dagger-io=={engine.removeprefix('v')}\n" in (ROOT / "constraints.txt").read_text()


def test_dagger_json_points_at_the_ci_module() -> None:
    config = json.loads((ROOT / "dagger.json").read_text())
    assert config["name"] == "kvstore-ci"
    assert config["source"] == "ci"
    assert config["sdk"]["source"] == "python"
    assert (ROOT / "ci" / "src" / "kvstore_ci" / "__init__.py").is_file()


def test_every_direct_dependency_is_locked() -> None:
    locked = {
        line.split("==")[0].lower().replace("_", "-").replace(".", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for pyproject in (ROOT / "pyproject.toml", ROOT / "ci" / "pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        deps = list(project["dependencies"])
        for extra in project.get("optional-dependencies", {}).values():
            deps.extend(extra)
        for dep in deps:
            name = (
                re.split(r"[<>=\[ ;!~]", dep, maxsplit=1)[0]
                .lower()
                .replace("_", "-")
                .replace(".", "-")
            )
            assert name in locked, f"{dep} in {pyproject.name} is not in constraints.txt"


def test_tool_pins_are_exact_versions() -> None:
    pins = tool_pins()
    for name, value in pins.items():
        if name.endswith("_VERSION"):
            assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), f"{name}={value} is not exact"
