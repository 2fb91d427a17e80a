"""Multi-process behaviour: forwarding, leader failure under load, restart catch-up, a member
added live, lease expiry everywhere, and watches across a leader change. Each test works
on one shared 3-member cluster of real processes and leaves it with three healthy members."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time

import pytest

from kvstore.client import Client, ClientError, SyncClient
from kvstore.verify.cluster import LocalCluster, Member

pytestmark = pytest.mark.slow


def _followers(cluster: LocalCluster) -> list[Member]:
    leader = cluster.leader()
    return [m for m in cluster.members if m is not leader and m.alive]


def _serializable_value(m: Member, key: bytes) -> bytes | None:
    with SyncClient([m.endpoint], timeout=5, rounds=1) as c:
        kvs = c.get(key, serializable=True).kvs
    return kvs[0].value if kvs else None


def _wait_value(m: Member, key: bytes, expected: bytes | None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _serializable_value(m, key) == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"{m.name}: {key!r} is {_serializable_value(m, key)!r}, not {expected!r}")


def test_followers_forward_writes(cluster: LocalCluster) -> None:
    for i, follower in enumerate(_followers(cluster)):
        with SyncClient([follower.endpoint], timeout=10, rounds=1) as c:
            put = c.put(f"fwd/{i}".encode(), b"v")
            # The follower answers once it applied the write itself, as etcd does.
            assert put.header.member_id == cluster.member_id(follower)
            got = c.get(f"fwd/{i}".encode())  # linearizable read on the follower itself
            assert got.kvs[0].value == b"v"
            assert got.header.member_id == cluster.member_id(follower)
            assert got.header.revision >= put.header.revision
    for m in cluster.members:
        _wait_value(m, b"fwd/1", b"v")


def test_time_to_live_right_after_grant_is_a_second_less_on_every_member(
    cluster: LocalCluster,
) -> None:
    """etcd rounds the remaining time down: a 30 s lease shows 29 at once, asked anywhere."""
    with cluster.client() as c:
        lease = c.lease_grant(30)
    for m in cluster.members:
        with SyncClient([m.endpoint], timeout=10, rounds=1) as c:
            ttl = c.lease_time_to_live(lease.ID)
            assert (ttl.TTL, ttl.grantedTTL) == (29, 30)


def test_lease_expiry_deletes_the_keys_on_every_member(cluster: LocalCluster) -> None:
    with cluster.client() as c:
        lease = c.lease_grant(2)
        c.put(b"ephemeral", b"x", lease=lease.ID)
        c.put(b"durable", b"y")
    for m in cluster.members:
        _wait_value(m, b"ephemeral", b"x")
    time.sleep(2.5)
    for m in cluster.members:
        _wait_value(m, b"ephemeral", None, timeout=5)
        assert _serializable_value(m, b"durable") == b"y"
    with cluster.client() as c:
        assert c.lease_time_to_live(lease.ID).TTL == -1
        revisions = {
            SyncClient([m.endpoint], timeout=5).get(b"durable", serializable=True).header.revision
            for m in cluster.members
        }
    assert len(revisions) == 1  # every member deleted the key at the same revision


def _put_surely(c: SyncClient, key: bytes, value: bytes = b"v") -> None:
    """Put, and after an error whose outcome is unknown (the client never resends a write
    that may have been applied), look before trying again: the key is written exactly once."""
    while True:
        try:
            c.put(key, value)
            return
        except ClientError:
            if c.get(key).kvs:
                return


def _watch_in_thread(
    endpoint: str,
    prefix: bytes,
    start: int,
    events: list[tuple[int, bytes]],
    end_key: bytes,
) -> threading.Thread:
    """Collect (revision, key) of every event until the event of ``end_key``."""

    async def consume() -> None:
        async with Client([endpoint], timeout=30, rounds=1) as client:
            stream = client.watch(prefix, prefix=True, start_revision=start)
            async for resp in stream:
                for ev in resp.events:
                    events.append((ev.kv.mod_revision, ev.kv.key))
                if any(ev.kv.key == end_key for ev in resp.events):
                    break

    thread = threading.Thread(target=lambda: asyncio.run(consume()), daemon=True)
    thread.start()
    return thread


def test_watch_survives_leader_failure_without_gaps(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    watcher_member = _followers(cluster)[0]
    with cluster.client() as c:
        start = c.put(b"gap/000", b"0").header.revision
    events: list[tuple[int, bytes]] = []
    thread = _watch_in_thread(watcher_member.endpoint, b"gap/", start, events, b"gap/zzz")
    written: list[bytes] = [b"gap/000"]
    survivors = [m for m in cluster.members if m is not leader]
    with cluster.client(survivors, timeout=10) as c:
        for i in range(1, 40):
            if i == 15:
                leader.kill()
            key = f"gap/{i:03d}".encode()
            _put_surely(c, key)
            written.append(key)
        c.put(b"gap/zzz", b"end")
    thread.join(timeout=20)
    keys = [k for _, k in events if k != b"gap/zzz"]
    revs = [r for r, _ in events]
    assert keys == written  # every write, in order, once
    assert revs == sorted(set(revs))
    cluster.restart(leader)
    cluster.wait_healthy()


def test_leader_sigkill_while_writing_then_restart_catches_up(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    acked: list[bytes] = []
    errors: list[str] = []
    stop = threading.Event()
    kill_time: list[float] = []
    first_after_kill: list[float] = []

    def writer() -> None:
        with SyncClient(cluster.endpoints, timeout=5, rounds=5) as c:
            i = 0
            while not stop.is_set():
                key = f"load/{i:05d}".encode()
                try:
                    c.put(key, b"v")
                except ClientError as exc:
                    errors.append(exc.details)
                    continue
                acked.append(key)
                if kill_time and not first_after_kill:
                    first_after_kill.append(time.monotonic())
                i += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1.0)
    before = len(acked)
    kill_time.append(time.monotonic())
    leader.kill()
    time.sleep(3.0)
    stop.set()
    thread.join(timeout=30)
    assert before > 0
    assert first_after_kill, f"no write succeeded after the leader died: {errors[-3:]}"
    assert len(acked) > before
    new_leader = cluster.leader()
    assert new_leader is not leader
    # No acknowledged write was lost.
    with cluster.client([new_leader]) as c:
        stored = {kv.key for kv in c.get(b"load/", prefix=True, keys_only=True).kvs}
    assert set(acked) <= stored
    # The old leader restarts from its data dir and catches up.
    cluster.restart(leader)
    cluster.wait_healthy()
    _wait_value(leader, acked[-1], b"v", timeout=15)
    with SyncClient([leader.endpoint], timeout=5) as c:
        count = c.get(b"load/", prefix=True, serializable=True, count_only=True).count
    assert count == len(stored)


def test_member_added_live_receives_a_snapshot(cluster: LocalCluster) -> None:
    with cluster.client() as c:
        for i in range(20):
            c.put(f"before-join/{i}".encode(), b"x")
    new, new_id = cluster.add_member("m-late")
    cluster.wait_healthy([new])
    _wait_value(new, b"before-join/19", b"x", timeout=15)
    assert "restored snapshot at index" in new.log_text()
    with SyncClient([new.endpoint], timeout=10) as c:
        assert c.status().header.member_id == new_id
        members = {m.ID: m for m in c.member_list().members}
    assert members[new_id].name == "m-late"
    assert members[new_id].clientURLs == [new.client_url]
    # Leave the cluster as it was: three members.
    with cluster.client() as c:
        c.member_remove(new_id)
    assert new.proc is not None and new.proc.wait(timeout=15) == 0
    cluster.members.remove(new)


def test_new_leader_extends_leases_instead_of_expiring_them(cluster: LocalCluster) -> None:
    ttl = 6
    leader = cluster.leader()
    survivors = [m for m in cluster.members if m is not leader]
    with cluster.client(survivors) as c:
        granted_at = time.monotonic()
        lease = c.lease_grant(ttl)
        c.put(b"held", b"1", lease=lease.ID)
    time.sleep(3.5)
    leader.kill()  # the last keep-alive (the grant) went to the old leader
    new_leader = cluster.leader()
    assert new_leader is not leader
    # Past the lease's original deadline, the key is still there: the new leader restarted
    # the lease's clock (TTL plus an election timeout from its election).
    time.sleep(max(0.0, granted_at + ttl + 1.0 - time.monotonic()))
    assert _serializable_value(new_leader, b"held") == b"1"
    with cluster.client(survivors) as c:
        assert c.lease_time_to_live(lease.ID).TTL > 0
    # ... and the lease still expires, on every live member.
    for m in survivors:
        _wait_value(m, b"held", None, timeout=15)
    cluster.restart(leader)
    cluster.wait_healthy()
    _wait_value(leader, b"held", None, timeout=10)


def test_replace_a_member_whose_disk_was_lost(cluster: LocalCluster) -> None:
    """The procedure of docs/operations.md: remove, add with the same URLs, start empty."""
    victim = _followers(cluster)[0]
    old_id = cluster.member_id(victim)
    with cluster.client() as c:
        c.put(b"before-loss", b"1")
    victim.kill()
    shutil.rmtree(victim.data_dir)
    others = [m for m in cluster.members if m is not victim]
    with cluster.client(others) as c:
        c.member_remove(old_id)
        added = c.member_add([victim.peer_url])
        c.put(b"after-loss", b"2")
    new_id = added.member.ID
    assert new_id != old_id
    cluster.join(victim)
    cluster.wait_healthy()
    _wait_value(victim, b"after-loss", b"2", timeout=15)
    _wait_value(victim, b"before-loss", b"1")
    assert cluster.member_id(victim) == new_id
    with cluster.client() as c:
        members = {m.ID: m.name for m in c.member_list().members}
    assert old_id not in members
    assert members[new_id] == victim.name


def test_client_fails_over_and_watch_resumes_on_another_member(cluster: LocalCluster) -> None:
    dead = f"{cluster.members[0].host}:1"  # nothing listens there
    with SyncClient([dead, *cluster.endpoints], timeout=10) as c:
        c.put(b"failover", b"1")
        assert c.get(b"failover").kvs[0].value == b"1"
    first, second = _followers(cluster)[0], _followers(cluster)[1]
    events: list[tuple[int, bytes]] = []

    async def consume() -> None:
        async with Client([first.endpoint, second.endpoint], timeout=30) as client:
            async for resp in client.watch(b"resume/", prefix=True):
                events.extend((ev.kv.mod_revision, ev.kv.key) for ev in resp.events)
                if any(ev.kv.key == b"resume/zz" for ev in resp.events):
                    break

    thread = threading.Thread(target=lambda: asyncio.run(consume()), daemon=True)
    thread.start()
    time.sleep(1.0)
    others = [m for m in cluster.members if m is not first]
    written = []
    with cluster.client(others) as c:
        for i in range(20):
            if i == 8:
                first.kill()  # the member serving the watch goes away
            key = f"resume/{i:02d}".encode()
            _put_surely(c, key)
            written.append(key)
        c.put(b"resume/zz", b"end")
    thread.join(timeout=30)
    keys = [k for _, k in events if k != b"resume/zz"]
    assert keys == written  # resumed from the next revision: no gap, no duplicate
    cluster.restart(first)
    cluster.wait_healthy()


def test_voter_changes_that_would_lose_quorum_are_refused(cluster: LocalCluster) -> None:
    down = _followers(cluster)[0]
    down.kill()
    time.sleep(3.0)  # past three election timeouts: the leader counts it inactive
    alive = [m for m in cluster.members if m is not down]
    live_follower = next(m for m in alive if m is not cluster.leader())
    with cluster.client(alive) as c:
        # 4 voters with 2 active would have no quorum.
        with pytest.raises(ClientError) as info:
            c.member_add(["http://127.0.0.1:9"])
        assert info.value.details == (
            "etcdserver: re-configuration failed due to not enough started members"
        )
        # Removing a live voter while another is down would leave 1 of 2.
        with pytest.raises(ClientError) as info:
            c.member_remove(cluster.member_id(live_follower))
        assert "not enough started members" in info.value.details
        assert len(c.member_list().members) == 3
    cluster.restart(down)
    cluster.wait_healthy()
