"""Throughput of the Raft core in simulation: proposals committed per second.

Two figures:

* ``clean``: (best of ``--repeat`` runs, since a shared machine only ever slows a run
  down) a 3- or 5-node cluster on a perfect in-memory network, driven like the server
  drives it (persist to MemoryStorage, send, apply, advance). A client keeps ``--batch``
  proposals outstanding at the leader; every message is optionally encoded and decoded with
  the wire codec (``--codec``). Counts proposals applied by the leader per wall second.
* ``chaos``: the random schedules of the simulation test (faults, crashes, membership
  changes, invariant checks after every step); committed proposals (applied on any
  node, counted once) per wall second.

Run: ``scripts/bench-raft`` (arguments are passed on, see ``--help``).
"""

from __future__ import annotations

import argparse
import random
import time

from kvstore.raft import MemoryStorage, RaftConfig, RawNode, decode_message, encode_message
from kvstore.raft.types import ConfState, EntryType, Message, StateType

from .sim import Simulation, size_for


class _Node:
    __slots__ = ("node", "storage")

    def __init__(self, nid: int, cs: ConfState) -> None:
        self.storage = MemoryStorage(cs)
        cfg = RaftConfig(id=nid, rng=random.Random(nid), max_inflight_msgs=64)
        self.node = RawNode(cfg, self.storage)


def clean(size: int, batch: int, seconds: float, codec: bool, payload: int) -> float:
    """Proposals applied by the leader per second on a perfect network."""
    cs = ConfState(voters=frozenset(range(1, size + 1)))
    nodes = {i: _Node(i, cs) for i in cs.voters}
    queue: list[Message] = []
    applied = 0

    def pump(n: _Node) -> int:
        done = 0
        while n.node.has_ready():
            rd = n.node.ready()
            if rd.hard_state is not None:
                n.storage.set_hard_state(rd.hard_state)
            n.storage.append(rd.entries)
            queue.extend(rd.messages)
            for e in rd.committed_entries:
                if e.type == EntryType.NORMAL and e.data:
                    done += 1
            n.node.advance(rd)
        return done

    leader = nodes[1]
    leader.node.campaign()
    body = b"x" * payload
    seq = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    rounds = 0
    while time.perf_counter() < deadline:
        if leader.node.raft.state == StateType.LEADER:
            for _ in range(batch):
                seq += 1
                leader.node.propose(b"%d:" % seq + body)
        applied += pump(leader)
        while queue:
            m = queue.pop(0)
            if codec:
                m = decode_message(encode_message(m))
            target = nodes[m.to]
            target.node.step(m)
            got = pump(target)
            if target is leader:
                applied += got
        rounds += 1
        if rounds % 8 == 0:
            for n in nodes.values():
                n.node.tick()
                got = pump(n)
                if n is leader:
                    applied += got
    return applied / (time.perf_counter() - started)


def chaos(schedules: int, steps: int) -> tuple[float, float, int]:
    """(committed proposals/s, steps/s, committed) over random schedules."""
    committed = 0
    total_steps = 0
    started = time.perf_counter()
    for seed in range(schedules):
        sim = Simulation(seed, size_for(seed), steps)
        sim.run()
        committed += sum(1 for _, data, _ in sim.check.applied.values() if data)
        total_steps += sim.stats.steps
    elapsed = time.perf_counter() - started
    return committed / elapsed, total_steps / elapsed, committed


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    p = argparse.ArgumentParser(description="Raft core throughput in simulation.")
    p.add_argument("--seconds", type=float, default=3.0, help="per clean measurement")
    p.add_argument("--payload", type=int, default=100, help="bytes per proposal")
    p.add_argument("--schedules", type=int, default=200, help="chaos schedules")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument(
        "--repeat", type=int, default=3, help="runs per clean figure; the best is printed"
    )
    args = p.parse_args(argv)
    print(
        f"clean network, {args.payload}-byte proposals, proposals applied/s on the leader "
        f"(best of {args.repeat} runs of {args.seconds}s):"
    )
    for size in (3, 5):
        for batch in (1, 16, 256):
            for codec in (False, True):
                rate = max(
                    clean(size, batch, args.seconds, codec, args.payload)
                    for _ in range(args.repeat)
                )
                wire = "with codec" if codec else "no codec  "
                print(f"  {size} nodes  batch {batch:>3}  {wire}  {rate:>10,.0f}/s")
    rate, steps, committed = chaos(args.schedules, args.steps)
    print(
        f"chaos schedules ({args.schedules} x {args.steps} steps, checks on): "
        f"{rate:,.0f} committed proposals/s, {steps:,.0f} steps/s ({committed} committed)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
