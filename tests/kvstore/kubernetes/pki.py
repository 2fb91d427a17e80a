"""The keys and certificates a test kube-apiserver needs, made with ``cryptography``.

A throw-away CA signs the apiserver's serving certificate (for 127.0.0.1 and ``localhost``),
so the clients verify it as they would a real cluster's instead of skipping verification;
a separate key signs and verifies service-account tokens, which the apiserver refuses to
start without. Everything is valid for a day: a test run never outlives it.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=1)
CLOCK_SKEW = datetime.timedelta(minutes=5)


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


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(root: Path, hosts: list[str]) -> ApiServerPki:
    """Write a CA, a serving certificate for ``hosts`` (IP addresses or DNS names) and a
    service-account key under ``root``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("kvstore kube-apiserver test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = ApiServerPki(
        ca=root / "ca.pem",
        serving_cert=root / "apiserver.pem",
        serving_key=root / "apiserver-key.pem",
        service_account_key=root / "service-account-key.pem",
        service_account_public_key=root / "service-account.pub",
    )
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    pki.serving_key.write_bytes(_key_pem(serving_key))
    sa_key = ec.generate_private_key(ec.SECP256R1())
    pki.service_account_key.write_bytes(_key_pem(sa_key))
    pki.service_account_public_key.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for secret in (pki.serving_key, pki.service_account_key):
        secret.chmod(0o600)
    return pki
