"""The store's alert rules and dashboard as data, for the monitoring tests.

The PrometheusRule in deploy/kubernetes/monitoring/manifests is the source; promtool needs
its groups as a plain rule file, which :func:`write_rule_file` produces. Metric names are
pulled out of PromQL by a small lexer that knows the words PromQL reserves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.rendering import MONITORING

ALERTS_MANIFEST = MONITORING / "manifests" / "kvstore-alerts.yaml"
DASHBOARD_MANIFEST = MONITORING / "manifests" / "kvstore-dashboard.yaml"
RULE_FILE_NAME = "kvstore-alerts.rules.yaml"
UNIT_TESTS = Path(__file__).parent / "kvstore_alerts_test.yaml"

# Words that look like identifiers in PromQL but are not metric names.
PROMQL_WORDS = frozenset(
    {
        "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
        "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
        "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
        "histogram_quantile", "abs", "ceil", "floor", "round", "clamp_max", "clamp_min", "vector",
        "scalar", "time", "label_replace", "label_join", "absent", "changes", "resets",
        "deriv", "predict_linear", "sum_over_time", "avg_over_time", "max_over_time",
        "min_over_time", "le", "inf", "nan",
    }
)  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def alert_groups() -> list[dict[str, Any]]:
    """The rule groups of the store's PrometheusRule."""
    groups: list[dict[str, Any]] = yaml.safe_load(ALERTS_MANIFEST.read_text())["spec"]["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule, across groups."""
    return [rule for group in alert_groups() for rule in group["rules"] if "alert" in rule]


def write_rule_file(directory: Path) -> Path:
    """The groups as a promtool rule file in ``directory``."""
    path = directory / RULE_FILE_NAME
    path.write_text(yaml.safe_dump({"groups": alert_groups()}, sort_keys=False))
    return path


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard JSON held by the ConfigMap."""
    data = yaml.safe_load(DASHBOARD_MANIFEST.read_text())["data"]
    (body,) = data.values()
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def dashboard_queries() -> list[str]:
    """Every panel query of the dashboard."""
    return [t["expr"] for panel in dashboard()["panels"] for t in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (histogram suffixes kept, as exported)."""
    text = _STRINGS.sub("", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if word.lower() in PROMQL_WORDS or following.startswith("("):
            continue
        if re.fullmatch(r"[0-9.e]+", word):
            continue
        names.add(word)
    return names


def base_name(metric: str) -> str:
    """The family a series belongs to: a histogram's _bucket/_sum/_count map to its name."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def grafana_to_promql(expr: str, namespace: str = ".*", rate_interval: str = "1m") -> str:
    """A dashboard query with Grafana's variables replaced, runnable against Prometheus."""
    return expr.replace("$__rate_interval", rate_interval).replace("$namespace", namespace)
