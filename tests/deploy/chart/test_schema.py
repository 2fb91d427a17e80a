"""values.schema.json turns bad values into helm errors that name the key and the rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.rendering import CHART, DIGEST, env_values, helm, template_args


def render_with(tmp_path: Path, overrides: dict[str, Any]) -> tuple[int, str]:
    """Render the staging values plus ``overrides``; return helm's exit code and stderr."""
    extra = tmp_path / "bad.yaml"
    extra.write_text(yaml.safe_dump(overrides))
    result = helm(template_args(CHART, [env_values("staging"), extra]))
    return result.returncode, result.stderr


BAD_VALUES = [
    pytest.param({"replicas": "three"}, ["/replicas", "string"], id="wrong-type"),
    pytest.param({"replicas": 4}, ["/replicas", "1, 3, 5, 7"], id="even-member-count"),
    pytest.param({"replica": 3}, ["additional properties", "replica"], id="unknown-top-level-key"),
    pytest.param({"image": {"tag": "latest"}}, ["/image", "tag"], id="image-tag-instead-of-digest"),
    pytest.param({"image": {"digest": ""}}, ["/image/digest", "sha256:"], id="missing-digest"),
    pytest.param({"image": {"digest": "sha256:abc"}}, ["/image/digest"], id="short-digest"),
    pytest.param(
        {"podDisruptionBudget": {"maxUnavailable": 2}},
        ["/podDisruptionBudget/maxUnavailable"],
        id="pdb-that-breaks-quorum",
    ),
    pytest.param({"securityContext": {"runAsUser": 0}}, ["/securityContext/runAsUser"], id="root"),
    pytest.param(
        {"tls": {"client": {"enabled": True, "secretName": ""}}},
        ["/tls/client/secretName"],
        id="tls-without-secret",
    ),
    pytest.param(
        {"persistence": {"retention": {"whenScaled": "Keep"}}},
        ["/persistence/retention/whenScaled"],
        id="bad-enum",
    ),
    pytest.param(
        {"scheduling": {"zoneSpread": {"maxskew": 1}}},
        ["/scheduling/zoneSpread", "maxskew"],
        id="nested-typo",
    ),
    pytest.param(
        {"resources": {"limits": {"cpu": "lots", "memory": "1Gi"}}},
        ["/resources/limits/cpu"],
        id="bad-quantity",
    ),
]


@pytest.mark.parametrize(("overrides", "fragments"), BAD_VALUES)
def test_bad_values_are_rejected_with_the_schema_message(
    tmp_path: Path, overrides: dict[str, Any], fragments: list[str]
) -> None:
    code, stderr = render_with(tmp_path, overrides)
    assert code != 0
    assert "values don't meet the specifications of the schema" in stderr
    for fragment in fragments:
        assert fragment in stderr


def test_the_chart_defaults_alone_are_rejected_for_lack_of_a_digest() -> None:
    """Nobody can install the chart without choosing an image by digest."""
    result = helm(template_args(CHART))
    assert result.returncode != 0
    assert "/image/digest" in result.stderr


def test_a_good_override_is_accepted(tmp_path: Path) -> None:
    code, stderr = render_with(tmp_path, {"image": {"digest": DIGEST}, "replicas": 5})
    assert code == 0, stderr


# Conditional subschemas constrain the object they sit in; they do not describe new objects.
CONDITIONALS = frozenset({"if", "then", "else"})


def objects_without_closed_properties(node: Any, path: str = "") -> list[str]:
    """Paths of schema objects with named properties that still allow unknown keys."""
    found: list[str] = []
    if isinstance(node, dict):
        if "properties" in node and node.get("additionalProperties") is not False:
            found.append(path or "/")
        for key, value in node.items():
            if key not in CONDITIONALS:
                found += objects_without_closed_properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += objects_without_closed_properties(value, f"{path}/{index}")
    return found


def test_every_schema_object_rejects_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    # The prometheusRule group items are Prometheus' own format, validated by promtool.
    open_objects = objects_without_closed_properties(schema)
    assert open_objects == ["/properties/prometheusRule/properties/groups/items"]


def test_every_value_has_a_schema_entry_and_a_description() -> None:
    """values.yaml and the schema describe the same keys, each with a description."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        assert "description" in node or "anyOf" in node, f"{path} has no description"
        if isinstance(value, dict) and "properties" in node:
            assert set(value) <= set(node["properties"]), f"{path}: keys missing from the schema"
            for key, child in value.items():
                walk(child, node["properties"][key], f"{path}/{key}")

    for key, value in values.items():
        walk(value, schema["properties"][key], f"/{key}")
