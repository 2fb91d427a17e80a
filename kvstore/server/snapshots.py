"""Writing a member's snapshot without holding up the event loop or the log.

A snapshot of a large store is seconds of encoding and a file of hundreds of megabytes.
:class:`SnapshotWriter` encodes the state a slice of keys at a time between other work
(the encoder reads the state as of when it was made, see
:class:`~kvstore.storage.mvcc.SnapshotEncoder`), then a worker thread assembles the bytes
and writes the file while the Raft loop goes on saving entries. The driver takes the
written snapshot between two ``Ready``\\ s and commits it (WAL marker, log compaction):
only that step touches the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from kvstore.raft.types import ConfState, Snapshot
from kvstore.server.statemachine import StateEncoder
from kvstore.storage.disk_storage import DiskStorage

log = logging.getLogger(__name__)

SLICE_KEYS = 2_000
"""Keys encoded before other work may run (a few milliseconds)."""


class SnapshotWriter:
    """One snapshot in the making at a time."""

    def __init__(
        self, storage: DiskStorage, on_written: Callable[[], None], on_failed: Callable[[], None]
    ) -> None:
        self._storage = storage
        self._on_written = on_written
        self._on_failed = on_failed
        self._job: asyncio.Task[None] | None = None
        self._written: Snapshot | None = None

    @property
    def busy(self) -> bool:
        """Whether a snapshot is being written or waits to be committed."""
        return self._job is not None or self._written is not None

    def start(self, encoder: StateEncoder, index: int, term: int, conf_state: ConfState) -> None:
        """Write the state ``encoder`` holds as the snapshot at ``index``; ``on_written``
        is called once it can be taken."""
        assert not self.busy, "one snapshot at a time"
        self._job = asyncio.get_running_loop().create_task(
            self._write(encoder, index, term, conf_state)
        )

    def take(self) -> Snapshot | None:
        """The snapshot written since the last call, if any."""
        snap, self._written = self._written, None
        return snap

    async def cancel(self) -> None:
        """Give up the snapshot in the making (the member is stopping)."""
        job = self._job
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job

    async def _write(
        self, encoder: StateEncoder, index: int, term: int, conf_state: ConfState
    ) -> None:
        try:
            while not encoder.encode(SLICE_KEYS):
                await asyncio.sleep(0)
            encoder.close()

            def assemble_and_write() -> Snapshot:
                return self._storage.write_snapshot(index, term, conf_state, encoder.assemble())

            snap = await asyncio.to_thread(assemble_and_write)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The disk failed under the file: stop, as a failing log write does.
            log.exception("writing the snapshot at index %d failed; stopping this member", index)
            self._on_failed()
            return
        finally:
            encoder.close()
            self._job = None
        self._written = snap
        self._on_written()
