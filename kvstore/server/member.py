"""One running member: storage, Raft node, state machine, gRPC servers, metrics endpoint.

:class:`Member` wires the parts together, starts them in dependency order and stops them in
reverse: on SIGTERM a leader first hands leadership to the most up-to-date voter, then the
member stops accepting requests, lets in-flight calls finish, syncs the log and exits.

Identity: a member of a new cluster derives its id and the cluster id from the flags
(:mod:`kvstore.server.ids`); a member joining an existing cluster asks the peers listed in
``--initial-cluster`` for the member table and finds itself by its peer URLs (it must have
been added with ``member add`` first). Either way the ids are stored in the WAL metadata
and read back on restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import ssl
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.api.gen.kvstorepb import internal_pb2, internal_pb2_grpc
from kvstore.raft.types import NONE, ConfState
from kvstore.server import errors, ids, probes, tracing
from kvstore.server.auth_api import AuthApi
from kvstore.server.auth_service import AuthService, CallIdentifier
from kvstore.server.config import ServerConfig, TLSConfig, parse_url
from kvstore.server.edges import RejectMalformed
from kvstore.server.etcd import EtcdServer
from kvstore.server.gateway import Gateway
from kvstore.server.http import CORS, HttpServer
from kvstore.server.http_sites import ClientSite, MetricsSite
from kvstore.server.lessor import LeaseClock
from kvstore.server.metrics import Metrics, new_metrics
from kvstore.server.node import Node
from kvstore.server.peer import PeerService
from kvstore.server.services import (
    ClusterService,
    KVService,
    LeaseService,
    MaintenanceService,
    Observer,
)
from kvstore.server.statemachine import StateMachine
from kvstore.server.tokens import make_provider
from kvstore.server.transport import PEER_CHANNEL_OPTIONS, Transport, grpc_target
from kvstore.server.watch_service import WatchService
from kvstore.storage.disk_storage import DiskStorage

log = logging.getLogger(__name__)

GRPC_OVERHEAD_BYTES = 512 * 1024
"""Room on top of --max-request-bytes for gRPC framing, as etcd allows."""
MAX_PENDING_CALLS = 100_000
SHUTDOWN_BUDGET_S = 10.0
TRANSFER_BUDGET_S = 3.0


def keepalive_options(cfg: ServerConfig) -> list[tuple[str, int]]:
    """The client server's HTTP/2 keepalive policy, as etcd's: clients may ping every
    --grpc-keepalive-min-time even with no stream open. gRPC's own server default allows
    one ping per five minutes without data and answers more with GOAWAY
    ``too_many_pings``, which kube-apiserver's etcd client (30 s keepalive) gets."""
    min_time_ms = round(cfg.grpc_keepalive_min_time_s * 1000)
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", min_time_ms),
        ("grpc.keepalive_time_ms", round(cfg.grpc_keepalive_interval_s * 1000)),
        ("grpc.keepalive_timeout_ms", round(cfg.grpc_keepalive_timeout_s * 1000)),
    ]


class StartupError(Exception):
    """The member cannot start (unreachable cluster, not added, bad data dir)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this member is, stored in the WAL metadata."""

    member_id: int
    cluster_id: int
    members: tuple[internal_pb2.MemberInfo, ...]
    bootstrapped: bool = True
    """True for a member of a new cluster (``members`` is the bootstrap membership); False
    for one that joined (its membership comes from the leader's snapshot)."""

    def bootstrap_conf(self) -> ConfState:
        """The Raft membership to start from while no snapshot exists."""
        if not self.bootstrapped:
            return ConfState()
        return ConfState(
            voters=frozenset(m.id for m in self.members if not m.is_learner),
            learners=frozenset(m.id for m in self.members if m.is_learner),
        )

    def encode(self) -> bytes:
        """JSON, so an operator can read it with any tool."""
        return json.dumps(
            {
                "member_id": self.member_id,
                "cluster_id": self.cluster_id,
                "members": [
                    {
                        "id": m.id,
                        "name": m.name,
                        "peer_urls": list(m.peer_urls),
                        "is_learner": m.is_learner,
                    }
                    for m in self.members
                ],
                "bootstrapped": self.bootstrapped,
            }
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Identity:
        """The inverse of :meth:`encode`."""
        raw = json.loads(data)
        members = tuple(
            internal_pb2.MemberInfo(
                id=m["id"], name=m["name"], peer_urls=m["peer_urls"], is_learner=m["is_learner"]
            )
            for m in raw["members"]
        )
        return cls(raw["member_id"], raw["cluster_id"], members, raw.get("bootstrapped", True))


def bootstrap_identity(config: ServerConfig) -> Identity:
    """The ids of a member of a new cluster, from the flags alone."""
    members = []
    for name, urls in config.initial_members().items():
        member_id = ids.member_id(urls, config.initial_cluster_token)
        members.append(internal_pb2.MemberInfo(id=member_id, name=name, peer_urls=sorted(urls)))
    own = ids.member_id(config.initial_advertise_peer_urls, config.initial_cluster_token)
    return Identity(own, ids.cluster_id(m.id for m in members), tuple(members))


def _server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    assert tls.cert_file is not None and tls.key_file is not None
    ca = tls.trusted_ca_file.read_bytes() if tls.trusted_ca_file else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=ca,
        require_client_auth=tls.client_cert_auth,
    )


def _server_ssl(tls: TLSConfig) -> ssl.SSLContext:
    """The client TLS settings for the HTTP port (the same certificate as gRPC's)."""
    assert tls.cert_file is not None and tls.key_file is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.trusted_ca_file is not None:
        context.load_verify_locations(tls.trusted_ca_file)
    if tls.client_cert_auth:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _peer_channel_credentials(tls: TLSConfig) -> grpc.ChannelCredentials | None:
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None
    return grpc.ssl_channel_credentials(
        root_certificates=tls.trusted_ca_file.read_bytes() if tls.trusted_ca_file else None,
        private_key=tls.key_file.read_bytes(),
        certificate_chain=tls.cert_file.read_bytes(),
    )


async def join_identity(config: ServerConfig, creds: grpc.ChannelCredentials | None) -> Identity:
    """Ask the existing members who we are (``--initial-cluster-state existing``)."""
    own_urls = set(config.initial_advertise_peer_urls)
    failures: list[str] = []
    for name, url in config.initial_cluster:
        if url in own_urls:
            continue
        target = grpc_target(url)
        if creds is not None and url.startswith("https"):
            channel = grpc.aio.secure_channel(target, creds, options=PEER_CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.insecure_channel(target, options=PEER_CHANNEL_OPTIONS)
        async with channel:
            try:
                resp = await internal_pb2_grpc.PeerStub(channel).Members(
                    internal_pb2.MembersRequest(), timeout=5
                )
            except grpc.aio.AioRpcError as exc:
                failures.append(f"{name} ({url}): {exc.code().name}")
                continue
        for member in resp.members:
            if own_urls & set(member.peer_urls):
                return Identity(member.id, resp.cluster_id, tuple(resp.members), False)
        raise StartupError(
            f"this member (peer URLs {','.join(sorted(own_urls))}) is not in the cluster's "
            "member list: add it with 'member add' before starting it"
        )
    raise StartupError(
        "--initial-cluster: no existing member answered: " + "; ".join(failures or ["none listed"])
    )


class Member:
    """A running kvstore member."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics: Metrics = new_metrics()
        self.metrics.quota_bytes.set(config.quota_backend_bytes)
        self._health = HealthServicer()
        self._serving: bool | None = None
        self._grpc: grpc.aio.Server | None = None
        self._peer_grpc: grpc.aio.Server | None = None
        self._metrics_http: HttpServer | None = None
        self._client_http: HttpServer | None = None
        self._servicers: dict[str, object] = {}
        """Service name -> the servicer object gRPC calls; the HTTP gateway calls the same."""
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()
        self.failed = False
        """Set when the member stopped on a fatal error (the process then exits 1)."""
        self._stopping = False
        self.node: Node
        self.server: EtcdServer
        self.storage: DiskStorage

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover or bootstrap, then serve."""
        cfg = self.config
        peer_creds = _peer_channel_credentials(cfg.peer_tls)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        stored = await asyncio.to_thread(DiskStorage.read_metadata, cfg.data_dir)
        if stored is not None:
            # The bootstrap membership lives in the WAL metadata: the storage needs it
            # whenever no snapshot holds the membership yet.
            identity = Identity.decode(stored)
            metadata = b""
        else:
            if cfg.initial_cluster_state == "new":
                identity = bootstrap_identity(cfg)
            else:
                identity = await join_identity(cfg, peer_creds)
            metadata = identity.encode()
        self.storage = await asyncio.to_thread(
            DiskStorage.open,
            cfg.data_dir,
            conf_state=identity.bootstrap_conf(),
            metadata=metadata,
            fsync_observer=self.metrics.wal_fsync.observe,
        )
        tick = cfg.heartbeat_interval_ms / 1000
        election_ticks = max(2, cfg.election_timeout_ms // cfg.heartbeat_interval_ms)
        min_ttl = math.ceil(1.5 * cfg.election_timeout_ms / 1000)
        leases = LeaseClock(time.monotonic, min_ttl)
        holder: list[Node] = []
        sm = StateMachine(
            identity.member_id,
            identity.cluster_id,
            lambda: holder[0].term if holder else 0,
            leases,
            make_provider(cfg.auth_token, cfg.auth_token_ttl_s),
        )
        snap = self.storage.snapshot()
        if not snap.is_empty:
            sm.restore(snap.data)
        else:
            for info in identity.members:
                copy = internal_pb2.MemberInfo()
                copy.CopyFrom(info)
                sm.members[info.id] = copy
        transport = Transport(
            # The node does not exist yet; the lambdas look it up when called.
            on_unreachable=lambda mid: self.node.report_unreachable(mid),  # noqa: PLW0108
            on_snapshot_status=lambda mid, ok: self.node.report_snapshot(mid, ok),  # noqa: PLW0108
            credentials=peer_creds,
            cluster_id=identity.cluster_id,
        )
        self.node = Node(
            identity.member_id,
            self.storage,
            sm,
            transport,
            self.metrics,
            tick_interval=tick,
            election_ticks=election_ticks,
            snapshot_count=cfg.snapshot_count,
        )
        holder.append(self.node)
        self.server = EtcdServer(cfg, self.node, sm, transport)
        self.node.on_leader_change = self._on_leader_change
        self.node.on_tick = self._on_tick
        self.node.on_removed = self._on_removed
        self.node.on_failed = self._on_failed
        self._sync_peers()
        await self._start_grpc()
        await self._start_http()
        self.node.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._publish_attributes()))
        log.info(
            "member %x of cluster %x started",
            identity.member_id,
            identity.cluster_id,
            extra={"data_dir": str(cfg.data_dir)},
        )

    async def _start_grpc(self) -> None:
        cfg = self.config
        options = [
            ("grpc.max_receive_message_length", cfg.max_request_bytes + GRPC_OVERHEAD_BYTES),
            ("grpc.max_send_message_length", 2**31 - 1),
            *keepalive_options(cfg),
            # Calls waiting for a handler queue here; gRPC's defaults (1,000 soft, 3,000
            # hard) cancel the excess of a burst with a bare CANCELLED. The handlers'
            # in-flight limit refuses overload with a clear error instead.
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
            ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
        ]
        server = grpc.aio.server(options=options, interceptors=[RejectMalformed()])
        auth = AuthApi(self.server, cfg.bcrypt_cost)
        observer = Observer(self.metrics, CallIdentifier(auth, cfg.client_tls.client_cert_auth))
        kv = KVService(self.server, observer)
        watch = WatchService(self.server, observer)
        lease = LeaseService(self.server, observer)
        cluster = ClusterService(self.server, observer)
        maintenance = MaintenanceService(self.server, observer)
        auth_service = AuthService(auth, observer)
        rpc_pb2_grpc.add_KVServicer_to_server(kv, server)
        rpc_pb2_grpc.add_WatchServicer_to_server(watch, server)
        rpc_pb2_grpc.add_LeaseServicer_to_server(lease, server)
        rpc_pb2_grpc.add_ClusterServicer_to_server(cluster, server)
        rpc_pb2_grpc.add_MaintenanceServicer_to_server(maintenance, server)
        rpc_pb2_grpc.add_AuthServicer_to_server(auth_service, server)
        self._servicers = {
            "etcdserverpb.KV": kv,
            "etcdserverpb.Watch": watch,
            "etcdserverpb.Lease": lease,
            "etcdserverpb.Cluster": cluster,
            "etcdserverpb.Maintenance": maintenance,
            "etcdserverpb.Auth": auth_service,
        }
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        for url in cfg.listen_client_urls:
            self._bind(server, url, cfg.client_tls, "--listen-client-urls")
        peer = grpc.aio.server(options=PEER_CHANNEL_OPTIONS)
        internal_pb2_grpc.add_PeerServicer_to_server(PeerService(self.server), peer)
        for url in cfg.listen_peer_urls:
            self._bind(peer, url, cfg.peer_tls, "--listen-peer-urls")
        await server.start()
        await peer.start()
        self._grpc, self._peer_grpc = server, peer
        await self._set_serving(False)

    @staticmethod
    def _bind(server: grpc.aio.Server, url: str, tls: TLSConfig, flag: str) -> None:
        scheme, host, port = parse_url(flag, url)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if scheme == "https":
                server.add_secure_port(address, _server_credentials(tls))
            else:
                server.add_insecure_port(address)
        except RuntimeError as exc:
            raise StartupError(f"{flag}: cannot listen on {url}: {exc}") from None

    def probe_target(self) -> probes.Target:
        """What the HTTP probes (/health, /livez, /readyz) look at."""

        async def read(serializable: bool) -> object:
            request = rpc_pb2.RangeRequest(
                key=b"health", keys_only=True, limit=1, serializable=serializable
            )
            try:
                return await self.server.range(request)
            except errors.EtcdError as exc:
                # With auth on, the probe's anonymous read is refused after it was served
                # as far as the check goes: healthy, as etcd's /health counts it.
                if exc in (errors.USER_EMPTY, errors.PERMISSION_DENIED):
                    return None
                raise

        def is_learner() -> bool:
            me = self.server.sm.members.get(self.node.member_id)
            return me is not None and me.is_learner

        return probes.Target(
            alarms=lambda: [alarm for _, alarm in self.server.sm.alarms],
            leader=lambda: self.node.status().leader,
            is_learner=is_learner,
            read=read,
            # etcd's request timeout: 5 s plus two election timeouts
            timeout_s=5 + 2 * self.config.election_timeout_ms / 1000,
        )

    async def _start_http(self) -> None:
        cfg = self.config
        target = self.probe_target()
        self._metrics_http = HttpServer(MetricsSite(self.metrics, target, self.health))
        await self._listen(self._metrics_http, cfg.listen_metrics_urls, None, "metrics")
        if cfg.listen_client_http_urls:
            limit = cfg.max_request_bytes + GRPC_OVERHEAD_BYTES
            gateway = Gateway(self._servicers, limit)
            # JSON is larger than the protobuf it carries (base64 alone adds a third).
            site = ClientSite(gateway, target, self.metrics, body_limit=4 * limit)
            self._client_http = HttpServer(site, extra_headers=CORS, drain_limit=64 * 1024)
            tls = _server_ssl(cfg.client_tls) if cfg.client_tls.enabled else None
            await self._listen(self._client_http, cfg.listen_client_http_urls, tls, "client-http")
            log.info(
                "serving the etcd v3 JSON API, /health and /metrics over HTTP on %s "
                "(gRPC stays on %s)",
                ",".join(cfg.listen_client_http_urls),
                ",".join(cfg.listen_client_urls),
            )

    async def _listen(
        self, server: HttpServer, urls: tuple[str, ...], tls: ssl.SSLContext | None, name: str
    ) -> None:
        flag = f"--listen-{name}-urls"
        for url in urls:
            scheme, host, port = parse_url(flag, url)
            try:
                await server.start(host, port, tls if scheme == "https" else None)
            except OSError as exc:
                raise StartupError(f"{flag}: cannot listen on {url}: {exc}") from None

    # -- running ----------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """Healthy: a leader is known and everything it committed is applied here."""
        st = self.node.status()
        if st.leader == NONE:
            return False, "no leader"
        if st.applied < st.commit:
            return False, f"applied index {st.applied} behind commit index {st.commit}"
        return True, ""

    def ready(self) -> tuple[bool, str]:
        """Ready: healthy and accepting requests."""
        if not self.server.accepting:
            return False, "shutting down"
        return self.health()

    async def _set_serving(self, serving: bool) -> None:
        if serving == self._serving:
            return
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set("", status)

    def _on_tick(self) -> None:
        ok, _ = self.ready()
        if ok != self._serving:
            asyncio.get_running_loop().create_task(self._set_serving(ok))
        if self.node.status().is_leader:
            self.server.expire_leases()
        kv = self.server.sm.kv
        self.metrics.db_size.set(kv.db_size)
        self.metrics.current_revision.set(kv.revision)
        self.metrics.watchers.set(len(self.server.sm.hub))
        self.metrics.slow_watchers.set(self.server.sm.hub.lagging)
        self._sync_peers()

    def _sync_peers(self) -> None:
        peers = {
            mid: tuple(m.peer_urls)
            for mid, m in self.server.sm.members.items()
            if mid != self.node.member_id
        }
        self.server.transport.set_peers(peers)

    def _on_leader_change(self, old: int, new: int) -> None:
        leases = self.server.sm.leases
        me = self.node.member_id
        if new == me:
            extend = self.config.election_timeout_ms / 1000
            leases.promote([(lease.id, lease.ttl) for lease in self.server.sm.kv.leases()], extend)
        elif old == me or leases.is_primary:
            leases.demote()

    def _on_failed(self) -> None:
        self.failed = True
        if not self._stopping:
            asyncio.get_running_loop().create_task(self.stop(fatal=True))

    def _on_removed(self) -> None:
        if not self._stopping:
            asyncio.get_running_loop().create_task(self.stop())

    async def _publish_attributes(self) -> None:
        """Tell the cluster this member's name and client URLs (once it has a leader)."""
        cfg = self.config
        while not self._stopping:
            current = self.server.sm.members.get(self.node.member_id)
            if (
                current is not None
                and current.name == cfg.name
                and list(current.client_urls) == list(cfg.advertise_client_urls)
            ):
                return
            request = internal_pb2.InternalRequest(
                member_attributes=internal_pb2.MemberAttributes(
                    id=self.node.member_id,
                    name=cfg.name,
                    client_urls=list(cfg.advertise_client_urls),
                )
            )
            try:
                await self.server.replicate(request, rpc_pb2.MemberListResponse)
            except errors.EtcdError:
                pass
            except Exception:
                log.exception("publishing member attributes failed")
            await asyncio.sleep(0.5)

    # -- stop -------------------------------------------------------------------------------

    async def stop(self, fatal: bool = False) -> None:
        """Graceful stop within :data:`SHUTDOWN_BUDGET_S`; after a fatal error, as quick
        as possible (no leadership transfer, no waiting for in-flight calls)."""
        if self._stopping:
            return
        self._stopping = True
        started = time.monotonic()
        try:
            if not fatal and self.node.status().is_leader:
                target = self.server.best_transferee()
                if target != NONE:
                    log.info("transferring leadership to %x before stopping", target)
                    await self.server.transfer_leadership(target, TRANSFER_BUDGET_S)
            self.server.accepting = False
            await self._set_serving(False)
            remaining = SHUTDOWN_BUDGET_S - (time.monotonic() - started)
            grace = 0.0 if fatal else max(0.5, min(3.0, remaining - 2.0))
            if self._grpc is not None:
                await self._grpc.stop(grace)
            if self._client_http is not None:
                await self._client_http.close()  # ends HTTP watch streams too
            for task in self._tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.node.stop()
            if self._peer_grpc is not None:
                await self._peer_grpc.stop(0.2)
            await self.server.transport.close()
            if self._metrics_http is not None:
                await self._metrics_http.close()
            try:
                await asyncio.to_thread(self.storage.close)
            except OSError as exc:
                log.error("closing the log failed: %s", exc)
            tracing.shutdown()
            log.info("stopped in %.2fs", time.monotonic() - started)
        finally:
            self.stopped.set()
