"""The fault harness's own parts: schedules, partition arithmetic, the extra checks, the
recheck command, and that a partition really cuts traffic between two processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from kvstore.client import ClientError
from kvstore.verify.__main__ import main as recheck_main
from kvstore.verify.checks import (
    acknowledged_writes_present,
    event_log_consistent,
    revisions_monotonic,
    watch_stream_matches,
)
from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster, Member
from kvstore.verify.history import History, Op, OpKind
from kvstore.verify.liveness import MemberLiveness, check_member
from kvstore.verify.nemesis import Fault, make_schedule
from kvstore.verify.netfault import Partitioner, pairs_between, unavailable_reason
from kvstore.verify.workload import Event, cas_request, never_applied
from tests.tooling import missing


def member(name: str, host: str = "127.0.0.1", cgroup: Path | None = None) -> Member:
    return Member(name, host, 1, 2, 3, Path("/nonexistent"), Path("/nonexistent"), [],
                  cgroup=cgroup)  # fmt: skip


def test_schedule_is_reproducible_and_covers_every_fault() -> None:
    faults = [Fault.KILL_LEADER, Fault.PAUSE_RANDOM, Fault.ISOLATE_LEADER]
    a = make_schedule(7, faults, 20)
    assert a == make_schedule(7, faults, 20)
    assert a != make_schedule(8, faults, 20)
    assert {e.fault for e in a} == set(faults)
    for prev, nxt in itertools.pairwise(a):
        assert nxt.at >= prev.at + prev.hold, "episodes must not overlap"
    assert all(e.at + e.hold <= 20 for e in a)


def test_partition_pairs_cut_both_directions_across_groups_only() -> None:
    a, b, _c, d, e = (member(n) for n in "abcde")
    pairs = {(s.name, t.name) for s, t in pairs_between([[a, b], [d, e]])}
    assert ("a", "d") in pairs and ("d", "a") in pairs
    assert ("a", "b") not in pairs
    # The bridge member c is in neither group, so nothing of it is cut.
    assert not any("c" in p for p in pairs)
    assert len(pairs) == 8


def test_revisions_going_back_for_a_worker_are_reported() -> None:
    h = History()
    h.add(Op(0, OpKind.READ, "k", 1, 2, value=None, revision=5))
    h.add(Op(1, OpKind.READ, "k", 3, 4, value=None, revision=4))  # same worker 0, new id
    h.add(Op(1000, OpKind.READ, "k", 3, 4, value=None, revision=1))  # another worker
    problems = revisions_monotonic(h)
    assert len(problems) == 1 and "from 5" in problems[0]


def test_lost_acknowledged_write_and_phantom_event_are_reported() -> None:
    h = History()
    h.add(Op(0, OpKind.WRITE, "k", 1, 2, value="a", revision=2))
    h.add(Op(0, OpKind.WRITE, "k", 3, None, value="b"))  # unknown outcome: may be absent
    h.add(Op(0, OpKind.CAS, "k", 5, 6, value="c", expected="a", ok=True, revision=3))
    log = [Event(2, "k", "a"), Event(3, "k", "c"), Event(4, "k", "b")]
    assert acknowledged_writes_present(h, log) == []
    lost = acknowledged_writes_present(h, [Event(2, "k", "a"), Event(4, "k", "b")])
    assert len(lost) == 1 and "'c' at revision 3" in lost[0]
    phantom = acknowledged_writes_present(h, [*log, Event(5, "k", "zz")])
    assert len(phantom) == 1 and "written by no client" in phantom[0]
    assert event_log_consistent([Event(2, "k", "a"), Event(2, "k", "b")])


def test_watch_streams_missing_duplicated_or_stopping_short_are_reported() -> None:
    log = [Event(r, "k", str(r)) for r in range(2, 7)]
    assert watch_stream_matches("w", log, log) == []
    missing_one = [e for e in log if e.revision != 4]
    assert watch_stream_matches("w", missing_one, log)
    duplicated = [*log[:3], log[2], *log[3:]]
    assert watch_stream_matches("w", duplicated, log)
    reordered = [log[1], log[0], *log[2:]]
    assert watch_stream_matches("w", reordered, log)
    short = watch_stream_matches("w", log[:3], log)
    assert len(short) == 1 and "stopped at revision 4" in short[0]


def test_only_errors_that_prove_no_effect_drop_an_operation() -> None:
    assert never_applied(ClientError(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader"))
    refused = "failed to connect to all addresses; last error: connection refused"
    assert never_applied(ClientError(grpc.StatusCode.UNAVAILABLE, refused))
    changed = ClientError(grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed")
    assert never_applied(changed)
    timed_out = ClientError(grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out")
    assert not never_applied(timed_out)
    assert not never_applied(ClientError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))


def test_cas_compares_value_or_absence() -> None:
    present = cas_request(b"k", "a", "b")
    assert present.compare[0].value == b"a"
    assert present.success[0].request_put.value == b"b"
    absent = cas_request(b"k", None, "b")
    assert absent.compare[0].target == absent.compare[0].VERSION
    assert absent.compare[0].version == 0


def test_recheck_command_reports_a_saved_stale_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = History(meta={"seed": 1, "event_log": [], "watch_streams": {}})
    h.add(Op(0, OpKind.WRITE, "k", 0, 1, value="a"))
    h.add(Op(0, OpKind.WRITE, "k", 2, 3, value="b"))
    h.add(Op(1, OpKind.READ, "k", 4, 5, value="a"))  # stale: b was written before
    bad = tmp_path / "bad.json"
    h.save(bad)
    assert recheck_main([str(bad)]) == 1
    assert "linearizable=False" in capsys.readouterr().out
    good = History(meta=json.loads(bad.read_text())["meta"], ops=h.ops[:2])
    good.save(tmp_path / "good.json")
    assert recheck_main([str(tmp_path / "good.json")]) == 0


CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError:
    print("cut")
"""


@pytest.mark.netfault
def test_partitioner_cuts_one_process_from_one_address(tmp_path: Path) -> None:
    """Real iptables and cgroups: a process in member a's cgroup cannot reach b's address
    once a->b is cut, a process outside it still can, and healing restores the path."""
    reason = unavailable_reason()
    if reason is not None:
        missing(reason)
    part = Partitioner(f"unit-{tmp_path.name[-8:]}")
    try:
        cg = part.cgroup_parent / "a"
        cg.mkdir()
        a, b = member("a", cgroup=cg), member("b", host="127.0.0.77")
        with socket.socket() as server:
            server.bind(("127.0.0.77", 0))
            server.listen(8)
            port = str(server.getsockname()[1])

            def attempt(in_cgroup: bool) -> str:
                cmd = [sys.executable, "-c", CONNECT, "127.0.0.77", port]
                if in_cgroup:
                    procs = cg / "cgroup.procs"
                    cmd = ["/bin/sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", *cmd]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                return out.stdout.strip()

            assert attempt(in_cgroup=True) == "connected"
            part.cut([(a, b)])
            assert attempt(in_cgroup=True) == "cut"
            assert attempt(in_cgroup=False) == "connected"
            part.heal()
            assert attempt(in_cgroup=True) == "connected"
    finally:
        part.close()
    assert not part.cgroup_parent.exists()
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True)
    assert part.chain not in rules.stdout


@pytest.mark.slow
def test_move_leader_hands_leadership_to_the_named_member(tmp_path: Path) -> None:
    """The benchmarks place the leader with it, in this store and in etcd alike."""
    cluster = LocalCluster(tmp_path, 3, cluster_name="move")
    try:
        cluster.start()
        before = cluster.leader()
        target = next(m for m in cluster.members if m is not before)
        cluster.move_leader(target)
        assert cluster.leader() is target
        cluster.move_leader(target)  # already there: nothing to do
        assert cluster.leader() is target
    finally:
        cluster.stop()


def test_liveness_check_passes_serving_members_and_fails_a_paused_one(tmp_path: Path) -> None:
    """The check must be able to fail: a member that answers nothing (SIGSTOP) is reported
    with what it did not serve, while the running members pass."""
    cluster = LocalCluster(tmp_path, 3, cluster_name="alive", extra=RAFT_FLAGS)
    try:
        cluster.start()
        cluster.wait_healthy()
        lead = cluster.leader()
        paused = next(m for m in cluster.members if m is not lead)
        paused.pause()

        async def check() -> list[MemberLiveness]:
            return await asyncio.gather(
                *(check_member(m.name, m.endpoint, "t", bound=3.0) for m in cluster.members)
            )

        results = {r.name: r for r in asyncio.run(check())}
        for m in cluster.members:
            failure = results[m.name].failure(3.0)
            if m is paused:
                assert failure is not None
                assert "read, write, watch" in failure
            else:
                assert failure is None, failure
                assert "read" in results[m.name].figures()
    finally:
        cluster.stop()
