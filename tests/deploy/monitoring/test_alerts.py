"""The store's alerts: valid for promtool, unit-tested, each with a runbook section."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.crd_schemas import errors
from tests.deploy.monitoring.rules import (
    ALERTS_MANIFEST,
    UNIT_TESTS,
    alert_groups,
    alert_rules,
    metric_names,
    write_rule_file,
)
from tests.deploy.rendering import ARGOCD_CHART
from tests.tooling import ROOT, require_tool

RUNBOOKS = ROOT / "docs" / "runbooks.md"
# The alerts the store must have (issue: no leader, frequent leader changes, slow fsync, failed
# proposals, quota nearly full, member down, insufficient members, error rate, latency), and
# watchers that fall behind, and linearizable reads stuck behind ReadIndex.
EXPECTED_ALERTS = {
    "KvstoreNoLeader",
    "KvstoreFrequentLeaderChanges",
    "KvstoreSlowFsync",
    "KvstoreProposalsFailing",
    "KvstoreQuotaNearlyFull",
    "KvstoreMemberDown",
    "KvstoreInsufficientMembers",
    "KvstoreHighErrorRate",
    "KvstoreLatencyObjective",
    "KvstoreSlowWatchers",
    "KvstoreReadIndexStuck",
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False, timeout=120, cwd=cwd
    )


def unit_test(directory: Path) -> subprocess.CompletedProcess[str]:
    """Run the unit tests against the rule file in ``directory``."""
    shutil.copy(UNIT_TESTS, directory / UNIT_TESTS.name)
    return promtool("test", "rules", UNIT_TESTS.name, cwd=directory)


def test_the_alert_set_is_complete() -> None:
    assert {rule["alert"] for rule in alert_rules()} == EXPECTED_ALERTS


def test_the_prometheus_rule_matches_its_crd_schema() -> None:
    assert errors(yaml.safe_load(ALERTS_MANIFEST.read_text())) == []


def test_promtool_check_rules(tmp_path: Path) -> None:
    result = promtool("check", "rules", str(write_rule_file(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass(tmp_path: Path) -> None:
    write_rule_file(tmp_path)
    result = unit_test(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
            # A firing check must also show that some input series did not fire.
            if check["exp_alerts"]:
                inputs = {s["series"] for s in case["input_series"]}
                assert len(inputs) > len(check["exp_alerts"]), f"{check['alertname']}: no near miss"
    assert firing == EXPECTED_ALERTS
    assert silent == EXPECTED_ALERTS


def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """Loosen one threshold and the suite must fail: the tests are not vacuous."""
    groups = alert_groups()
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == "KvstoreQuotaNearlyFull":
                rule["expr"] = rule["expr"].replace("> 0.8", "> 0.4")
    (tmp_path / "kvstore-alerts.rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    result = unit_test(tmp_path)
    assert result.returncode != 0
    assert "KvstoreQuotaNearlyFull" in result.stdout + result.stderr


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


def test_every_alert_links_to_its_runbook_section() -> None:
    repo_url = yaml.safe_load((ARGOCD_CHART / "values.yaml").read_text())["repoURL"]
    sections = anchors(RUNBOOKS.read_text())
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == f"{repo_url}/blob/main/docs/runbooks.md", url
        assert anchor == rule["alert"].lower()
        assert anchor in sections, f"docs/runbooks.md has no section for {rule['alert']}"


def test_every_alert_is_labelled_and_described() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        assert rule.get("for"), f"{rule['alert']} fires on a single evaluation"
        assert 'job="kvstore"' in rule["expr"]


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (namespace, le) ("
        "rate(etcd_disk_wal_fsync_duration_seconds_bucket"
        '{job="kvstore", grpc_code=~"Unknown|Internal"}[5m]))) > 0.5 and on (job) up == bool 1'
    )
    assert metric_names(expr) == {"etcd_disk_wal_fsync_duration_seconds_bucket", "up"}
