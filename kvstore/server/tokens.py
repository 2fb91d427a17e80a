"""Auth tokens, as etcd's --auth-token selects them: ``simple`` (random, kept in memory) or
``jwt`` (signed, verifiable by any member holding the public key).

Simple tokens are ``<16 random letters>.<Raft index>``. Authenticate goes through Raft and
every member records the token when it applies the entry, so a simple token works on any
member; each member forgets it after ``--auth-token-ttl`` seconds without use *there*
(the TTL is renewed per member on each use, as in etcd), and on restart.

A JWT carries ``username``, ``revision`` (the auth revision at issue) and ``exp``; after any
auth change its revision is old and the request is refused with "revision of auth store is
old" (clients then authenticate again), exactly as etcd behaves.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from kvstore.server import errors
from kvstore.server.auth_store import AuthInfo

SIMPLE_TOKEN_LENGTH = 16
DEFAULT_TOKEN_TTL_S = 300
DEFAULT_JWT_TTL_S = 300
_LETTERS = string.ascii_letters


class TokenError(ValueError):
    """An --auth-token setting that cannot be used (the message says why)."""


class TokenProvider(Protocol):
    """What the auth layer needs from a kind of token."""

    def new_prefix(self) -> str:
        """The random part chosen before proposing Authenticate ("" if unused)."""
        ...

    def assign(self, username: str, prefix: str, index: int, revision: int) -> str:
        """Issue a token (called when Authenticate is applied, on every member)."""
        ...

    def info(self, token: str, revision: int) -> AuthInfo | None:
        """Who holds ``token`` (None: unknown or expired); ``revision`` is the store's."""
        ...

    def invalidate_user(self, username: str) -> None:
        """Forget the user's tokens (deleted, or password changed)."""
        ...

    def clear(self) -> None:
        """Forget every token (auth disabled)."""
        ...


def token_index(token: str) -> int | None:
    """The Raft index a simple token was issued at (None for any other token)."""
    _, sep, tail = token.rpartition(".")
    if not sep or not tail.isdigit():
        return None
    return int(tail)


@dataclass(slots=True)
class SimpleTokens:
    """Random tokens in this member's memory, each valid ``ttl`` seconds past last use."""

    ttl: float = DEFAULT_TOKEN_TTL_S
    clock: Callable[[], float] = time.monotonic
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def new_prefix(self) -> str:
        """16 random ASCII letters."""
        return "".join(secrets.choice(_LETTERS) for _ in range(SIMPLE_TOKEN_LENGTH))

    def assign(self, username: str, prefix: str, index: int, revision: int) -> str:
        """Record ``<prefix>.<index>`` for ``username``."""
        del revision
        token = f"{prefix}.{index}"
        self._expire()
        self._tokens[token] = (username, self.clock() + self.ttl)
        return token

    def info(self, token: str, revision: int) -> AuthInfo | None:
        """The holder, at the store's current revision (simple tokens never grow old);
        using a token renews its TTL."""
        entry = self._tokens.get(token)
        now = self.clock()
        if entry is None or entry[1] <= now:
            self._tokens.pop(token, None)
            return None
        self._tokens[token] = (entry[0], now + self.ttl)
        return AuthInfo(entry[0], revision)

    def _expire(self) -> None:
        now = self.clock()
        for token in [t for t, (_, deadline) in self._tokens.items() if deadline <= now]:
            del self._tokens[token]

    def invalidate_user(self, username: str) -> None:
        """Drop the user's tokens."""
        for token in [t for t, (user, _) in self._tokens.items() if user == username]:
            del self._tokens[token]

    def clear(self) -> None:
        """Drop every token."""
        self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_EC_SIZES = {"256": 32, "384": 48, "512": 66}
SIGN_METHODS = tuple(f"{f}{b}" for f in ("RS", "PS", "ES", "HS") for b in ("256", "384", "512"))

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class JwtTokens:
    """Signed tokens (etcd's ``jwt`` token type, claims ``username``, ``revision``,
    ``exp``). A member with only the public key verifies tokens but cannot issue them."""

    def __init__(
        self,
        method: str,
        private_key: bytes | None,
        public_key: bytes | None,
        ttl: float = DEFAULT_JWT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if method not in SIGN_METHODS:
            raise TokenError(f"sign-method {method!r} is not one of {', '.join(SIGN_METHODS)}")
        self.method = method
        self.ttl = ttl
        self._clock = clock
        self._hash = _HASHES[method[2:]]
        self._secret: bytes | None = None
        self._private: PrivateKey | None = None
        self._public: PublicKey | None = None
        if method.startswith("HS"):
            if not private_key:
                raise TokenError("priv-key is required for HS sign methods")
            self._secret = private_key
            return
        if private_key:
            self._private = _load_private(private_key, method)
            self._public = self._private.public_key()
        if public_key:
            public = _load_public(public_key, method)
            if self._public is not None and _public_der(public) != _public_der(self._public):
                raise TokenError("pub-key and priv-key do not match")
            self._public = public
        if self._public is None:
            raise TokenError("pub-key or priv-key is required")

    def new_prefix(self) -> str:
        """JWTs need no prefix."""
        return ""

    def assign(self, username: str, prefix: str, index: int, revision: int) -> str:
        """Sign a token for ``username`` at ``revision``."""
        del prefix, index
        if self._secret is None and self._private is None:
            raise errors.VERIFY_ONLY  # answered to the caller; the apply goes on
        header = _b64(json.dumps({"alg": self.method, "typ": "JWT"}).encode())
        claims = {"username": username, "revision": revision, "exp": int(self._clock() + self.ttl)}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode()
        return f"{header}.{body}.{_b64(self._sign(signing_input))}"

    def info(self, token: str, revision: int) -> AuthInfo | None:  # noqa: PLR0911
        """The claims of a token whose signature and expiry hold."""
        del revision
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(header, dict) or header.get("alg") != self.method:
            return None
        if not self._verify(f"{parts[0]}.{parts[1]}".encode(), signature):
            return None
        if not isinstance(claims, dict):
            return None
        username, rev, exp = claims.get("username"), claims.get("revision"), claims.get("exp")
        if not isinstance(username, str) or not isinstance(rev, int | float):
            return None
        if not isinstance(exp, int | float) or exp <= self._clock():
            return None
        return AuthInfo(username, int(rev))

    def invalidate_user(self, username: str) -> None:
        """A JWT cannot be recalled: it stays valid until it expires or grows old."""
        del username

    def clear(self) -> None:
        """Nothing is kept."""

    def _sign(self, data: bytes) -> bytes:
        if self._secret is not None:
            mac = hmac.HMAC(self._secret, self._hash())
            mac.update(data)
            return mac.finalize()
        key = self._private
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, self._rsa_padding(), self._hash())
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(self._hash())))
        size = _EC_SIZES[self.method[2:]]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    def _verify(self, data: bytes, signature: bytes) -> bool:
        if self._secret is not None:
            return secrets.compare_digest(self._sign(data), signature)
        key = self._public
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, data, self._rsa_padding(), self._hash())
                return True
            assert isinstance(key, ec.EllipticCurvePublicKey)
            size = _EC_SIZES[self.method[2:]]
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            )
            key.verify(der, data, ec.ECDSA(self._hash()))
        except InvalidSignature:
            return False
        return True

    def _rsa_padding(self) -> padding.AsymmetricPadding:
        if self.method.startswith("PS"):
            return padding.PSS(
                mgf=padding.MGF1(self._hash()), salt_length=padding.PSS.DIGEST_LENGTH
            )
        return padding.PKCS1v15()


def _load_private(pem: bytes, method: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise TokenError(f"priv-key: {exc}") from None
    _check_kind(key, method, "priv-key")
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _load_public(pem: bytes, method: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise TokenError(f"pub-key: {exc}") from None
    _check_kind(key, method, "pub-key")
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key


def _check_kind(key: object, method: str, what: str) -> None:
    wants_rsa = method[:2] in ("RS", "PS")
    is_rsa = isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)
    is_ec = isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)
    if (wants_rsa and not is_rsa) or (not wants_rsa and not is_ec):
        raise TokenError(f"{what}: not a key for sign-method {method}")


def _public_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse_options(raw: str) -> tuple[str, dict[str, str]]:
    """``jwt,pub-key=...,priv-key=...`` -> ("jwt", {...}) (etcd's --auth-token syntax)."""
    kind, *rest = [part.strip() for part in raw.split(",")]
    options: dict[str, str] = {}
    for item in rest:
        name, sep, value = item.partition("=")
        if not sep or not name or name in options:
            raise TokenError(f"invalid token option {item!r}")
        options[name] = value
    return kind, options


def _duration(raw: str) -> float:
    """A Go duration like ``5m``, ``300s``, ``1h30m`` in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number, i = 0.0, "", 0
    text = raw.strip()
    if not text:
        raise TokenError("ttl: empty duration")
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text[i : i + 2] == "ms" else ch
        if unit not in units or not number:
            raise TokenError(f"ttl: invalid duration {raw!r}")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise TokenError(f"ttl: missing unit in {raw!r}")
    return total


def make_provider(
    raw: str, simple_ttl: float, read: Callable[[Path], bytes] = Path.read_bytes
) -> TokenProvider:
    """The provider --auth-token names (``simple`` or ``jwt,...``)."""
    kind, options = parse_options(raw)
    if kind == "simple":
        if options:
            raise TokenError("the simple token type takes no options")
        return SimpleTokens(ttl=simple_ttl)
    if kind != "jwt":
        raise TokenError(f"unknown token type {kind!r} (simple or jwt)")
    known = {"sign-method", "pub-key", "priv-key", "ttl"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TokenError(f"unknown jwt option {unknown[0]!r}")
    return _jwt(options, read)


def _jwt(options: Mapping[str, str], read: Callable[[Path], bytes]) -> JwtTokens:
    def load(name: str) -> bytes | None:
        path = options.get(name)
        if not path:
            return None
        try:
            return read(Path(path))
        except OSError as exc:
            raise TokenError(f"{name}: cannot read {path}: {exc.strerror}") from None

    ttl = _duration(options["ttl"]) if options.get("ttl") else DEFAULT_JWT_TTL_S
    return JwtTokens(options.get("sign-method", ""), load("priv-key"), load("pub-key"), ttl)
