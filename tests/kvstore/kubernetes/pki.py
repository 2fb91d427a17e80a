"""The keys and certificates a test kube-apiserver needs, made with ``cryptography``.

A throw-away CA signs the apiserver's serving certificate (for 127.0.0.1 and ``localhost``),
so the clients verify it as they would a real cluster's instead of skipping verification;
a separate key signs and verifies service-account tokens, which the apiserver refuses to
start without. Everything is valid for a day: a test run never outlives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.pki import ScratchCa, new_key, write_cert, write_key


@dataclass(frozen=True)
class ApiServerPki:
    """Where the files are."""

    ca: Path
    """The CA certificate clients trust."""
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    """The private key the apiserver signs service-account tokens with."""
    service_account_public_key: Path
    """Its public half, which verifies them (the apiserver reads no public key out of a
    PKCS #8 private key file)."""


def make_pki(root: Path, hosts: list[str]) -> ApiServerPki:
    """Write a CA, a serving certificate for ``hosts`` (IP addresses or DNS names) and a
    service-account key under ``root``."""
    ca = ScratchCa("kvstore kube-apiserver test CA")
    serving, serving_key = ca.issue("kube-apiserver", hosts)
    pki = ApiServerPki(
        ca=root / "ca.pem",
        serving_cert=root / "apiserver.pem",
        serving_key=root / "apiserver-key.pem",
        service_account_key=root / "service-account-key.pem",
        service_account_public_key=root / "service-account.pub",
    )
    write_cert(pki.ca, ca.cert)
    write_cert(pki.serving_cert, serving)
    write_key(pki.serving_key, serving_key)
    sa_key = new_key()
    write_key(pki.service_account_key, sa_key)
    pki.service_account_public_key.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
