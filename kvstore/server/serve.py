"""``kvstore serve``: run one member in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from kvstore.server import logs, tracing
from kvstore.server.config import ServerConfig
from kvstore.server.member import Member, StartupError
from kvstore.storage.errors import StorageError

log = logging.getLogger(__name__)


async def serve(config: ServerConfig) -> int:
    """Start a member, wait for a stop signal (or removal), stop it gracefully."""
    member = Member(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await member.start()
    except (StartupError, StorageError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    waiters = [
        loop.create_task(stop.wait()),
        loop.create_task(member.stopped.wait()),
    ]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in waiters:
        task.cancel()
    await member.stop()
    return 1 if member.failed else 0


def run(config: ServerConfig) -> int:
    """Configure logging and tracing, then serve; returns the exit status."""
    logs.configure(config.name, config.log_level)
    tracing.configure(config.name)
    try:
        # uvloop: the member's one event loop carries gRPC, Raft and the log; libuv's
        # loop costs less per callback than the standard one.
        return uvloop.run(serve(config))
    except KeyboardInterrupt:
        return 0
    finally:
        sys.stderr.flush()
