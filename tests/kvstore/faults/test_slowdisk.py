"""The slow-fsync shim really slows fsync and fdatasync, only while its control file asks,
and hands back the real call's result and errno; the latency report splits operations by
fault episode."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

from kvstore.verify.history import History, Op, OpKind
from kvstore.verify.nemesis import Fault
from kvstore.verify.runner import RunResult, Scenario
from kvstore.verify.slowdisk import SHIM_SOURCE, SlowDisk, build_shim, unavailable_reason
from tests.tooling import missing

DELAY_MS = 300

# Times os.fsync and os.fdatasync on a file, calls fsync on a closed descriptor, and calls
# the C library's fsync through ctypes (which resolves to the preloaded shim first) to see
# errno as C sees it: untouched by a successful call, the real one after a failed call.
PROBE = """
import ctypes, json, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
bad = int(sys.argv[2])
os.write(fd, b"x")
out = {}
for name, call in (("fsync", os.fsync), ("fdatasync", os.fdatasync)):
    t = time.monotonic()
    call(fd)
    out[name] = time.monotonic() - t
try:
    os.fsync(bad)
except OSError as exc:
    out["bad_errno"] = exc.errno
libc = ctypes.CDLL(None, use_errno=True)
ctypes.set_errno(0)
out["ok_rc"] = libc.fsync(fd)
out["ok_errno"] = ctypes.get_errno()
ctypes.set_errno(0)
out["bad_rc"] = libc.fsync(bad)
out["bad_c_errno"] = ctypes.get_errno()
print(json.dumps(out))
"""


def probe(disk: SlowDisk, tmp_path: Path) -> dict[str, float]:
    bad = os.open(os.devnull, os.O_RDONLY)
    os.close(bad)  # a descriptor number that is surely closed in the child too
    env = {**os.environ, **disk.env}
    cmd = [sys.executable, "-c", PROBE, str(tmp_path / "data"), str(bad)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=60)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def test_shim_delays_fsync_only_while_asked_and_keeps_errno(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        missing(reason)
    assert SHIM_SOURCE.is_file()
    disk = SlowDisk(build_shim(tmp_path / "shim"), tmp_path / "control")
    assert SlowDisk.of(disk.env) == disk

    disk.slow(DELAY_MS)
    assert disk.control.read_text().strip() == str(DELAY_MS)
    slow = probe(disk, tmp_path)
    assert slow["fsync"] >= DELAY_MS / 1000, slow
    assert slow["fdatasync"] >= DELAY_MS / 1000, slow

    disk.fast()
    assert not disk.control.exists()
    fast = probe(disk, tmp_path)
    # Nothing but a real fsync of one byte and a failed open(): far below the delay.
    assert fast["fsync"] < DELAY_MS / 2000, fast
    assert fast["fdatasync"] < DELAY_MS / 2000, fast

    for seen in (slow, fast):
        assert seen["bad_errno"] == errno.EBADF, seen
        assert seen["ok_rc"] == 0 and seen["ok_errno"] == 0, seen
        assert seen["bad_rc"] == -1 and seen["bad_c_errno"] == errno.EBADF, seen


def test_latency_report_splits_operations_by_episode() -> None:
    h = History()
    h.add(Op(0, OpKind.READ, "k", 1.0, 1.01))  # before the episode: 10 ms
    h.add(Op(0, OpKind.READ, "k", 2.0, 2.5))  # during it: 500 ms
    h.add(Op(1, OpKind.READ, "k", 2.5, 2.9))  # during it: 400 ms
    h.add(Op(1, OpKind.WRITE, "k", 2.6, None, value="a"))  # unknown outcome: left out
    h.add(Op(0, OpKind.READ, "k", 4.0, 4.02))  # after it: 20 ms
    h.add(Op(-1, OpKind.READ, "k", 5.0, 5.001))  # the final reads: left out
    episode = {"fault": Fault.SLOW_DISK.value, "at": 1.5, "hold": 1.4, "draw": 0}
    log: list[dict[str, object]] = [
        {**episode, "did": "slow fsync 400 ms on m1 (leader)", "t": 1.9},
        {**episode, "did": "undone", "t": 3.3},
        {**episode, "at": 3.5, "did": "skipped: no agreed leader", "t": 3.6},
    ]
    scenario = Scenario("unit", 3, [Fault.SLOW_DISK], 5, 1)
    result = RunResult(scenario, h, log, [], {}, {}, [], 5.0)
    did = "slow fsync 400 ms on m1 (leader)"
    assert result.fault_windows(Fault.SLOW_DISK) == [(1.9, 3.3, did)]
    assert result.latency_report(Fault.SLOW_DISK) == (
        f"{did}: 2 ops, p50 450 ms, p99 499 ms, max 500 ms; "
        "otherwise: 2 ops, p50 15 ms, p99 20 ms, max 20 ms"
    )
