"""Every metric the dashboard and the alerts name exists in what a real cluster exports, and
every query runs, against a real Prometheus (the Debian package) scraping a real local
3-member cluster started with ``kvstore serve``. Nothing here is simulated: if the server
stops exporting a metric or renames a label, these tests fail.

The tests share one cluster and one Prometheus (module scope); the last test kills a member.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.deploy.monitoring.live import (
    Member,
    Prometheus,
    cli,
    start_cluster,
    start_prometheus,
    stop,
    stop_all,
    wait_until,
)
from tests.deploy.monitoring.rules import (
    alert_rules,
    dashboard_queries,
    grafana_to_promql,
    metric_names,
    write_rule_file,
)
from tests.tooling import require_tool

pytestmark = pytest.mark.slow

# A panel whose query may legitimately be empty on a healthy cluster: it shows only errors.
MAY_BE_EMPTY = ('grpc_code!="OK"',)


@pytest.fixture(scope="module")
def ports() -> Callable[[], int]:
    def pick() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port

    return pick


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, ports: Callable[[], int]
) -> Iterator[list[Member]]:
    members = start_cluster(tmp_path_factory.mktemp("cluster"), ports)
    try:
        # Traffic through every member, so that each one's request metrics have series with
        # their method and code labels (a member creates them on its first request).
        for member in members:
            put = cli([member], "put", f"monitoring/{member.name}", "value")
            assert put.returncode == 0, put.stderr
            get = cli([member], "get", f"monitoring/{member.name}")
            assert get.returncode == 0, get.stderr
            assert get.stdout.splitlines() == [f"monitoring/{member.name}", "value"]
        yield members
    finally:
        stop_all([member.process for member in members])


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, ports: Callable[[], int], cluster: list[Member]
) -> Iterator[Prometheus]:
    binary = require_tool("prometheus")
    directory = tmp_path_factory.mktemp("prometheus")
    rule_file = write_rule_file(directory)
    server = start_prometheus(
        binary, directory, ports(), [m.metrics_target for m in cluster], rule_file
    )
    try:
        wait_until(
            "three healthy scrapes and request metrics",
            lambda: (
                _up(server) == 3 and bool(server.vector('grpc_server_handled_total{job="kvstore"}'))
            ),
            60,
            cluster,
        )
        time.sleep(5)  # a few more scrapes, so rate() has samples to work with
        yield server
    finally:
        stop(server.process)


def _up(server: Prometheus) -> int:
    result = server.vector('sum(up{job="kvstore"})')
    return int(float(result[0]["value"][1])) if result else 0


def used_metrics() -> list[str]:
    exprs = dashboard_queries() + [rule["expr"] for rule in alert_rules()]
    return sorted({name for expr in exprs for name in metric_names(expr)})


@pytest.mark.parametrize("metric", used_metrics())
def test_metric_exists_in_what_the_cluster_exports(prometheus: Prometheus, metric: str) -> None:
    series = prometheus.vector(f'count by (instance) ({metric}{{job="kvstore"}})')
    assert len(series) == 3, f"{metric} is not exported by every member: {series}"


def test_request_metrics_carry_the_labels_the_rules_group_by(prometheus: Prometheus) -> None:
    handled = prometheus.vector('grpc_server_handled_total{job="kvstore"}')
    for series in handled:
        assert {"grpc_service", "grpc_method", "grpc_code"} <= set(series["metric"]), series
    methods = {s["metric"]["grpc_method"] for s in handled}
    assert {"Put", "Range"} <= methods
    buckets = prometheus.vector(
        'grpc_server_handling_seconds_bucket{job="kvstore", grpc_method="Put"}'
    )
    assert buckets and all("le" in s["metric"] for s in buckets)


@pytest.mark.parametrize("expr", dashboard_queries())
def test_dashboard_query_runs(prometheus: Prometheus, expr: str) -> None:
    result = prometheus.vector(grafana_to_promql(expr, namespace="kvstore"))
    if not any(marker in expr for marker in MAY_BE_EMPTY):
        assert result, f"no data for {expr}"


def test_the_namespace_variable_query_finds_the_cluster(prometheus: Prometheus) -> None:
    result = prometheus.vector('count by (namespace) (etcd_server_has_leader{job="kvstore"})')
    assert [s["metric"]["namespace"] for s in result] == ["kvstore"]


def test_prometheus_evaluates_every_alert_and_a_healthy_cluster_raises_none(
    prometheus: Prometheus,
) -> None:
    def evaluated() -> bool:
        rules = prometheus.rules()
        return bool(rules) and all(not r["lastEvaluation"].startswith("0001") for r in rules)

    wait_until("a rule evaluation", evaluated, 30)
    rules = {r["name"]: r for r in prometheus.rules()}
    assert set(rules) == {r["alert"] for r in alert_rules()}
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
    for name in (
        "KvstoreNoLeader",
        "KvstoreMemberDown",
        "KvstoreInsufficientMembers",
        "KvstoreQuotaNearlyFull",
        "KvstoreProposalsFailing",
        "KvstoreSlowWatchers",
        "KvstoreReadIndexStuck",
    ):
        assert rules[name]["state"] == "inactive", name


def test_killing_a_member_raises_member_down_but_not_quorum_loss(
    prometheus: Prometheus, cluster: list[Member]
) -> None:
    """Runs last: SIGKILL one member; KvstoreMemberDown goes pending for exactly that member."""
    victim = cluster[2]
    victim.process.kill()
    victim.process.wait(timeout=10)

    def member_down_pending() -> bool:
        rule = next(r for r in prometheus.rules() if r["name"] == "KvstoreMemberDown")
        return any(a["labels"]["instance"] == victim.metrics_target for a in rule["alerts"])

    wait_until("KvstoreMemberDown for the killed member", member_down_pending, 30)
    rules = {r["name"]: r for r in prometheus.rules()}
    assert [a["labels"]["instance"] for a in rules["KvstoreMemberDown"]["alerts"]] == [
        victim.metrics_target
    ]
    assert rules["KvstoreInsufficientMembers"]["state"] == "inactive"
    assert _up(prometheus) == 2
