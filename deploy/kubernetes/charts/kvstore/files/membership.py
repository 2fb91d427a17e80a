"""Raft membership that follows the StatefulSet, for the kvstore chart.

The store's container runs this script instead of ``kvstore serve`` directly. It has three
commands, each driving only the ``kvstore`` CLI (``member list|add|remove``, ``move-leader``):

``start``
    Decide how this pod joins, then exec ``kvstore serve`` with ``KVSTORE_INITIAL_CLUSTER``
    and ``KVSTORE_INITIAL_CLUSTER_STATE`` set:

    * data on the volume and the cluster still lists this member: restart from the data;
    * data on the volume but the cluster says this member was removed: the data can never be
      used again, so it is deleted and the pod joins as a new member;
    * no data and no cluster answers: a pod of the initial set bootstraps (``new``) with the
      initial cluster built from the members' stable DNS names; any other pod waits (exits
      non-zero, so the kubelet retries) until the cluster answers;
    * no data and the cluster answers: if a started member has this pod's name, its volume was
      lost, so that member is removed first; then the pod is added (unless it already was)
      and joins with ``existing``.

``prestop``
    Hand leadership to another member before the pod stops (the server's SIGTERM handling
    transfers it too; doing it first shortens the leaderless window), and remove the member
    when its ordinal is at or above the desired replica count read from the topology file.

``prune``
    Remove every member whose ordinal is at or above ``--replicas``. Run after each sync by
    a hook Job, because a running pod only sees a new replica count once the kubelet refreshes
    its ConfigMap volume, which can be after a scale-down has already stopped it.

Only the standard library is used: the image has python3 and the ``kvstore`` command.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

CLI = "kvstore"
CLI_TIMEOUT_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Member:
    """One line of ``kvstore member list``: id (hex), name, peer and client URLs."""

    member_id: str
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]

    @property
    def started(self) -> bool:
        """A member that has run publishes its client URLs; one only added has none."""
        return bool(self.client_urls)


@dataclasses.dataclass(frozen=True)
class Topology:
    """Where the members live: the StatefulSet name and how to build their URLs."""

    statefulset: str
    peer_domain: str
    peer_scheme: str
    peer_port: int
    client_scheme: str
    client_port: int

    def pod_name(self, ordinal: int) -> str:
        """The name of the pod (and member) with ``ordinal``."""
        return f"{self.statefulset}-{ordinal}"

    def peer_url(self, ordinal: int) -> str:
        """The peer URL of ``ordinal``, from its stable DNS name."""
        host = f"{self.pod_name(ordinal)}.{self.peer_domain}"
        return f"{self.peer_scheme}://{host}:{self.peer_port}"

    def client_url(self, ordinal: int) -> str:
        """The client URL of ``ordinal``, from its stable DNS name."""
        host = f"{self.pod_name(ordinal)}.{self.peer_domain}"
        return f"{self.client_scheme}://{host}:{self.client_port}"

    def ordinal_of(self, name: str) -> int | None:
        """The ordinal in a member name of this StatefulSet, or None for other names."""
        prefix = f"{self.statefulset}-"
        suffix = name.removeprefix(prefix)
        if suffix == name or not suffix.isdigit():
            return None
        return int(suffix)


@dataclasses.dataclass(frozen=True)
class StartPlan:
    """What ``start`` does: members to remove, whether to add self, and the serve settings."""

    action: str  # restart | bootstrap | join | rejoin | wipe-and-join | wait
    remove_ids: tuple[str, ...] = ()
    add_self: bool = False
    wipe_data: bool = False
    initial_cluster: str = ""
    state: str = ""


def parse_member_list(text: str) -> list[Member]:
    """Parse ``kvstore member list`` output (etcdctl's simple format).

    Each line is ``id, status, name, peer-urls, client-urls, is-learner``; fields are separated
    by ", " and several URLs within a field by ",". An unstarted member has an empty name and
    empty client URLs.
    """
    members: list[Member] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(", ")]
        if len(fields) < 5:
            raise ValueError(f"unexpected member list line: {line!r}")
        peers = tuple(u for u in fields[3].split(",") if u)
        clients = tuple(u for u in fields[4].split(",") if u)
        members.append(Member(fields[0], fields[2], peers, clients))
    return members


def initial_cluster(pairs: Sequence[tuple[str, str]]) -> str:
    """The ``--initial-cluster`` value: ``name=peer-url`` pairs joined by commas."""
    return ",".join(f"{name}={url}" for name, url in pairs)


def bootstrap_cluster(topology: Topology, replicas: int) -> str:
    """The initial cluster of a new deployment: ordinals 0..replicas-1 by DNS name."""
    return initial_cluster([(topology.pod_name(i), topology.peer_url(i)) for i in range(replicas)])


def plan_start(
    topology: Topology,
    ordinal: int,
    replicas: int,
    has_data: bool,
    members: Sequence[Member] | None,
) -> StartPlan:
    """Decide how pod ``ordinal`` starts. ``members`` is None when no cluster answered."""
    name = topology.pod_name(ordinal)
    peer_url = topology.peer_url(ordinal)
    if members is None:
        if has_data:
            return StartPlan(
                "restart", state="existing", initial_cluster=bootstrap_cluster(topology, replicas)
            )
        if ordinal < replicas:
            return StartPlan(
                "bootstrap", state="new", initial_cluster=bootstrap_cluster(topology, replicas)
            )
        return StartPlan("wait")
    mine = [m for m in members if m.name == name or peer_url in m.peer_urls]
    others = [m for m in members if m not in mine]
    if has_data and mine:
        cluster = [(m.name, m.peer_urls[0]) for m in members if m.name and m.peer_urls]
        return StartPlan("restart", state="existing", initial_cluster=initial_cluster(cluster))
    started_self = [m for m in mine if m.started]
    remove_ids = tuple(m.member_id for m in started_self)
    add_self = not mine or bool(started_self)
    cluster = [(m.name, m.peer_urls[0]) for m in others if m.name and m.peer_urls]
    cluster.append((name, peer_url))
    if has_data:
        action = "wipe-and-join"
    elif started_self:
        action = "rejoin"
    else:
        action = "join"
    return StartPlan(
        action,
        remove_ids=remove_ids,
        add_self=add_self,
        wipe_data=has_data,
        initial_cluster=initial_cluster(cluster),
        state="existing",
    )


def plan_prune(topology: Topology, replicas: int, members: Sequence[Member]) -> list[Member]:
    """Members that belong to ordinals at or above ``replicas``, highest ordinal first.

    A member added but never started has no name; its peer URL identifies its ordinal.
    """
    doomed: list[tuple[int, Member]] = []
    for member in members:
        ordinal = topology.ordinal_of(member.name) if member.name else None
        if ordinal is None:
            for candidate in range(replicas, replicas + 256):
                if topology.peer_url(candidate) in member.peer_urls:
                    ordinal = candidate
                    break
        if ordinal is not None and ordinal >= replicas:
            doomed.append((ordinal, member))
    return [m for _, m in sorted(doomed, key=lambda pair: -pair[0])]


def handoff_target(
    topology: Topology, ordinal: int, replicas: int, members: Sequence[Member]
) -> Member | None:
    """The started member, other than ``ordinal``, that stays after a scale-down, lowest first."""
    candidates: list[tuple[int, Member]] = []
    for member in members:
        other = topology.ordinal_of(member.name)
        if other is not None and other != ordinal and other < replicas and member.started:
            candidates.append((other, member))
    return min(candidates, key=lambda pair: pair[0])[1] if candidates else None


# --- I/O below: the environment, the CLI and the data directory ------------------------------


def topology_from_env() -> Topology:
    """The topology the StatefulSet describes in the container's environment."""
    return Topology(
        statefulset=os.environ["MEMBERSHIP_STATEFULSET"],
        peer_domain=os.environ["MEMBERSHIP_PEER_DOMAIN"],
        peer_scheme=os.environ["MEMBERSHIP_PEER_SCHEME"],
        peer_port=int(os.environ["MEMBERSHIP_PEER_PORT"]),
        client_scheme=os.environ["MEMBERSHIP_CLIENT_SCHEME"],
        client_port=int(os.environ["MEMBERSHIP_CLIENT_PORT"]),
    )


def tls_args() -> list[str]:
    """The CLI's TLS flags when the chart mounted a client certificate."""
    args: list[str] = []
    for flag, var in (("--cacert", "CLI_CACERT"), ("--cert", "CLI_CERT"), ("--key", "CLI_KEY")):
        value = os.environ.get(var)
        if value:
            args.append(f"{flag}={value}")
    return args


def run_cli(args: Sequence[str], endpoints: Sequence[str]) -> str:
    """Run ``kvstore <args> --endpoints ...`` and return stdout; raise on failure."""
    command = [CLI, *args, f"--endpoints={','.join(endpoints)}", *tls_args()]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=CLI_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip() or result.stdout}")
    return result.stdout


def list_members(endpoints: Sequence[str]) -> list[Member] | None:
    """The cluster's members, or None when no endpoint answers."""
    try:
        return parse_member_list(run_cli(["member", "list"], endpoints))
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        log(f"member list failed: {error}")
        return None


def log(message: str) -> None:
    """One line on stderr, where the kubelet collects it."""
    print(f"membership: {message}", file=sys.stderr, flush=True)


def read_replicas(path: Path) -> int:
    """The desired replica count from the topology ConfigMap's file."""
    return int(path.read_text().strip())


def peer_endpoints(topology: Topology, ordinal: int, replicas: int) -> list[str]:
    """Client URLs of the other members of the desired set, by stable DNS name."""
    count = max(replicas, ordinal + 1)
    return [topology.client_url(i) for i in range(count) if i != ordinal]


def discover(
    topology: Topology, ordinal: int, replicas: int, seconds: float
) -> list[Member] | None:
    """Ask the other members for the member list until one answers or ``seconds`` pass."""
    endpoints = peer_endpoints(topology, ordinal, replicas)
    if not endpoints:
        return None
    deadline = time.monotonic() + seconds
    while True:
        members = list_members(endpoints)
        if members is not None or time.monotonic() >= deadline:
            return members
        time.sleep(2.0)


def ordinal_from_pod_name(topology: Topology, pod_name: str) -> int:
    """This pod's ordinal, from the name the downward API gives it."""
    ordinal = topology.ordinal_of(pod_name)
    if ordinal is None:
        raise SystemExit(f"pod name {pod_name!r} does not belong to {topology.statefulset}")
    return ordinal


def start(replicas_file: Path, data_dir: Path, discovery_seconds: float) -> int:
    """Carry out plan_start and exec the server."""
    topology = topology_from_env()
    ordinal = ordinal_from_pod_name(topology, os.environ["POD_NAME"])
    replicas = read_replicas(replicas_file)
    has_data = data_dir.is_dir() and any(data_dir.iterdir())
    members = discover(topology, ordinal, replicas, 0 if has_data else discovery_seconds)
    plan = plan_start(topology, ordinal, replicas, has_data, members)
    log(f"ordinal={ordinal} replicas={replicas} has_data={has_data} action={plan.action}")
    if plan.action == "wait":
        log("no cluster answers and this pod is not in the initial set; retrying later")
        return 1
    endpoints = peer_endpoints(topology, ordinal, replicas)
    for member_id in plan.remove_ids:
        log(f"removing stale member {member_id} (its volume was lost)")
        run_cli(["member", "remove", member_id], endpoints)
    if plan.add_self:
        name = topology.pod_name(ordinal)
        run_cli(["member", "add", name, f"--peer-urls={topology.peer_url(ordinal)}"], endpoints)
    if plan.wipe_data:
        log(f"this member was removed from the cluster; deleting its old data in {data_dir}")
        shutil.rmtree(data_dir)
    env = dict(os.environ)
    env["KVSTORE_INITIAL_CLUSTER"] = plan.initial_cluster
    env["KVSTORE_INITIAL_CLUSTER_STATE"] = plan.state
    os.execvpe(CLI, [CLI, "serve"], env)  # noqa: S606 - fixed argv: become the server
    return 0  # pragma: no cover - execvpe does not return


def prestop(replicas_file: Path) -> int:
    """Hand over leadership; leave the cluster when scaled away. Never blocks the stop."""
    topology = topology_from_env()
    ordinal = ordinal_from_pod_name(topology, os.environ["POD_NAME"])
    replicas = read_replicas(replicas_file)
    own = [topology.client_url(ordinal)]
    members = list_members(own)
    if members is None:
        return 0
    target = handoff_target(topology, ordinal, replicas, members)
    if target is not None:
        try:
            run_cli(["move-leader", target.member_id], own)
            log(f"leadership moved to {target.name}")
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            log(f"no leadership handoff ({error})")
    if ordinal >= replicas:
        for member in members:
            if member.name == topology.pod_name(ordinal):
                try:
                    run_cli(
                        ["member", "remove", member.member_id],
                        peer_endpoints(topology, ordinal, replicas),
                    )
                    log("removed this member: scaled down")
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    log(f"could not remove this member now, the prune job will: {error}")
    return 0


def prune(replicas: int, endpoints: Sequence[str]) -> int:
    """Remove the members of ordinals at or above ``replicas``."""
    topology = topology_from_env()
    members = parse_member_list(run_cli(["member", "list"], endpoints))
    for member in plan_prune(topology, replicas, members):
        log(f"removing {member.name or member.peer_urls} ({member.member_id}): scaled down")
        run_cli(["member", "remove", member.member_id], endpoints)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch the three commands."""
    parser = argparse.ArgumentParser(prog="membership.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start")
    sub.add_parser("prestop")
    prune_parser = sub.add_parser("prune")
    prune_parser.add_argument("--replicas", type=int, required=True)
    prune_parser.add_argument("--endpoints", required=True)
    args = parser.parse_args(argv)
    replicas_file = Path(
        os.environ.get("MEMBERSHIP_REPLICAS_FILE", "/etc/kvstore/topology/replicas")
    )
    if args.command == "start":
        return start(
            replicas_file,
            Path(os.environ["KVSTORE_DATA_DIR"]),
            float(os.environ.get("MEMBERSHIP_DISCOVERY_SECONDS", "20")),
        )
    if args.command == "prestop":
        return prestop(replicas_file)
    return prune(args.replicas, args.endpoints.split(","))


if __name__ == "__main__":
    raise SystemExit(main())
