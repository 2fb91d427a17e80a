"""The few file-system operations whose ordering durability depends on."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a created, renamed or deleted file) durable.

    Without it a freshly created segment or a renamed snapshot may vanish after a power
    loss even though its own contents were fsynced.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) durably: each new directory's entry is
    fsynced in its parent, so a power loss cannot take away a directory whose files were
    fsynced."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_dir(path.parent)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte (``os.write`` may write fewer than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_file_atomically(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` so that after a crash it either does not exist or is
    complete: write a temporary file, fsync it, rename it over, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def data_dir_bytes(directory: Path) -> int:
    """Bytes of the regular files under ``directory`` (0 if it is gone): what a member's
    data takes on disk."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # a segment or snapshot removed meanwhile
                continue
    return total
