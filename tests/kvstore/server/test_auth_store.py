"""The pure auth store and the token providers: etcd's rules, errors and permission ranges."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kvstore.api.gen.authpb import auth_pb2
from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.server import errors
from kvstore.server.auth_api import check_password, hash_password
from kvstore.server.auth_store import READ, READWRITE, WRITE, AuthInfo, AuthStore
from kvstore.server.tokens import JwtTokens, SimpleTokens, TokenError, make_provider, token_index


def _perm(kind: int, key: bytes, range_end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=range_end)  # type: ignore[arg-type]


def _enabled_store() -> AuthStore:
    store = AuthStore()
    store.user_add("root", b"h", no_password=False)
    store.user_grant_role("root", "root")
    store.user_add("alice", b"h", no_password=False)
    store.role_add("app")
    store.user_grant_role("alice", "app")
    store.enable()
    return store


def _who(store: AuthStore, name: str = "alice") -> AuthInfo:
    return AuthInfo(name, store.revision)


def test_enable_needs_root_user_with_root_role() -> None:
    store = AuthStore()
    with pytest.raises(errors.EtcdError) as exc:
        store.enable()
    assert exc.value == errors.ROOT_USER_NOT_EXIST
    store.user_add("root", b"h", no_password=False)
    with pytest.raises(errors.EtcdError) as exc:
        store.enable()
    assert exc.value == errors.ROOT_ROLE_NOT_EXIST
    store.user_grant_role("root", "root")  # role root need not exist as a role
    revision = store.revision
    store.enable()
    assert store.enabled
    assert store.revision == revision  # enabling does not bump the revision (etcd)
    store.disable()
    assert not store.enabled
    assert store.revision == revision + 1


def test_user_and_role_errors_are_etcds() -> None:
    store = AuthStore()
    cases: list[tuple[Callable[[], None], errors.EtcdError]] = [
        (lambda: store.user_add("", b"", no_password=True), errors.USER_EMPTY),
        (lambda: store.role_add(""), errors.ROLE_EMPTY),
        (lambda: store.user_delete("ghost"), errors.USER_NOT_FOUND),
        (lambda: store.user_grant_role("ghost", "r"), errors.USER_NOT_FOUND),
        (lambda: store.role_delete("ghost"), errors.ROLE_NOT_FOUND),
        (lambda: store.role_grant_permission("r", None), errors.PERMISSION_NOT_GIVEN),
        (lambda: store.role_grant_permission("r", _perm(READ, b"")), errors.INVALID_AUTH_MGMT),
        (
            lambda: store.role_grant_permission("r", _perm(READ, b"b", b"a")),
            errors.INVALID_AUTH_MGMT,
        ),
        (lambda: store.role_grant_permission("ghost", _perm(READ, b"a")), errors.ROLE_NOT_FOUND),
    ]
    for call, expected in cases:
        with pytest.raises(errors.EtcdError) as exc:
            call()
        assert exc.value == expected
    store.user_add("u", b"h", no_password=False)
    store.role_add("r")
    with pytest.raises(errors.EtcdError) as exc:
        store.user_add("u", b"h", no_password=False)
    assert exc.value == errors.USER_ALREADY_EXIST
    with pytest.raises(errors.EtcdError) as exc:
        store.role_add("r")
    assert exc.value == errors.ROLE_ALREADY_EXIST
    with pytest.raises(errors.EtcdError) as exc:
        store.user_grant_role("u", "missing")
    assert exc.value == errors.ROLE_NOT_FOUND
    with pytest.raises(errors.EtcdError) as exc:
        store.user_revoke_role("u", "r")
    assert exc.value == errors.ROLE_NOT_GRANTED
    with pytest.raises(errors.EtcdError) as exc:
        store.role_revoke_permission("r", b"k", b"")
    assert exc.value == errors.PERMISSION_NOT_GRANTED


def test_root_is_protected_only_while_enabled() -> None:
    store = _enabled_store()
    protected: list[Callable[[], None]] = [
        lambda: store.user_delete("root"),
        lambda: store.role_delete("root"),
        lambda: store.user_revoke_role("root", "root"),
    ]
    for call in protected:
        with pytest.raises(errors.EtcdError) as exc:
            call()
        assert exc.value == errors.INVALID_AUTH_MGMT
    store.disable()
    store.user_revoke_role("root", "root")
    store.user_delete("root")
    assert store.user_list() == ["alice"]


def test_grant_is_idempotent_and_sorted_and_role_delete_revokes() -> None:
    store = AuthStore()
    store.user_add("u", b"h", no_password=False)
    for role in ("zeta", "alpha"):
        store.role_add(role)
        store.user_grant_role("u", role)
    revision = store.revision
    store.user_grant_role("u", "alpha")
    assert store.revision == revision  # a repeated grant changes nothing
    assert store.user_get("u") == ["alpha", "zeta"]
    store.role_delete("zeta")
    assert store.user_get("u") == ["alpha"]
    store.role_grant_permission("alpha", _perm(WRITE, b"m"))
    store.role_grant_permission("alpha", _perm(READ, b"a", b"c"))
    store.role_grant_permission("alpha", _perm(READWRITE, b"m"))  # updates the type
    perms = store.role_get("alpha")
    assert [(p.key, p.range_end, p.permType) for p in perms] == [
        (b"a", b"c", READ),
        (b"m", b"", READWRITE),
    ]


def test_point_range_prefix_and_from_key_permissions() -> None:
    store = _enabled_store()
    store.role_grant_permission("app", _perm(READWRITE, b"/app/", b"/app0"))  # prefix /app/
    store.role_grant_permission("app", _perm(READ, b"/ro"))
    store.role_grant_permission("app", _perm(READ, b"z", b"\0"))  # every key >= z
    who = _who(store)
    store.check_put(who, b"/app/x")
    store.check_range(who, b"/app/", b"/app0")
    store.check_range(who, b"/app/a", b"/app/b")
    store.check_range(who, b"/ro", b"")
    store.check_range(who, b"zz", b"\0")
    store.check_range(who, b"z", b"zzz")
    denied: list[Callable[[], None]] = [
        lambda: store.check_put(who, b"/ro"),
        lambda: store.check_range(who, b"/ro", b"/rp"),  # more than the one key
        lambda: store.check_range(who, b"/app", b"/app0"),  # starts before the prefix
        lambda: store.check_range(who, b"y", b"\0"),
        lambda: store.check_delete(who, b"/app/", b"\0"),
        lambda: store.check_range(who, b"\0", b"\0"),  # every key
    ]
    for call in denied:
        with pytest.raises(errors.EtcdError) as exc:
            call()
        assert exc.value == errors.PERMISSION_DENIED


def test_adjacent_permissions_cover_a_range_together() -> None:
    store = _enabled_store()
    store.role_grant_permission("app", _perm(READ, b"a", b"c"))
    store.role_add("more")
    store.role_grant_permission("more", _perm(READ, b"c", b"e"))
    store.user_grant_role("alice", "more")
    store.check_range(_who(store), b"b", b"d")
    with pytest.raises(errors.EtcdError):
        store.check_range(_who(store), b"b", b"f")


def test_identity_rules_root_old_revision_and_anonymous() -> None:
    store = _enabled_store()
    with pytest.raises(errors.EtcdError) as exc:
        store.check_put(AuthInfo(), b"k")
    assert exc.value == errors.USER_EMPTY
    old = _who(store)
    store.role_grant_permission("app", _perm(WRITE, b"k"))
    with pytest.raises(errors.EtcdError) as exc:
        store.check_put(old, b"k")
    assert exc.value == errors.AUTH_OLD_REVISION
    store.check_put(_who(store), b"k")
    store.check_delete(_who(store, "root"), b"\0", b"\0")  # root may do anything
    with pytest.raises(errors.EtcdError) as exc:
        store.check_admin(_who(store))
    assert exc.value == errors.PERMISSION_DENIED
    with pytest.raises(errors.EtcdError) as exc:
        store.check_admin(AuthInfo("ghost", store.revision))
    assert exc.value == errors.USER_NOT_FOUND
    store.disable()
    store.check_admin(AuthInfo())  # with auth off everyone passes
    store.check_put(AuthInfo(), b"anything")


def test_txn_checks_compares_both_branches_nested_and_prev_kv() -> None:
    store = _enabled_store()
    store.role_grant_permission("app", _perm(READWRITE, b"a"))
    store.role_grant_permission("app", _perm(WRITE, b"w"))
    who = _who(store)
    no_leases: list[bytes] = []

    def txn(**kwargs: object) -> rpc_pb2.TxnRequest:
        return rpc_pb2.TxnRequest(**kwargs)  # type: ignore[arg-type]

    put_w = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"w", value=b"v"))
    store.check_txn(who, txn(success=[put_w]), lambda _: no_leases)
    prev = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"w", prev_kv=True))
    nested = rpc_pb2.RequestOp(request_txn=txn(failure=[prev]))
    compare_b = rpc_pb2.Compare(key=b"b")
    for bad in (
        txn(compare=[compare_b]),
        txn(success=[put_w], failure=[prev]),
        txn(success=[nested]),
        txn(failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"w"))]),
    ):
        with pytest.raises(errors.EtcdError) as exc:
            store.check_txn(who, bad, lambda _: no_leases)
        assert exc.value == errors.PERMISSION_DENIED


def test_lease_keys_need_write_permission_except_for_root() -> None:
    store = _enabled_store()
    store.role_grant_permission("app", _perm(WRITE, b"mine"))
    store.check_lease_keys(_who(store), [b"mine"])
    with pytest.raises(errors.EtcdError):
        store.check_lease_keys(_who(store), [b"mine", b"theirs"])
    store.check_lease_keys(_who(store, "root"), [b"theirs"])
    put = rpc_pb2.PutRequest(key=b"mine", lease=7)
    with pytest.raises(errors.EtcdError):  # attaching to a lease holding a key not ours
        store.check_put_request(_who(store), put, lambda _: [b"theirs"])


def test_load_round_trips_the_typed_accessors() -> None:
    store = _enabled_store()
    store.role_grant_permission("app", _perm(READ, b"a", b"b"))
    snap = store.snapshot()
    copy = AuthStore()
    copy.load(snap.enabled, snap.revision, snap.users, snap.roles)
    assert copy.users() == store.users()
    assert copy.roles() == store.roles()
    assert (copy.enabled, copy.revision) == (True, store.revision)
    copy.check_range(AuthInfo("alice", copy.revision), b"a", b"b")
    store.users()[0].roles.append("tampered")  # accessors hand out copies
    assert "tampered" not in store.user_get("alice")


def test_passwords_and_no_password_users() -> None:
    store = AuthStore()
    hashed = hash_password("secret", 4)
    raw = base64.b64decode(hashed)
    assert raw.startswith(b"$2a$04$")
    store.user_add("u", raw, no_password=False)
    store.user_add("np", b"", no_password=True)
    store.user_add("root", b"h", no_password=False)
    store.user_grant_role("root", "root")
    with pytest.raises(errors.EtcdError) as exc:
        store.password_hash("u")
    assert exc.value == errors.AUTH_NOT_ENABLED
    store.enable()
    assert check_password("secret", store.password_hash("u"))
    assert not check_password("wrong", store.password_hash("u"))
    with pytest.raises(errors.EtcdError) as exc:
        store.password_hash("np")
    assert exc.value == errors.NO_PASSWORD_USER
    with pytest.raises(errors.EtcdError) as exc:
        store.authenticate_user("np")
    assert exc.value == errors.AUTH_FAILED
    with pytest.raises(errors.EtcdError) as exc:
        hash_password("x" * 73, 4)
    assert exc.value == errors.PASSWORD_TOO_LONG


def test_simple_tokens_expire_unused_and_renew_on_use() -> None:
    now = [100.0]
    tokens = SimpleTokens(ttl=10, clock=lambda: now[0])
    prefix = tokens.new_prefix()
    assert len(prefix) == 16 and prefix.isalpha()
    token = tokens.assign("alice", prefix, 42, 3)
    assert token == f"{prefix}.42"
    assert token_index(token) == 42
    now[0] += 9
    assert tokens.info(token, 5) == AuthInfo("alice", 5)  # renewed, at the store's revision
    now[0] += 9
    assert tokens.info(token, 5) is not None
    now[0] += 11
    assert tokens.info(token, 5) is None
    other = tokens.assign("bob", tokens.new_prefix(), 43, 3)
    tokens.invalidate_user("bob")
    assert tokens.info(other, 5) is None


@pytest.mark.parametrize("method", ["RS256", "PS384", "ES256", "ES512", "HS256"])
def test_jwt_tokens_verify_expire_and_reject_tampering(method: str) -> None:
    if method.startswith("HS"):
        private, public = b"shared-secret", None
    else:
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if method.startswith("ES"):
            curve = {"256": ec.SECP256R1(), "512": ec.SECP521R1()}[method[2:]]
            key = ec.generate_private_key(curve)
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    now = [1000.0]
    signer = JwtTokens(method, private, public, ttl=60, clock=lambda: now[0])
    token = signer.assign("alice", "", 1, 7)
    assert signer.info(token, 99) == AuthInfo("alice", 7)  # the revision it was issued at
    if public is not None:
        verifier = JwtTokens(method, None, public, clock=lambda: now[0])
        assert verifier.info(token, 99) == AuthInfo("alice", 7)
        with pytest.raises(errors.EtcdError) as exc:
            verifier.assign("alice", "", 1, 7)
        assert exc.value == errors.VERIFY_ONLY
    header, body, signature = token.split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    assert signer.info(f"{header}.{forged}.{signature}", 0) is None
    now[0] += 61
    assert signer.info(token, 0) is None


def test_auth_token_option_parsing() -> None:
    assert isinstance(make_provider("simple", 30), SimpleTokens)
    for bad, message in [
        ("nope", "unknown token type"),
        ("jwt,sign-method=RS256", "pub-key or priv-key is required"),
        ("jwt,sign-method=XX1", "sign-method"),
        ("jwt,priv-key", "invalid token option"),
        ("jwt,colour=red", "unknown jwt option"),
        ("jwt,sign-method=RS256,priv-key=/nonexistent/key", "cannot read"),
    ]:
        with pytest.raises(TokenError, match=message):
            make_provider(bad, 30)
