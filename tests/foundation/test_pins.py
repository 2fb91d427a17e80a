"""The pins that must agree across files do agree."""

from __future__ import annotations

import json
import re
import tomllib

from kvstore_ci import images, stages

from tests.tooling import ROOT, tool_pins


def test_dagger_engine_and_sdk_pins_agree() -> None:
    """The engine version is pinned once; the SDKs that run against it follow it.

    The module runtime vendors the engine's own SDK into ci/sdk, so the module's pyproject
    must not pin dagger-io to a registry version (uv would refuse the vendored copy, which
    calls itself 0.0.0). The developer venv and the stages take dagger-io from
    constraints.txt, at the engine's version.
    """
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]
    assert re.fullmatch(r"v0\.21\.\d+", engine), engine
    assert tool_pins()["DAGGER_VERSION"] == engine
    assert f"dagger-io=={engine.removeprefix('v')}\n" in (ROOT / "constraints.txt").read_text()
    ci = tomllib.loads((ROOT / "ci" / "pyproject.toml").read_text())
    assert "dagger-io" in ci["project"]["dependencies"]
    assert ci["tool"]["uv"]["sources"]["dagger-io"] == {"path": "sdk", "editable": True}


def test_the_module_lock_takes_the_vendored_sdk_and_the_tested_versions() -> None:
    """ci/uv.lock installs dagger-io from ./sdk and everything else at constraints' versions."""
    lock = tomllib.loads((ROOT / "ci" / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    assert packages["dagger-io"]["source"] == {"editable": "sdk"}
    assert packages["kvstore-ci"]["source"] == {"editable": "."}
    constrained = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if re.match(r"^[A-Za-z0-9_.-]+==", line)
    )
    constrained = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in constrained.items()}
    differ = {
        name: (p["version"], constrained[name])
        for name, p in packages.items()
        if name in constrained and name != "dagger-io" and p["version"] != constrained[name]
    }
    assert not differ, f"ci/uv.lock and constraints.txt disagree (run scripts/lock): {differ}"


def test_stage_tools_match_the_test_environment() -> None:
    """The test stage's tool box has what scripts/test-env installs, at the same versions."""
    pins = tool_pins()
    assert ",".join(stages.STAGE_PACKAGES) == pins["STAGE_DEBIAN_PACKAGES"]
    assert pins["UV_VERSION"] == stages.UV_VERSION
    assert pins["CHECKOV_VERSION"] == stages.CHECKOV_VERSION
    tags = {
        "HELM_VERSION": images.HELM,
        "ACTIONLINT_VERSION": images.ACTIONLINT,
    }
    for pin, reference in tags.items():
        tag = reference.split("@")[0].rsplit(":", 1)[1]
        assert pins[pin].removeprefix("v") == tag, f"{pin}={pins[pin]} but {reference}"
    terraform_tag = images.TERRAFORM.split("@")[0].rsplit(":", 1)[1]
    assert terraform_tag.startswith(pins["TERRAFORM_VERSION_PREFIX"]), images.TERRAFORM


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
