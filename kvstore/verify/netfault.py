"""Network partitions between members on one machine: cgroup v2 + iptables.

Why this way: every member listens on its own loopback address, but a connection a member
opens to another leaves with source address 127.0.0.1, so a firewall rule on the source
address cannot tell members apart. Each member instead runs in its own cgroup, and
iptables' ``cgroup`` match (``--path``) identifies the sending process. A rule

    -m cgroup --path <cgroup of A> -d <address of B> -j DROP

drops everything A sends to B: A's own connections to B, and A's half (data and ACKs) of
connections B opened to A, so both stall as on a real network that lost A→B. Cutting both
directions of every pair across two groups makes a partition. Members keep their
127.0.0.x addresses; the harness's own client traffic (not in those cgroups) is untouched.

Per-member TCP proxies were the alternative. A proxy in front of a member's peer port sees
every peer's connection arrive from 127.0.0.1 too, so it can only cut all traffic into one
member, not one pair, and bridge or majority/minority partitions need pairwise cuts.
Network namespaces would give real addresses per member but move members off 127.0.0.x and
need a bridge, veth pairs and routes set up and torn down for every run.

Rules live in a chain of their own, jumped to from OUTPUT, and are removed by
:meth:`Partitioner.close` (always call it). Needs root, iptables and a cgroup v2 hierarchy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from kvstore.verify.cluster import Member


class NetFaultUnavailable(RuntimeError):
    """This machine cannot make partitions (not root, no iptables, no cgroup v2)."""


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, if anywhere."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return Path(parts[1])
    return None


def unavailable_reason() -> str | None:
    """Why partitions cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network partitions need root (iptables and cgroups)"
    if shutil.which("iptables") is None:
        return "iptables is not installed"
    root = cgroup2_root()
    if root is None or not os.access(root, os.W_OK):
        return "no writable cgroup v2 hierarchy"
    return None


def pairs_between(groups: Sequence[Sequence[Member]]) -> list[tuple[Member, Member]]:
    """Every ordered (src, dst) pair whose ends lie in different groups."""
    cuts: list[tuple[Member, Member]] = []
    for i, a in enumerate(groups):
        for j, b in enumerate(groups):
            if i != j:
                cuts += [(src, dst) for src in a for dst in b]
    return cuts


class Partitioner:
    """Drops packets between members; one iptables chain and one cgroup parent per run."""

    def __init__(self, tag: str) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise NetFaultUnavailable(reason)
        root = cgroup2_root()
        assert root is not None
        self.cgroup_root = root
        self.cgroup_parent = root / f"kvstore-fault-{tag}"
        self.cgroup_parent.mkdir(exist_ok=True)
        self.chain = f"KVF-{tag}"[:28]
        self._iptables("-N", self.chain)
        self._iptables("-I", "OUTPUT", "-j", self.chain)
        self.cut_pairs: set[tuple[str, str]] = set()

    def _iptables(self, *args: str, check: bool = True) -> None:
        subprocess.run(["iptables", "-w", *args], check=check, capture_output=True)

    def _rule(self, src: Member, dst: Member) -> list[str]:
        assert src.cgroup is not None, f"{src.name} was not started in a cgroup"
        rel = "/" + str(src.cgroup.relative_to(self.cgroup_root))
        return ["-m", "cgroup", "--path", rel, "-d", f"{dst.host}/32", "-j", "DROP"]

    def cut(self, pairs: Iterable[tuple[Member, Member]]) -> None:
        """Drop everything each ``src`` sends to its ``dst`` (one direction per pair)."""
        for src, dst in pairs:
            if (src.name, dst.name) not in self.cut_pairs:
                self._iptables("-A", self.chain, *self._rule(src, dst))
                self.cut_pairs.add((src.name, dst.name))

    def partition(self, groups: Sequence[Sequence[Member]]) -> None:
        """Members talk only within their group (both directions cut across groups)."""
        self.cut(pairs_between(groups))

    def heal(self) -> None:
        """Remove every cut."""
        self._iptables("-F", self.chain)
        self.cut_pairs.clear()

    def close(self) -> None:
        """Remove the chain and the cgroups (members must have exited first)."""
        self._iptables("-D", "OUTPUT", "-j", self.chain, check=False)
        self._iptables("-F", self.chain, check=False)
        self._iptables("-X", self.chain, check=False)
        if self.cgroup_parent.exists():
            for child in self.cgroup_parent.iterdir():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                self.cgroup_parent.rmdir()
