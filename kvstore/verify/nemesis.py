"""Faults injected into a running cluster, on a schedule drawn from a seed.

:func:`make_schedule` is pure: the same seed, fault set and duration give the same list of
episodes (what, when, for how long, and the random draw that picks targets), so a failing
run is reproduced by its seed. :class:`Nemesis` carries the episodes out against a
:class:`~kvstore.verify.cluster.LocalCluster` and logs what each one did to whom ("the
leader" is only known at run time, so the log names the member).

Every episode starts a fault, holds it, then undoes it: a killed member restarts from its
data directory, a paused one continues, a partition heals, a full disk is emptied (and its
member restarted if the full disk stopped it), a replaced member's successor is promoted,
a slow disk is fast again.
"""

from __future__ import annotations

import enum
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kvstore.client import ClientError, SyncClient
from kvstore.verify.cluster import LocalCluster, Member, MemberUnavailable
from kvstore.verify.netfault import Partitioner
from kvstore.verify.slowdisk import SlowDisk


class Fault(enum.StrEnum):
    """The kinds of episode."""

    KILL_LEADER = "kill-leader"
    KILL_RANDOM = "kill-random"
    PAUSE_LEADER = "pause-leader"
    PAUSE_RANDOM = "pause-random"
    PARTITION_HALVES = "partition-majority-minority"
    PARTITION_BRIDGE = "partition-bridge"
    ISOLATE_LEADER = "isolate-leader"
    REPLACE_MEMBER = "replace-member"
    """Remove a follower, add a new member (with an empty data directory, on the old one's
    address and ports) as a learner, promote it once it caught up."""
    DISK_FULL = "disk-full"
    """Fill the filesystem of a member whose data directory is a small tmpfs."""
    SLOW_DISK = "slow-disk"
    """Make every fsync of one member (the leader, or one time in three a follower) sleep
    a few hundred milliseconds first: a leader's slow fsync delays every commit and its
    heartbeats; a slow follower must not hold back the majority."""


SLOW_FSYNC_MS = (200, 800)
"""The range an episode's fsync delay is drawn from, on both sides of the 500 ms election
timeout the fault tests run with: below it a slow leader keeps its leadership and every
commit waits for its disk; above it the leader may step down and the cluster must elect
another while clients wait."""

PROCESS_FAULTS = frozenset(
    {Fault.KILL_LEADER, Fault.KILL_RANDOM, Fault.PAUSE_LEADER, Fault.PAUSE_RANDOM}
)
NETWORK_FAULTS = frozenset({Fault.PARTITION_HALVES, Fault.PARTITION_BRIDGE, Fault.ISOLATE_LEADER})


@dataclass(frozen=True)
class Episode:
    """One fault: starts ``at`` seconds into the run and is undone ``hold`` seconds later."""

    fault: Fault
    at: float
    hold: float
    draw: int
    """A random number that picks targets, so the choice is part of the schedule."""


def make_schedule(
    seed: int,
    faults: list[Fault],
    duration: float,
    *,
    hold: tuple[float, float] = (1.0, 3.0),
    gap: tuple[float, float] = (0.5, 1.5),
    warmup: float = 1.0,
) -> list[Episode]:
    """Episodes one after another until ``duration``; each fault kind comes up in turn
    (shuffled), so a short run still covers every kind once."""
    rng = random.Random(seed)  # noqa: S311 (reproducible schedules, not secrets)
    episodes: list[Episode] = []
    t = warmup
    order: list[Fault] = []
    while True:
        if not order:
            order = list(faults)
            rng.shuffle(order)
        fault = order.pop()
        length = rng.uniform(*hold)
        if t + length > duration:
            return episodes
        episodes.append(Episode(fault, round(t, 3), round(length, 3), rng.getrandbits(32)))
        t += length + rng.uniform(*gap)


@dataclass
class Nemesis:
    """Carries out a schedule against a cluster."""

    cluster: LocalCluster
    partitioner: Partitioner | None = None
    disk_member: Member | None = None
    """The member whose data directory is a small tmpfs (for DISK_FULL)."""
    log: list[dict[str, object]] = field(default_factory=list)
    retired: list[Member] = field(default_factory=list)

    def note(self, episode: Episode, what: str) -> None:
        entry = {**asdict(episode), "did": what, "t": round(time.monotonic(), 6)}
        self.log.append(entry)

    def run(self, schedule: list[Episode], t0: float, stop: threading.Event) -> None:
        """Run every episode at its time (relative to monotonic ``t0``)."""
        for ep in schedule:
            if stop.wait(max(0.0, t0 + ep.at - time.monotonic())):
                return
            try:
                undo = self.start(ep)
            except (ClientError, MemberUnavailable, TimeoutError) as exc:
                # The cluster could not be asked what the fault needs (no leader yet, the
                # chosen member busy catching up): skip this episode, say so in the log.
                self.note(ep, f"skipped: {exc}"[:200])
                continue
            stop.wait(ep.hold)
            undo()
            self.note(ep, "undone")

    def _leader_or_random(self, rng: random.Random) -> Member:
        try:
            return self.cluster.leader(timeout=3)
        except TimeoutError:
            return rng.choice(self.cluster.members)

    def start(self, ep: Episode) -> Callable[[], None]:
        """Start the fault; return what undoes it."""
        rng = random.Random(ep.draw)  # noqa: S311 (reproducible target choice)
        members = self.cluster.members
        if ep.fault in PROCESS_FAULTS:
            target = (
                self._leader_or_random(rng)
                if ep.fault in (Fault.KILL_LEADER, Fault.PAUSE_LEADER)
                else rng.choice(members)
            )
            if ep.fault in (Fault.KILL_LEADER, Fault.KILL_RANDOM):
                target.kill()
                self.note(ep, f"SIGKILL {target.name}")
                return lambda: self.cluster.restart(target)
            target.pause()
            self.note(ep, f"SIGSTOP {target.name}")
            return target.resume
        if ep.fault in NETWORK_FAULTS:
            return self._partition(ep, rng)
        if ep.fault is Fault.REPLACE_MEMBER:
            return self._replace(ep, rng)
        if ep.fault is Fault.SLOW_DISK:
            return self._slow_disk(ep, rng)
        return self._disk_full(ep)

    def _partition(self, ep: Episode, rng: random.Random) -> Callable[[], None]:
        assert self.partitioner is not None, "network faults need a Partitioner"
        members = list(self.cluster.members)
        if ep.fault is Fault.ISOLATE_LEADER:
            lead = self._leader_or_random(rng)
            groups = [[lead], [m for m in members if m is not lead]]
            self.partitioner.partition(groups)
        elif ep.fault is Fault.PARTITION_HALVES:
            rng.shuffle(members)
            k = len(members) // 2
            groups = [members[:k], members[k:]]
            self.partitioner.partition(groups)
        else:
            # A bridge: two sides that cannot talk, and one member that talks to both.
            rng.shuffle(members)
            bridge, rest = members[0], members[1:]
            k = len(rest) // 2
            groups = [rest[:k], rest[k:]]
            self.partitioner.partition(groups)
            groups = [groups[0], [bridge], groups[1]]
        names = " | ".join(",".join(m.name for m in g) for g in groups)
        self.note(ep, f"partition {names}")
        return self.partitioner.heal

    def _replace(self, ep: Episode, rng: random.Random) -> Callable[[], None]:
        """Remove a follower and add a learner in its place; the undo promotes it."""
        lead = self.cluster.leader(timeout=10)
        followers = [m for m in self.cluster.members if m is not lead]
        rng.shuffle(followers)
        answering = [(m, st) for m in followers if (st := self.cluster.status(m)) is not None]
        if not answering:
            raise MemberUnavailable("no follower answers")
        victim, (victim_id, _, _) = answering[0]
        with SyncClient([lead.endpoint], timeout=10) as c:
            c.member_remove(victim_id)
        victim.kill()
        self.cluster.members.remove(victim)
        self.retired.append(victim)
        new, new_id = self.cluster.add_member(learner=True, via=lead, like=victim)
        self.note(ep, f"removed {victim.name}, added learner {new.name}")

        def promote() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with SyncClient(self.cluster.endpoints, timeout=5) as c:
                        c.member_promote(new_id)
                    self.note(ep, f"promoted {new.name}")
                    return
                except ClientError as exc:
                    last = exc
                time.sleep(0.3)
            self.note(ep, f"could not promote {new.name}: {last}")

        return promote

    def _disk_full(self, ep: Episode) -> Callable[[], None]:
        target = self.disk_member
        assert target is not None, "DISK_FULL needs a member on a small tmpfs"
        filler = target.data_dir.parent / "filler"
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False
        )
        free = shutil.disk_usage(filler.parent).free
        self.note(ep, f"filled the disk of {target.name} ({free} bytes free)")

        def empty() -> None:
            filler.unlink(missing_ok=True)
            if not target.alive:
                self.note(ep, f"{target.name} had exited on the full disk; restarting it")
                self.cluster.restart(target)

        return empty

    def _slow_disk(self, ep: Episode, rng: random.Random) -> Callable[[], None]:
        """Slow down one member's fsyncs (members must run with the slow-fsync shim)."""
        try:
            lead: Member | None = self.cluster.leader(timeout=3)
        except TimeoutError:
            lead = None
        if lead is not None and rng.random() >= 1 / 3:
            target, role = lead, "leader"
        else:
            target = rng.choice([m for m in self.cluster.members if m is not lead])
            role = "follower" if lead is not None else "no agreed leader"
        disk = SlowDisk.of(target.env)
        if disk is None:
            raise MemberUnavailable(f"{target.name} runs without the slow-fsync shim")
        ms = rng.randint(*SLOW_FSYNC_MS)
        disk.slow(ms)
        self.note(ep, f"slow fsync {ms} ms on {target.name} ({role})")
        return disk.fast


def tmpfs_mount(path: Path, size_mb: int) -> None:
    """Mount a tmpfs of ``size_mb`` megabytes at ``path`` (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                   check=True, capture_output=True)  # fmt: skip


def unmount(path: Path) -> None:
    """Undo :func:`tmpfs_mount` (lazily, so a lingering process cannot block it)."""
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
