"""Running the store: graceful SIGTERM, the ``kvstore`` client commands, restart from the
data dir, and ``kvstore dev-cluster`` from start to Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from kvstore.client import SyncClient
from kvstore.server.member import SHUTDOWN_BUDGET_S
from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster, free_port
from tests.kvstore.server.conftest import KVSTORE, running

pytestmark = pytest.mark.slow


def _kvstore(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [KVSTORE, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kvstore {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result


def test_cli_basic_operations(cluster: LocalCluster) -> None:
    eps = ",".join(cluster.endpoints)
    assert _kvstore("put", "cli/a", "1", "--endpoints", eps).stdout.strip() == "OK"
    _kvstore("put", "cli/b", "2", "--endpoints", eps)
    assert _kvstore("get", "cli/", "--prefix", "--endpoints", eps).stdout.split() == [
        "cli/a", "1", "cli/b", "2",
    ]  # fmt: skip
    assert _kvstore("del", "cli/a", "--endpoints", eps).stdout.strip() == "1"
    members = _kvstore("member", "list", "--endpoints", eps).stdout.strip().splitlines()
    assert len(members) == 3
    health = _kvstore("endpoint", "health", "--endpoints", eps).stdout
    assert health.count("is healthy") == 3
    leader = cluster.leader()
    target = next(m for m in cluster.members if m is not leader)
    target_id = f"{cluster.member_id(target):x}"
    assert target_id in _kvstore("move-leader", target_id, "--endpoints", eps).stdout
    assert cluster.leader() is target
    missing = _kvstore("member", "remove", "abcdef", "--endpoints", eps, check=False)
    assert missing.returncode == 1
    assert "member not found" in missing.stderr


def test_sigterm_transfers_leadership_and_exits_zero(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    with cluster.client() as c:
        c.put(b"before-sigterm", b"1")
    code = leader.terminate(timeout=15)
    assert code == 0
    lines = [json.loads(line) for line in leader.log_text().splitlines() if line.strip()]
    # The member's own measure of its graceful stop, which must fit its budget; the wall
    # time around it (interpreter exit on a loaded machine) is bounded by terminate's.
    stopped = [line["msg"] for line in lines if line["msg"].startswith("stopped in ")]
    assert stopped, "the member did not log its stop"
    assert float(stopped[-1].removeprefix("stopped in ").removesuffix("s")) < SHUTDOWN_BUDGET_S
    assert lines and all(line["member"] == leader.name for line in lines)
    assert all(isinstance(line["term"], int) for line in lines)
    transfer = [line for line in lines if "transferring leadership" in line["msg"]]
    assert transfer and transfer[0]["term"] >= 1 and transfer[0]["level"] == "info"
    new_leader = cluster.leader(timeout=5)
    assert new_leader is not leader
    with cluster.client() as c:
        c.put(b"after-sigterm", b"2")
    # Restarted from its data dir, the member rejoins and catches up.
    cluster.restart(leader)
    cluster.wait_healthy()
    with SyncClient([leader.endpoint], timeout=10) as c:
        assert c.get(b"after-sigterm").kvs[0].value == b"2"
        assert c.get(b"before-sigterm").kvs[0].value == b"1"


def test_whole_cluster_restarts_from_its_data_dirs(cluster: LocalCluster) -> None:
    with cluster.client() as c:
        c.put(b"survives-restart", b"1")
    cluster.stop()
    for m in cluster.members:
        cluster.restart(m)
    cluster.wait_healthy()  # a leader is elected from the membership kept on disk
    leader = cluster.leader()
    with cluster.client() as c:
        assert c.get(b"survives-restart").kvs[0].value == b"1"
        c.put(b"after-restart", b"2")
        members = c.member_list().members
    assert sorted(m.name for m in members) == ["m1", "m2", "m3"]
    # Membership changes still work: the restarted members know every voter.
    new, new_id = cluster.add_member("m-extra", learner=True, via=leader)
    cluster.wait_healthy([new])
    with cluster.client() as c:
        c.member_remove(new_id)
    assert new.proc is not None and new.proc.wait(timeout=15) == 0
    cluster.members.remove(new)
    cluster.wait_healthy()


def test_dev_cluster_survives_its_leader_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """The first thing a new user tries: kill the leader. The others keep serving, the dead
    member is reported with the command that restarts it, and that command works."""
    ports = {kind: [free_port("127.0.0.1") for _ in range(3)] for kind in ("c", "p", "m", "h")}
    proc = subprocess.Popen(
        [KVSTORE, "dev-cluster", "--nodes", "3", "--data-dir", str(tmp_path / "dev"),
         "--client-ports", ",".join(map(str, ports["c"])),
         "--peer-ports", ",".join(map(str, ports["p"])),
         "--metrics-ports", ",".join(map(str, ports["m"])),
         "--client-http-ports", ",".join(map(str, ports["h"]))],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    restarted: subprocess.Popen[bytes] | None = None
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(banner)
        assert str(tmp_path / "dev") in text
        assert f"http://127.0.0.1:{ports['m'][0]}/metrics" in text
        pids = [int(line.rsplit("pid ", 1)[1]) for line in banner if " pid " in line]
        eps = [f"127.0.0.1:{p}" for p in ports["c"]]
        deadline = time.monotonic() + 30
        while _kvstore("put", "dev", "ok", "--endpoints", ",".join(eps), check=False).returncode:
            assert time.monotonic() < deadline, "dev cluster never accepted a write"
            time.sleep(0.3)
        # The banner's HTTP URL serves the JSON API.
        http_url = f"http://127.0.0.1:{ports['h'][1]}"
        assert http_url in text
        got = httpx.post(f"{http_url}/v3/kv/range", json={"key": "ZGV2"}, timeout=10).json()
        assert got["kvs"][0]["value"] == "b2s="  # "ok"
        with SyncClient(eps, timeout=10) as c:
            status = [c.status(ep) for ep in eps]
        leader = next(i for i, st in enumerate(status) if st.leader == st.header.member_id)
        os.kill(pids[leader], signal.SIGKILL)
        exited = proc.stdout.readline()
        assert exited.startswith(f"infra{leader + 1} exited with status -9"), exited
        restart = shlex.split(proc.stdout.readline())
        assert "serve" in restart
        rest_eps = ",".join(ep for i, ep in enumerate(eps) if i != leader)
        deadline = time.monotonic() + 30
        while _kvstore("put", "dev", "again", "--endpoints", rest_eps, check=False).returncode:
            assert time.monotonic() < deadline, "the two left never elected a leader"
            time.sleep(0.3)
        restarted = subprocess.Popen(restart, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            got = _kvstore("get", "dev", "--endpoints", eps[leader], check=False)
            if got.stdout.split() == ["dev", "again"]:
                break
            assert time.monotonic() < deadline, "the restarted member never caught up"
            time.sleep(0.3)
        restarted.terminate()
        assert restarted.wait(timeout=SHUTDOWN_BUDGET_S + 5) == 0
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        for p in (restarted, proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert proc.returncode == 1  # a member exited on its own: not a clean run
    assert "stopped" in rest
    for name in ("infra1", "infra2", "infra3"):
        assert (tmp_path / "dev" / name / "wal").is_dir()


def test_snapshots_compact_the_log_and_restart_from_them(tmp_path: Path) -> None:
    single = LocalCluster(tmp_path, 1, extra=[*RAFT_FLAGS, "--snapshot-count", "25"])
    with running(single):
        with single.client() as c:
            for i in range(120):
                c.put(f"snap/{i:03d}".encode(), str(i).encode())
        member = single.members[0]
        snaps = sorted((member.data_dir / "snap").iterdir())
        assert snaps, "no snapshot file after 120 entries with --snapshot-count 25"
        assert "snapshot at index" in member.log_text()
        assert member.terminate() == 0
        single.restart(member)
        single.wait_healthy()
        with single.client() as c:
            got = c.get(b"snap/", prefix=True)
        assert [kv.value for kv in got.kvs] == [str(i).encode() for i in range(120)]


def test_dev_cluster_members_do_not_outlive_it(tmp_path: Path) -> None:
    ports = [free_port("127.0.0.1") for _ in range(3)]
    proc = subprocess.Popen(
        [KVSTORE, "dev-cluster", "--nodes", "1", "--data-dir", str(tmp_path / "dev"),
         "--client-ports", str(ports[0]), "--peer-ports", str(ports[1]),
         "--metrics-ports", str(ports[2])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Press Ctrl-C"):
            break
    # Wait until the member serves, so "not listening" later means "gone", not "not yet".
    deadline = time.monotonic() + 30
    while _kvstore("get", "x", "--endpoints", f"127.0.0.1:{ports[0]}", check=False).returncode:
        assert time.monotonic() < deadline, "the dev-cluster member never served"
        time.sleep(0.3)
    proc.kill()  # no chance to stop its members itself
    proc.wait(timeout=10)
    proc.stdout.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", ports[0]), timeout=1):
                pass
        except OSError:
            return  # the member is gone
        time.sleep(0.2)
    raise AssertionError("a dev-cluster member outlived the killed dev-cluster process")


def test_a_member_behind_the_compacted_log_catches_up_from_a_snapshot(tmp_path: Path) -> None:
    small = LocalCluster(tmp_path, 3, extra=[*RAFT_FLAGS, "--snapshot-count", "20"])
    with running(small):
        leader = small.leader()
        behind = next(m for m in small.members if m is not leader)
        with small.client() as c:
            c.put(b"catch/first", b"0")
        assert behind.terminate() == 0
        with small.client([m for m in small.members if m is not behind]) as c:
            for i in range(100):  # past the 20 entries kept after a snapshot
                c.put(f"catch/{i % 50:02d}".encode(), str(i).encode())
        small.restart(behind)
        small.wait_healthy()
        deadline = time.monotonic() + 30
        with SyncClient([behind.endpoint], timeout=10) as c:
            while time.monotonic() < deadline:
                got = c.get(b"catch/49", serializable=True).kvs
                if got and got[0].value == b"99":
                    break
                time.sleep(0.2)
            assert c.get(b"catch/49", serializable=True).kvs[0].value == b"99"
            assert c.get(b"catch/first", serializable=True).kvs[0].value == b"0"
        assert behind.log_text().count("restored snapshot at index") >= 1
