"""A blocking wrapper around :class:`~kvstore.client.Client` for scripts and tests.

The async client runs on a private event loop in a daemon thread (gRPC's asyncio channels
belong to the loop that made them); each method submits a coroutine there and waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import grpc

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.client._async import DEFAULT_TIMEOUT_S, Client

T = TypeVar("T")


class SyncClient:
    """Blocking calls with the same names and arguments as :class:`Client`."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        rounds: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def make() -> Client:
            return Client(endpoints, timeout=timeout, rounds=rounds, credentials=credentials)

        self.aio = self._run(make())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close the channels and stop the loop thread."""
        self._run(self.aio.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(
        self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False
    ) -> rpc_pb2.PutResponse:
        """See :meth:`Client.put`."""
        return self._run(self.aio.put(key, value, lease=lease, prev_kv=prev_kv))

    def get(
        self,
        key: bytes,
        *,
        range_end: bytes = b"",
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> rpc_pb2.RangeResponse:
        """See :meth:`Client.get`."""
        return self._run(
            self.aio.get(
                key,
                range_end=range_end,
                prefix=prefix,
                revision=revision,
                limit=limit,
                serializable=serializable,
                keys_only=keys_only,
                count_only=count_only,
            )
        )

    def delete(
        self, key: bytes, *, prefix: bool = False, range_end: bytes = b"", prev_kv: bool = False
    ) -> rpc_pb2.DeleteRangeResponse:
        """See :meth:`Client.delete`."""
        return self._run(self.aio.delete(key, prefix=prefix, range_end=range_end, prev_kv=prev_kv))

    def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """See :meth:`Client.txn`."""
        return self._run(self.aio.txn(request))

    def compact(self, revision: int) -> rpc_pb2.CompactionResponse:
        """See :meth:`Client.compact`."""
        return self._run(self.aio.compact(revision))

    def lease_grant(self, ttl: int, lease_id: int = 0) -> rpc_pb2.LeaseGrantResponse:
        """See :meth:`Client.lease_grant`."""
        return self._run(self.aio.lease_grant(ttl, lease_id))

    def lease_revoke(self, lease_id: int) -> rpc_pb2.LeaseRevokeResponse:
        """See :meth:`Client.lease_revoke`."""
        return self._run(self.aio.lease_revoke(lease_id))

    def lease_time_to_live(
        self, lease_id: int, keys: bool = False
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """See :meth:`Client.lease_time_to_live`."""
        return self._run(self.aio.lease_time_to_live(lease_id, keys))

    def lease_keep_alive_once(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
        """See :meth:`Client.lease_keep_alive_once`."""
        return self._run(self.aio.lease_keep_alive_once(lease_id))

    def member_list(self) -> rpc_pb2.MemberListResponse:
        """See :meth:`Client.member_list`."""
        return self._run(self.aio.member_list())

    def member_add(
        self, peer_urls: Sequence[str], learner: bool = False
    ) -> rpc_pb2.MemberAddResponse:
        """See :meth:`Client.member_add`."""
        return self._run(self.aio.member_add(peer_urls, learner))

    def member_remove(self, member_id: int) -> rpc_pb2.MemberRemoveResponse:
        """See :meth:`Client.member_remove`."""
        return self._run(self.aio.member_remove(member_id))

    def member_promote(self, member_id: int) -> rpc_pb2.MemberPromoteResponse:
        """See :meth:`Client.member_promote`."""
        return self._run(self.aio.member_promote(member_id))

    def status(self, endpoint: str | None = None) -> rpc_pb2.StatusResponse:
        """See :meth:`Client.status`."""
        return self._run(self.aio.status(endpoint))

    def move_leader(self, target: int) -> rpc_pb2.MoveLeaderResponse:
        """See :meth:`Client.move_leader`."""
        return self._run(self.aio.move_leader(target))

    def alarms(self) -> rpc_pb2.AlarmResponse:
        """See :meth:`Client.alarms`."""
        return self._run(self.aio.alarms())

    def disarm(self) -> rpc_pb2.AlarmResponse:
        """See :meth:`Client.disarm`."""
        return self._run(self.aio.disarm())
