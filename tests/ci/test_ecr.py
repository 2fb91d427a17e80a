"""ECR login for publish, against a real moto server (AWS API emulator).

moto stands in for AWS: it speaks ECR's API (token exchange, repositories) but is not
ECR. Its tokens carry a fixed ``expiresAt`` in 2015, which the expiry test uses as a
real, already-expired token.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from kvstore_ci import ecr

from tests.ci.moto_server import moto_server

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def repository(moto: str) -> str:
    client = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="example",
    )
    client.create_repository(repositoryName="kvstore", imageTagMutability="IMMUTABLE")
    return "kvstore"


def login(endpoint: str, repository: str, key: str = "AKIAEXAMPLE") -> ecr.RegistryLogin:
    return ecr.login(
        region=REGION,
        repository=repository,
        access_key_id=key,
        secret_access_key="example",
        endpoint_url=endpoint,
    )


def test_token_exchange_gives_registry_credentials(moto: str, repository: str) -> None:
    credentials = login(moto, repository)
    assert credentials.registry == REGISTRY
    assert credentials.address == f"{REGISTRY}/kvstore"
    assert credentials.username == "AWS"
    assert credentials.password
    assert credentials.password not in repr(credentials)


def test_missing_repository_names_registry_and_repository(moto: str, repository: str) -> None:
    with pytest.raises(ecr.EcrError) as caught:
        login(moto, "no-such-repo")
    message = str(caught.value)
    assert f"repository 'no-such-repo' in {REGISTRY} does not exist" in message


def test_bad_credentials_name_region_and_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks access keys against its IAM when INITIAL_NO_AUTH_ACTION_COUNT is 0."""
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")
    with moto_server() as endpoint, pytest.raises(ecr.EcrError) as caught:
        login(endpoint, "kvstore", key="AKIANOTAREALKEY00000")
    message = str(caught.value)
    assert "rejected the credentials" in message
    assert f"repository 'kvstore' in the ECR registry of region {REGION}" in message


def test_an_expired_token_is_refused_before_pushing(moto: str, repository: str) -> None:
    credentials = login(moto, repository)
    now = datetime.now(UTC)
    assert credentials.expires_at < now  # moto's tokens expired in 2015
    with pytest.raises(ecr.EcrError) as caught:
        ecr.ensure_fresh(credentials, now)
    assert f"token for repository 'kvstore' in {REGISTRY} expired" in str(caught.value)
    ecr.ensure_fresh(credentials, credentials.expires_at - timedelta(seconds=1))


def test_unreachable_api_is_a_clear_error() -> None:
    where = f"repository 'kvstore' in the ECR registry of region {REGION}"
    with pytest.raises(ecr.EcrError, match=f"could not reach ECR for {where}"):
        login("http://127.0.0.1:9", "kvstore")


def test_token_parsing() -> None:
    token = base64.b64encode(b"AWS:secret:with:colons").decode()
    assert ecr.parse_token(token) == ("AWS", "secret:with:colons")
    with pytest.raises(ecr.EcrError, match="not base64"):
        ecr.parse_token("%%%")
    with pytest.raises(ecr.EcrError, match="user:password"):
        ecr.parse_token(base64.b64encode(b"no-colon").decode())


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("unauthorized: authentication required", "rejected the credentials"),
        ("no basic auth credentials", "rejected the credentials"),
        ("denied: requested access to the resource is denied", "is not allowed"),
        ("name unknown: repository name not known to registry", "does not exist"),
        ("tag invalid: The image tag 'abc' already exists", "tags are immutable"),
        ("connection reset by peer", "pushing to repository 'kv' in r.example failed"),
    ],
)
def test_push_errors_name_registry_and_repository(message: str, expected: str) -> None:
    text = ecr.explain_push_error(message, "r.example", "kv")
    assert expected in text
    assert "repository 'kv' in r.example" in text
    assert message in text
