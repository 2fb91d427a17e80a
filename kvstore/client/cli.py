"""Basic operations on the command line: ``kvstore put|get|del|member|endpoint|move-leader``.

Output follows etcdctl's simple format (key and value on separate lines, members as
comma-separated rows) so scripts written for one work with the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kvstore.client._async import Client, _target
from kvstore.client.errors import ClientError

DEFAULT_ENDPOINTS = "127.0.0.1:2379"
COMMANDS = ("put", "get", "del", "member", "endpoint", "move-leader")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoints",
        default=os.environ.get("KVSTORE_ENDPOINTS", DEFAULT_ENDPOINTS),
        help="comma-separated client URLs [env KVSTORE_ENDPOINTS]",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    # TLS, with etcdctl's flag names so scripts and probes written for one fit the other.
    for flag, what in (
        ("cacert", "CA bundle that signs the members' certificates"),
        ("cert", "client certificate (with --key) for client-certificate auth"),
        ("key", "private key of --cert"),
    ):
        env = f"KVSTORE_{flag.upper()}"
        parser.add_argument(
            f"--{flag}",
            dest=f"tls_{flag}",  # not "key": that is the positional key of put/get/del
            default=os.environ.get(env, ""),
            help=f"{what} [env {env}]",
        )


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials from --cacert/--cert/--key, or None for plaintext."""
    if not (args.tls_cacert or args.tls_cert or args.tls_key):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ClientError(grpc.StatusCode.INVALID_ARGUMENT, "--cert and --key go together")

    def read(flag: str, path: str) -> bytes | None:
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ClientError(
                grpc.StatusCode.INVALID_ARGUMENT, f"--{flag} {path}: {exc.strerror}"
            ) from exc

    return grpc.ssl_channel_credentials(
        root_certificates=read("cacert", args.tls_cacert),
        private_key=read("key", args.tls_key),
        certificate_chain=read("cert", args.tls_cert),
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client subcommands on the top-level subparsers object."""
    put = sub.add_parser("put", help="write a key")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--lease", default="0", help="lease id (hex)")
    _common(put)
    get = sub.add_parser("get", help="read a key, range or prefix")
    get.add_argument("key")
    get.add_argument("range_end", nargs="?", default="")
    get.add_argument("--prefix", action="store_true")
    get.add_argument("--rev", type=int, default=0)
    get.add_argument("--consistency", choices=["l", "s"], default="l")
    _common(get)
    delete = sub.add_parser("del", help="delete a key, range or prefix")
    delete.add_argument("key")
    delete.add_argument("range_end", nargs="?", default="")
    delete.add_argument("--prefix", action="store_true")
    _common(delete)
    member = sub.add_parser("member", help="list and change members")
    msub = member.add_subparsers(dest="member_command", required=True)
    _common(msub.add_parser("list", help="list members"))
    add = msub.add_parser("add", help="add a member")
    add.add_argument("name")
    add.add_argument("--peer-urls", required=True)
    add.add_argument("--learner", action="store_true")
    _common(add)
    for name in ("remove", "promote"):
        p = msub.add_parser(name, help=f"{name} a member by id (hex)")
        p.add_argument("member_id")
        _common(p)
    endpoint = sub.add_parser("endpoint", help="check endpoints")
    esub = endpoint.add_subparsers(dest="endpoint_command", required=True)
    _common(esub.add_parser("health", help="grpc health and a read on every endpoint"))
    move = sub.add_parser("move-leader", help="hand leadership to a member (hex id)")
    move.add_argument("member_id")
    _common(move)


def _endpoints(args: argparse.Namespace) -> list[str]:
    return [e.strip() for e in str(args.endpoints).split(",") if e.strip()]


async def _health(
    endpoint: str, timeout: float, credentials: grpc.ChannelCredentials | None
) -> tuple[bool, str]:
    started = time.perf_counter()
    channel = (
        grpc.aio.secure_channel(_target(endpoint), credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(_target(endpoint))
    )
    async with channel:
        try:
            resp = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    if resp.status != health_pb2.HealthCheckResponse.SERVING:
        return False, "NOT_SERVING"
    client = Client([endpoint], timeout=timeout, rounds=1, credentials=credentials)
    try:
        await client.get(b"health")
    except ClientError as exc:
        return False, exc.details
    finally:
        await client.close()
    return True, f"took = {(time.perf_counter() - started) * 1000:.3f}ms"


async def _run(args: argparse.Namespace) -> int:
    endpoints = _endpoints(args)
    credentials = _credentials(args)
    if args.command == "endpoint":
        bad = 0
        for ep in endpoints:
            ok, detail = await _health(ep, args.timeout, credentials)
            print(f"{ep} is {'healthy' if ok else 'unhealthy'}: {detail}")
            bad += not ok
        return 1 if bad else 0
    async with Client(endpoints, timeout=args.timeout, credentials=credentials) as client:
        if args.command == "put":
            await client.put(args.key.encode(), args.value.encode(), lease=int(args.lease, 16))
            print("OK")
        elif args.command == "get":
            resp = await client.get(
                args.key.encode(),
                range_end=args.range_end.encode(),
                prefix=args.prefix,
                revision=args.rev,
                serializable=args.consistency == "s",
            )
            for kv in resp.kvs:
                print(kv.key.decode(errors="replace"))
                print(kv.value.decode(errors="replace"))
        elif args.command == "del":
            deleted = await client.delete(
                args.key.encode(), prefix=args.prefix, range_end=args.range_end.encode()
            )
            print(deleted.deleted)
        elif args.command == "move-leader":
            await client.move_leader(int(args.member_id, 16))
            print(f"Leadership transferred to {args.member_id}")
        elif args.member_command == "list":
            for m in (await client.member_list()).members:
                state = "started" if m.name else "unstarted"
                print(
                    f"{m.ID:x}, {state}, {m.name}, {','.join(m.peerURLs)}, "
                    f"{','.join(m.clientURLs)}, {str(m.isLearner).lower()}"
                )
        elif args.member_command == "add":
            added = await client.member_add(args.peer_urls.split(","), learner=args.learner)
            print(f"Member {added.member.ID:x} added to cluster {added.header.cluster_id:x}")
            names = {m.ID: m.name for m in added.members}
            names[added.member.ID] = args.name
            cluster = ",".join(
                f"{names[m.ID]}={u}" for m in added.members for u in m.peerURLs if names[m.ID]
            )
            print(f'KVSTORE_NAME="{args.name}"')
            print(f'KVSTORE_INITIAL_CLUSTER="{cluster}"')
            print('KVSTORE_INITIAL_CLUSTER_STATE="existing"')
        elif args.member_command == "remove":
            await client.member_remove(int(args.member_id, 16))
            print(f"Member {args.member_id} removed")
        else:
            await client.member_promote(int(args.member_id, 16))
            print(f"Member {args.member_id} promoted")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a client subcommand; errors print etcdctl-style and exit 1."""
    try:
        return asyncio.run(_run(args))
    except ClientError as exc:
        print(f"Error: {exc.details}", file=sys.stderr)
        return 1
