"""Starting runs of a peer suite, each in network, PID and mount namespaces of its own.

The suites want 127.0.0.1:2379 and SIGSTOP whatever ``pgrep -f '--name pifpaf[12]'``
finds, which on a shared machine could be someone else's process. ``unshare`` gives each
run its own loopback (brought up before the runner starts) and its own process table (a
fresh /proc), so the etcd run and the store run of one suite go side by side and neither
can touch the other or anything outside. When the runner (PID 1 there) exits or is killed,
the kernel kills everything left in its namespace: no member outlives its run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.tooling import ROOT

NAMESPACES = ("--net", "--pid", "--fork", "--mount-proc", "--kill-child")


def namespaced(argv: list[str]) -> list[str]:
    """``argv`` under unshare, with the namespace's loopback interface up."""
    unshare = shutil.which("unshare") or "unshare"
    return [
        unshare, *NAMESPACES, "--",
        "/bin/sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv,
    ]  # fmt: skip


@functools.cache
def unavailable_reason() -> str | None:
    """Why runs cannot get namespaces of their own here (unshare needs root), or None."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed"
    probe = subprocess.run(
        namespaced(["true"]), capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return f"cannot create network and PID namespaces: {probe.stderr.strip()[:200]}"
    return None


def start(suite: str, kind: str, out: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.peers.runner suite kind out`` in its namespaces; its
    messages go to ``out/runner.log``."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "tests.peers.runner", suite, kind, str(out)]
    with (out / "runner.log").open("wb") as log:
        return subprocess.Popen(
            namespaced(argv), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
