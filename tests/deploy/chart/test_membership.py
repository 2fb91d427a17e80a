"""The chart's membership script: how a pod joins, leaves and rejoins the Raft cluster.

The decisions (plan_start, plan_prune, handoff_target) are pure and tested directly. The
commands are then run as the container runs them, with ``kvstore`` on PATH replaced by a
small recording script that answers ``member list`` from a file: a stand-in for the real CLI,
used because these tests are about which commands the script issues and what it hands to
``kvstore serve``, not about the server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.rendering import CHART, one, render_env

SCRIPT = CHART / "files" / "membership.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("membership", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["membership"] = module
    spec.loader.exec_module(module)
    return module


m = load()
TOPOLOGY = m.Topology(
    statefulset="kvstore",
    peer_domain="kvstore-headless.kvstore.svc.cluster.local",
    peer_scheme="http",
    peer_port=2380,
    client_scheme="http",
    client_port=2379,
)


def peer(i: int) -> str:
    return f"http://kvstore-{i}.kvstore-headless.kvstore.svc.cluster.local:2380"


def client(i: int) -> str:
    return f"http://kvstore-{i}.kvstore-headless.kvstore.svc.cluster.local:2379"


def started(i: int, member_id: str | None = None) -> Any:
    return m.Member(member_id or f"{i:x}" * 4, f"kvstore-{i}", (peer(i),), (client(i),))


def unstarted(i: int, member_id: str | None = None) -> Any:
    return m.Member(member_id or f"{i:x}" * 4, "", (peer(i),), ())


def listing(members: list[Any]) -> str:
    """``members`` in etcdctl's simple member list format."""
    lines = []
    for member in members:
        status = "started" if member.started else "unstarted"
        lines.append(
            f"{member.member_id}, {status}, {member.name}, {','.join(member.peer_urls)}, "
            f"{','.join(member.client_urls)}, false"
        )
    return "\n".join(lines) + "\n"


# --- parsing -------------------------------------------------------------------------------


def test_parse_member_list_reads_started_and_unstarted_members() -> None:
    text = listing([started(0, "8e9e05c52164694d"), unstarted(3, "91bc3c398fb3c146")])
    members = m.parse_member_list(text)
    assert members == [started(0, "8e9e05c52164694d"), unstarted(3, "91bc3c398fb3c146")]
    assert [x.started for x in members] == [True, False]


def test_parse_member_list_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="unexpected member list line"):
        m.parse_member_list("Error: context deadline exceeded\n")


# --- names and the initial cluster -----------------------------------------------------------


def test_bootstrap_cluster_is_built_from_the_stable_dns_names() -> None:
    assert m.bootstrap_cluster(TOPOLOGY, 3) == ",".join(f"kvstore-{i}={peer(i)}" for i in range(3))


def test_ordinal_of_accepts_only_this_statefulsets_pods() -> None:
    assert m.Topology.ordinal_of(TOPOLOGY, "kvstore-12") == 12
    assert m.Topology.ordinal_of(TOPOLOGY, "kvstore-other-1") is None
    assert m.Topology.ordinal_of(TOPOLOGY, "other-1") is None
    assert m.Topology.ordinal_of(TOPOLOGY, "kvstore-") is None


def test_the_chart_gives_the_script_the_urls_the_server_advertises() -> None:
    """The script's idea of a member's peer URL is exactly what that member advertises."""
    sts = one(render_env("staging"), "StatefulSet")
    env = {
        e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    topology = m.Topology(
        statefulset=env["MEMBERSHIP_STATEFULSET"],
        peer_domain=env["MEMBERSHIP_PEER_DOMAIN"],
        peer_scheme=env["MEMBERSHIP_PEER_SCHEME"],
        peer_port=int(env["MEMBERSHIP_PEER_PORT"]),
        client_scheme=env["MEMBERSHIP_CLIENT_SCHEME"],
        client_port=int(env["MEMBERSHIP_CLIENT_PORT"]),
    )
    pod = f"{sts['metadata']['name']}-2"
    assert topology.peer_url(2) == env["KVSTORE_INITIAL_ADVERTISE_PEER_URLS"].replace(
        "$(POD_NAME)", pod
    )
    assert topology.client_url(2) == env["KVSTORE_ADVERTISE_CLIENT_URLS"].replace(
        "$(POD_NAME)", pod
    )
    assert topology.peer_domain.startswith(sts["spec"]["serviceName"] + ".")


# --- plan_start ----------------------------------------------------------------------------


def test_a_fresh_deployment_bootstraps_every_initial_member() -> None:
    for ordinal in range(3):
        plan = m.plan_start(TOPOLOGY, ordinal, 3, has_data=False, members=None)
        assert (plan.action, plan.state) == ("bootstrap", "new")
        assert plan.initial_cluster == m.bootstrap_cluster(TOPOLOGY, 3)
        assert not plan.add_self and not plan.remove_ids


def test_a_pod_beyond_the_initial_set_never_bootstraps_alone() -> None:
    plan = m.plan_start(TOPOLOGY, 3, 3, has_data=False, members=None)
    assert plan.action == "wait"


def test_a_restart_with_data_keeps_the_member() -> None:
    members = [started(0), started(1), started(2)]
    plan = m.plan_start(TOPOLOGY, 1, 3, has_data=True, members=members)
    assert (plan.action, plan.state, plan.wipe_data, plan.add_self) == (
        "restart",
        "existing",
        False,
        False,
    )


def test_a_restart_with_data_while_no_cluster_answers_keeps_the_data() -> None:
    plan = m.plan_start(TOPOLOGY, 0, 3, has_data=True, members=None)
    assert (plan.action, plan.wipe_data) == ("restart", False)


def test_scaling_up_adds_the_new_pod_and_joins_existing() -> None:
    members = [started(0), started(1), started(2)]
    plan = m.plan_start(TOPOLOGY, 3, 4, has_data=False, members=members)
    assert (plan.action, plan.state, plan.add_self, plan.remove_ids) == (
        "join",
        "existing",
        True,
        (),
    )
    assert plan.initial_cluster == ",".join(f"kvstore-{i}={peer(i)}" for i in range(4))


def test_a_pod_already_added_but_never_started_does_not_add_itself_twice() -> None:
    members = [started(0), started(1), started(2), unstarted(3)]
    plan = m.plan_start(TOPOLOGY, 3, 4, has_data=False, members=members)
    assert (plan.action, plan.add_self) == ("join", False)
    assert f"kvstore-3={peer(3)}" in plan.initial_cluster


def test_a_lost_volume_removes_the_old_member_and_rejoins() -> None:
    members = [started(0), started(1, "aaaa"), started(2)]
    plan = m.plan_start(TOPOLOGY, 1, 3, has_data=False, members=members)
    assert (plan.action, plan.remove_ids, plan.add_self, plan.state) == (
        "rejoin",
        ("aaaa",),
        True,
        "existing",
    )
    assert plan.initial_cluster.split(",") == [
        f"kvstore-0={peer(0)}",
        f"kvstore-2={peer(2)}",
        f"kvstore-1={peer(1)}",
    ]


def test_a_late_initial_member_joins_the_cluster_its_peers_formed() -> None:
    """Two members elected a leader before the third started: it joins, it is not re-added."""
    members = [started(0), unstarted(1), started(2)]
    plan = m.plan_start(TOPOLOGY, 1, 3, has_data=False, members=members)
    assert (plan.action, plan.add_self, plan.remove_ids) == ("join", False, ())


def test_stale_data_of_a_removed_member_is_wiped_before_joining() -> None:
    members = [started(0), started(1), started(2)]
    plan = m.plan_start(TOPOLOGY, 3, 4, has_data=True, members=members)
    assert (plan.action, plan.wipe_data, plan.add_self) == ("wipe-and-join", True, True)


# --- scale-down ----------------------------------------------------------------------------


def test_prune_removes_members_at_or_above_the_replica_count_highest_first() -> None:
    members = [started(0), started(1), started(2), started(3, "dddd"), unstarted(4, "eeee")]
    doomed = m.plan_prune(TOPOLOGY, 3, members)
    assert [x.member_id for x in doomed] == ["eeee", "dddd"]


def test_prune_leaves_a_right_sized_cluster_and_foreign_members_alone() -> None:
    foreign = m.Member("ffff", "etcd-9", ("http://etcd-9:2380",), ("http://etcd-9:2379",))
    assert m.plan_prune(TOPOLOGY, 3, [started(0), started(1), started(2), foreign]) == []


def test_handoff_goes_to_the_lowest_started_member_that_stays() -> None:
    members = [unstarted(0), started(1), started(2), started(3), started(4)]
    assert m.handoff_target(TOPOLOGY, 1, 5, members).name == "kvstore-2"
    assert m.handoff_target(TOPOLOGY, 4, 3, members).name == "kvstore-1"
    assert m.handoff_target(TOPOLOGY, 0, 1, [started(0)]) is None


# --- the commands, run as the container runs them ---------------------------------------------

FAKE_CLI = """#!{python}
import json, os, sys
state = os.environ["FAKE_STATE"]
args = sys.argv[1:]
with open(os.path.join(state, "calls"), "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[:1] == ["serve"]:
    keys = ("KVSTORE_INITIAL_CLUSTER", "KVSTORE_INITIAL_CLUSTER_STATE", "KVSTORE_NAME")
    with open(os.path.join(state, "serve.json"), "w") as f:
        json.dump({{k: os.environ.get(k) for k in keys}}, f)
    sys.exit(0)
if args[:2] == ["member", "list"]:
    path = os.path.join(state, "members")
    if not os.path.exists(path):
        print("Error: connection refused", file=sys.stderr)
        sys.exit(1)
    sys.stdout.write(open(path).read())
sys.exit(0)
"""


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, Any]:
    """A PATH with the recording ``kvstore``, and the environment the StatefulSet sets."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "kvstore"
    cli.write_text(FAKE_CLI.format(python=sys.executable))
    cli.chmod(0o755)
    (tmp_path / "replicas").write_text("3\n")
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
            "FAKE_STATE": str(tmp_path),
            "POD_NAME": "kvstore-1",
            "KVSTORE_NAME": "kvstore-1",
            "KVSTORE_DATA_DIR": str(tmp_path / "data"),
            "MEMBERSHIP_STATEFULSET": "kvstore",
            "MEMBERSHIP_PEER_DOMAIN": TOPOLOGY.peer_domain,
            "MEMBERSHIP_PEER_SCHEME": "http",
            "MEMBERSHIP_PEER_PORT": "2380",
            "MEMBERSHIP_CLIENT_SCHEME": "http",
            "MEMBERSHIP_CLIENT_PORT": "2379",
            "MEMBERSHIP_REPLICAS_FILE": str(tmp_path / "replicas"),
            "MEMBERSHIP_DISCOVERY_SECONDS": "0",
        }
    )
    return {"env": env, "dir": tmp_path}


def run(
    fake: dict[str, Any], *args: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=fake["env"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    calls_file = fake["dir"] / "calls"
    calls = (
        [json.loads(line) for line in calls_file.read_text().splitlines()]
        if calls_file.exists()
        else []
    )
    return result, calls


def test_start_bootstraps_and_execs_serve_with_the_initial_cluster(fake: dict[str, Any]) -> None:
    result, calls = run(fake, "start")
    assert result.returncode == 0, result.stderr
    assert calls[-1] == ["serve"]
    served = json.loads((fake["dir"] / "serve.json").read_text())
    assert served == {
        "KVSTORE_INITIAL_CLUSTER": m.bootstrap_cluster(TOPOLOGY, 3),
        "KVSTORE_INITIAL_CLUSTER_STATE": "new",
        "KVSTORE_NAME": "kvstore-1",
    }


def test_start_after_a_lost_volume_removes_adds_then_serves(fake: dict[str, Any]) -> None:
    (fake["dir"] / "members").write_text(listing([started(0), started(1, "bbbb"), started(2)]))
    result, calls = run(fake, "start")
    assert result.returncode == 0, result.stderr
    endpoints = f"--endpoints={client(0)},{client(2)}"
    assert calls == [
        ["member", "list", endpoints],
        ["member", "remove", "bbbb", endpoints],
        ["member", "add", "kvstore-1", f"--peer-urls={peer(1)}", endpoints],
        ["serve"],
    ]
    assert (
        json.loads((fake["dir"] / "serve.json").read_text())["KVSTORE_INITIAL_CLUSTER_STATE"]
        == "existing"
    )


def test_start_of_an_extra_pod_with_no_cluster_exits_non_zero(fake: dict[str, Any]) -> None:
    fake["env"]["POD_NAME"] = "kvstore-5"
    result, calls = run(fake, "start")
    assert result.returncode == 1
    assert ["serve"] not in calls


def test_prestop_hands_over_leadership_and_leaves_when_scaled_away(fake: dict[str, Any]) -> None:
    fake["env"]["POD_NAME"] = "kvstore-3"
    (fake["dir"] / "members").write_text(
        listing([started(0, "a0"), started(1, "a1"), started(2, "a2"), started(3, "a3")])
    )
    result, calls = run(fake, "prestop")
    assert result.returncode == 0, result.stderr
    assert calls[1] == ["move-leader", "a0", f"--endpoints={client(3)}"]
    assert calls[2][:3] == ["member", "remove", "a3"]


def test_prestop_of_a_member_that_stays_only_hands_over(fake: dict[str, Any]) -> None:
    (fake["dir"] / "members").write_text(
        listing([started(0, "a0"), started(1, "a1"), started(2, "a2")])
    )
    result, calls = run(fake, "prestop")
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in calls] == ["member", "move-leader"]
    assert not any(c[:2] == ["member", "remove"] for c in calls)


def test_prune_removes_what_the_replica_count_no_longer_covers(fake: dict[str, Any]) -> None:
    (fake["dir"] / "members").write_text(
        listing(
            [
                started(0, "a0"),
                started(1, "a1"),
                started(2, "a2"),
                started(3, "a3"),
                started(4, "a4"),
            ]
        )
    )
    result, calls = run(
        fake, "prune", "--replicas=3", "--endpoints=http://kvstore.kvstore.svc:2379"
    )
    assert result.returncode == 0, result.stderr
    removed = [c[2] for c in calls if c[:2] == ["member", "remove"]]
    assert removed == ["a4", "a3"]
