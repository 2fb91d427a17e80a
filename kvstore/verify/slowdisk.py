"""A slow disk for one member: its fsyncs sleep first, switched on and off at run time.

The member is started with ``LD_PRELOAD`` set to a small shim (``slowfsync.c``, shipped in
this package and compiled with the system ``cc`` when a run needs it) that wraps
``fsync`` and ``fdatasync``: each call reads a control file named by
``KVSTORE_SLOW_FSYNC_FILE`` and, when it holds a positive number of milliseconds, sleeps
that long before the real call. Writes, reads and the filesystem itself stay as fast as
before; only waits for durability get slower, which is what a saturated or failing disk
does to a Raft member (every entry is fsynced before it counts).

Why a shim and not a slow device: a throttled block device (device-mapper ``delay``, cgroup
io.max) or a FUSE filesystem needs root, slows every read and write too, and is shared by
whatever else lives on it; the shim is per process and needs only a C compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SHIM_SOURCE = Path(__file__).with_name("slowfsync.c")
SHIM_NAME = "libslowfsync.so"
CONTROL_ENV = "KVSTORE_SLOW_FSYNC_FILE"
"""The variable the shim reads the control file's path from (``slowfsync.c`` agrees)."""


class SlowDiskUnavailable(RuntimeError):
    """The shim cannot be built here (no C compiler)."""


def unavailable_reason() -> str | None:
    """Why slow disks cannot be made here, or None when they can."""
    if shutil.which("cc") is None:
        return "cc is not installed (the slow-fsync shim is compiled at run time)"
    return None


def build_shim(directory: Path) -> Path:
    """Compile the shim into ``directory``; return the shared library's path."""
    reason = unavailable_reason()
    if reason is not None:
        raise SlowDiskUnavailable(reason)
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / SHIM_NAME
    cmd = ["cc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(library), str(SHIM_SOURCE), "-ldl"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SlowDiskUnavailable(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return library


@dataclass(frozen=True)
class SlowDisk:
    """One process's fsync delay: the compiled shim and that process's control file."""

    library: Path
    control: Path

    @property
    def env(self) -> dict[str, str]:
        """The environment that loads the shim and points it at the control file."""
        return {"LD_PRELOAD": str(self.library), CONTROL_ENV: str(self.control)}

    @classmethod
    def of(cls, env: Mapping[str, str]) -> SlowDisk | None:
        """The slow disk an environment made by :attr:`env` controls, or None."""
        library, control = env.get("LD_PRELOAD"), env.get(CONTROL_ENV)
        if library is None or control is None:
            return None
        return cls(Path(library), Path(control))

    def slow(self, ms: int) -> None:
        """Make every later fsync sleep ``ms`` milliseconds first.

        Written to a temporary file and renamed over the control file, so the shim never
        reads a half-written number.
        """
        tmp = self.control.with_name(f".{self.control.name}.tmp")
        tmp.write_text(f"{ms}\n")
        os.replace(tmp, self.control)

    def fast(self) -> None:
        """Back to the real fsync's speed (the shim finds no control file)."""
        self.control.unlink(missing_ok=True)
