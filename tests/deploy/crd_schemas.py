"""Validating custom resources against the schemas in tests/deploy/schemas/.

The schemas are written from the public CRDs and list only the fields the project uses, so a
misspelt field fails here instead of being silently dropped by the API server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).parent / "schemas"
BY_KIND = {
    ("argoproj.io/v1alpha1", "Application"): "argocd-application.json",
    ("argoproj.io/v1alpha1", "AppProject"): "argocd-appproject.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
}


def schema_for(manifest: dict[str, Any]) -> dict[str, Any]:
    """The schema for ``manifest``'s apiVersion and kind; KeyError when there is none."""
    name = BY_KIND[(manifest["apiVersion"], manifest["kind"])]
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


def errors(manifest: dict[str, Any]) -> list[str]:
    """Every schema violation of ``manifest``, as "path: message"."""
    validator = jsonschema.Draft202012Validator(schema_for(manifest))
    return [
        f"/{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]
