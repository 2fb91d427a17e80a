"""One run of a peer suite against a fresh 3-member cluster, inside its own namespaces.

``python -m tests.peers.runner SUITE KIND OUT`` starts a cluster of ``KIND`` (``kvstore`` or
``etcd``) laid out as pifpaf lays out etcd (see tests/peers/suites.py), runs the suite
against it and leaves in ``OUT``: ``results.xml`` (pytest's JUnit report) or
``results.jsonl`` (the Go checks), ``output.log`` (the suite's own output), ``cluster/``
(the members' data and logs) and ``run.json`` (exit status and seconds). It is meant to run
under :func:`tests.peers.launch.namespaced`: in a network namespace of its own the first
member can take 127.0.0.1:2379, and in a PID namespace of its own the suites' ``pgrep -f
'--name pifpaf[12]'`` finds this cluster's members and no process outside it. Exit status
0 when the suite ran (whatever its results), 2 with a message when it could not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from kvstore.verify.cluster import RAFT_FLAGS, Kind, LocalCluster, etcd_command
from tests.peers.suites import FIRST_CLIENT_PORT, MEMBER_NAMES, SUITES, Suite, cache_dir

SUITE_TIMEOUT_S = 420.0
"""A whole suite's time limit: python-etcd3, the longest, takes about 130 s."""
CLUSTER_TOKEN = "etcd-cluster-pifpaf"


def results_path(suite: Suite, out: Path) -> Path:
    """Where a run of ``suite`` in ``out`` leaves its results."""
    return out / ("results.xml" if suite.is_python else "results.jsonl")


def pifpaf_cluster(root: Path, kind: Kind) -> LocalCluster:
    """Three members named pifpaf0..2, the first on 127.0.0.1:2379. Both kinds get the
    short Raft timings of the store's own cluster tests (etcd takes the same flags)."""
    cluster = LocalCluster(root, 0, kind=kind, extra=RAFT_FLAGS, cluster_name=CLUSTER_TOKEN)
    cluster.members = [
        cluster.new_member(name=name, host="127.0.0.1" if i == 0 else None)
        for i, name in enumerate(MEMBER_NAMES)
    ]
    cluster.members[0].client_port = FIRST_CLIENT_PORT
    return cluster


def reference_etcd_version() -> str:
    """``v3.4.23`` for the etcd on PATH: the version a suite is told it runs against."""
    out = subprocess.run(
        [etcd_command()[0], "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("etcd Version:"):
            return "v" + line.split(":", 1)[1].strip()
    raise RuntimeError(f"etcd --version printed no version: {out[:200]!r}")


def suite_environment(suite: Suite, endpoint: str) -> dict[str, str]:
    """The harness's environment for the suite, minus what would mislead it: the
    harness's PYTHONPATH (the suite has its own venv) and ETCDCTL_* (etcdctl 3.4 refuses
    ``--endpoints`` when ETCDCTL_ENDPOINTS is set too, and the suites pass the flag)."""
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("ETCDCTL_")
    }
    env["ETCDCTL_API"] = "3"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the cached sources stay as unpacked
    if suite.endpoint_env:
        env[suite.endpoint_env] = endpoint
    if suite.version_env:
        env[suite.version_env] = reference_etcd_version()
    return env


def suite_command(suite: Suite, cache: Path, out: Path, cluster: LocalCluster) -> list[str]:
    if suite.is_python:
        return [
            str(suite.python(cache)), "-m", "pytest", "-p", "no:cacheprovider",
            f"--junitxml={results_path(suite, out)}", "-o", "junit_family=xunit2",
            *suite.pytest_args,
        ]  # fmt: skip
    return [
        str(suite.goclient(cache)),
        "--endpoints",
        ",".join(m.client_url for m in cluster.members),
    ]


def run(suite: Suite, kind: Kind, out: Path) -> int:
    """Start the cluster, run the suite, stop the cluster; the suite's exit status."""
    cache = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "work"
    if suite.is_python:
        # A copy per run: the suites write into their own tree (.hypothesis/, reports).
        shutil.copytree(suite.source_dir(cache), workdir, dirs_exist_ok=True)
    else:
        workdir.mkdir(exist_ok=True)
    cluster = pifpaf_cluster(out / "cluster", kind)
    started = time.monotonic()
    try:
        cluster.start()
        cluster.wait_healthy()
        command = suite_command(suite, cache, out, cluster)
        env = suite_environment(suite, cluster.members[0].client_url)
        with ExitStack() as files:
            log = files.enter_context((out / "output.log").open("wb"))
            # pytest writes its report itself; the Go checks print theirs on stdout
            report = (
                log if suite.is_python else files.enter_context(results_path(suite, out).open("wb"))
            )
            proc = subprocess.run(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=report,
                stderr=subprocess.STDOUT if suite.is_python else log,
                timeout=SUITE_TIMEOUT_S,
                check=False,
            )
        status = proc.returncode
    finally:
        cluster.stop()
    seconds = round(time.monotonic() - started, 1)
    (out / "run.json").write_text(json.dumps({"returncode": status, "seconds": seconds}))
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.peers.runner", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("kind", choices=[k.value for k in Kind])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        run(SUITES[args.suite], Kind(args.kind), args.out)
    except (OSError, subprocess.SubprocessError, TimeoutError, RuntimeError) as e:
        print(f"peers runner: {args.suite} against {args.kind}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
