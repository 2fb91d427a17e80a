"""Amazon ECR login: exchange AWS credentials for registry credentials, with clear errors.

``publish`` calls :func:`login` in the module's own process, where the AWS credentials
arrive as Dagger secrets, and hands the resulting password back to Dagger as a secret for
``with_registry_auth``: the token never enters a container's arguments, environment or
layers. Every failure is an :class:`EcrError` whose message names the registry and the
repository, because "403" alone does not tell an operator which account or repository to
look at.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "EcrError",
    "RegistryLogin",
    "ensure_fresh",
    "explain_push_error",
    "login",
    "parse_token",
]

# AWS error codes that mean "these credentials are not valid" (unknown key, bad secret).
_BAD_CREDENTIALS = (
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "AuthFailure",
)
# AWS error codes that mean "valid once, expired now" (STS session credentials).
_EXPIRED = ("ExpiredTokenException", "ExpiredToken", "RequestExpired")


class EcrError(Exception):
    """Logging in to ECR or pushing to it failed; the message says where and why."""


@dataclass(frozen=True)
class RegistryLogin:
    """Registry credentials for one ECR registry, valid until ``expires_at``."""

    registry: str  # host name, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    repository: str
    username: str
    password: str = field(repr=False)
    expires_at: datetime

    @property
    def address(self) -> str:
        """The repository's image address without tag, e.g. ``<registry>/kvstore``."""
        return f"{self.registry}/{self.repository}"


def parse_token(token: str) -> tuple[str, str]:
    """Split ECR's base64 ``user:password`` authorization token."""
    try:
        decoded = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        raise EcrError("ECR returned an authorization token that is not base64 text") from e
    username, sep, password = decoded.partition(":")
    if not sep or not username or not password:
        raise EcrError("ECR returned an authorization token without 'user:password'")
    return username, password


def _where(region: str, registry: str | None, repository: str) -> str:
    registry_text = registry or f"the ECR registry of region {region}"
    return f"repository '{repository}' in {registry_text}"


def _explain_client_error(error: ClientError, where: str) -> str:
    info: dict[str, Any] = error.response.get("Error", {})
    code = str(info.get("Code", ""))
    message = str(info.get("Message", ""))
    text = f"{code} {message}"
    if code == "RepositoryNotFoundException":
        return f"ECR {where} does not exist; create it (deploy/terraform) or fix the name"
    if any(name in text for name in _EXPIRED):
        return f"the AWS credentials for {where} have expired; get fresh session credentials"
    if any(name in text for name in _BAD_CREDENTIALS):
        return (
            f"AWS rejected the credentials used for {where}: the access key id or "
            "secret access key is wrong"
        )
    if code in {"AccessDeniedException", "AccessDenied"}:
        return f"the AWS credentials are not allowed to push to {where}: {message}"
    return f"ECR request for {where} failed: {code} {message}".rstrip()


def login(
    *,
    region: str,
    repository: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    endpoint_url: str | None = None,
) -> RegistryLogin:
    """Get push credentials for ``repository`` and check that the repository exists.

    ``endpoint_url`` overrides the ECR API endpoint (a VPC endpoint or an emulator).
    """
    client = boto3.client(
        "ecr",
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token or None,
        endpoint_url=endpoint_url or None,
    )
    registry: str | None = None
    try:
        data = client.get_authorization_token()["authorizationData"][0]
        registry = str(data["proxyEndpoint"]).removeprefix("https://").rstrip("/")
        client.describe_repositories(repositoryNames=[repository])
    except ClientError as e:
        raise EcrError(_explain_client_error(e, _where(region, registry, repository))) from e
    except BotoCoreError as e:
        where = _where(region, registry, repository)
        raise EcrError(f"could not reach ECR for {where}: {e}") from e
    username, password = parse_token(str(data["authorizationToken"]))
    return RegistryLogin(
        registry=registry,
        repository=repository,
        username=username,
        password=password,
        expires_at=data["expiresAt"],
    )


def ensure_fresh(credentials: RegistryLogin, now: datetime) -> None:
    """Refuse to push with a token that has already expired (ECR tokens last 12 hours)."""
    if credentials.expires_at <= now:
        raise EcrError(
            f"the ECR authorization token for repository '{credentials.repository}' in "
            f"{credentials.registry} expired at {credentials.expires_at.isoformat()}; "
            "run the publish again to get a new one"
        )


def explain_push_error(message: str, registry: str, repository: str) -> str:
    """Turn a registry's push error into a message naming the registry and repository."""
    lowered = message.lower()
    where = f"repository '{repository}' in {registry}"
    rejected = ("401", "unauthorized", "authentication required", "no basic auth credentials")
    if any(sign in lowered for sign in rejected):
        return (
            f"the registry rejected the credentials for {where} (an expired or revoked "
            f"ECR token, or the wrong account): {message.strip()}"
        )
    if "403" in lowered or "denied" in lowered or "forbidden" in lowered:
        return f"pushing to {where} is not allowed: {message.strip()}"
    if "name unknown" in lowered or ("repository" in lowered and "not" in lowered):
        return f"{where} does not exist: {message.strip()}"
    if "tag invalid" in lowered or "already exists" in lowered:
        return (
            f"the tag already exists in {where} and tags are immutable; "
            f"publish a new revision or pass a new tag: {message.strip()}"
        )
    return f"pushing to {where} failed: {message.strip()}"
