"""EKS tokens and kubeconfigs against a real moto server (the AWS API emulator).

The token's presigned URL is checked three ways: its format (prefix, URL-safe base64
without padding), its query parameters (action, expiry, signed headers), and its SigV4
signature, recomputed here independently, which must cover the cluster header so a token
for one cluster cannot be replayed against another. moto serves DescribeCluster; its server
routes a presigned query-string GET to S3 rather than STS, so the replay EKS performs is
checked through the recomputed signature rather than by calling moto's STS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterator

import boto3
import pytest
import yaml
from kvstore_ci.eks_token import (
    CLUSTER_HEADER,
    AwsCredentials,
    EksAccessError,
    cluster_kubeconfig,
    decode_token,
    encode_token,
    get_token,
)

from tests.ci.moto_server import moto_server

REGION = "eu-west-1"
CLUSTER = "kvstore-staging"
CREDENTIALS = AwsCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        eks = boto3.client(
            "eks",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id=CREDENTIALS.access_key_id,
            aws_secret_access_key=CREDENTIALS.secret_access_key,
        )
        eks.create_cluster(
            name=CLUSTER,
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]},
        )
        yield endpoint


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def _signature(url: str, secret_key: str, cluster: str) -> str:
    """SigV4 query signature of ``url`` computed from scratch (not with botocore)."""
    parts = urllib.parse.urlsplit(url)
    params = sorted(
        (k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "X-Amz-Signature"
    )
    query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in params
    )
    headers = {"host": parts.netloc, CLUSTER_HEADER: cluster}
    signed = dict(params)["X-Amz-SignedHeaders"]
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in signed.split(";"))
    canonical = "\n".join(
        [
            "GET",
            parts.path or "/",
            query,
            canonical_headers,
            signed,
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    amz_date = dict(params)["X-Amz-Date"]
    scope = dict(params)["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret_key).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_token_format_and_presigned_request(moto: str) -> None:
    before = dt.datetime.now(dt.UTC)
    token = get_token(CREDENTIALS, CLUSTER, REGION, sts_endpoint=moto)
    assert re.fullmatch(r"k8s-aws-v1\.[A-Za-z0-9_-]+", token.token), "base64url, no padding"
    assert dt.timedelta(minutes=13) < token.expires_at - before <= dt.timedelta(minutes=15)
    assert "<hidden>" in repr(token) and token.token not in repr(token)

    url = decode_token(token.token)
    query = _query(url)
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-Credential"].startswith(f"{CREDENTIALS.access_key_id}/")
    assert query["X-Amz-Credential"].endswith(f"/{REGION}/sts/aws4_request")
    assert query["X-Amz-SignedHeaders"].split(";") == ["host", CLUSTER_HEADER]
    assert CLUSTER not in url, "the cluster travels as a signed header, not in the URL"

    signature = query["X-Amz-Signature"]
    assert signature == _signature(url, CREDENTIALS.secret_access_key, CLUSTER)
    assert signature != _signature(url, CREDENTIALS.secret_access_key, "kvstore-production")


def test_default_endpoint_is_regional_sts() -> None:
    """Signing needs no network: the URL points at the region's own STS endpoint."""
    token = get_token(CREDENTIALS, CLUSTER, "us-east-2")
    assert urllib.parse.urlsplit(decode_token(token.token)).netloc == "sts.us-east-2.amazonaws.com"


@pytest.mark.parametrize("length", [30, 31, 32])
def test_encoding_drops_padding_and_round_trips(length: int) -> None:
    url = "https://sts.example/?" + "a" * length
    token = encode_token(url)
    assert "=" not in token
    assert decode_token(token) == url
    with pytest.raises(ValueError, match="not an EKS token"):
        decode_token(token.removeprefix("k8s-aws-v1."))


def test_kubeconfig_from_describe_cluster(moto: str) -> None:
    text = cluster_kubeconfig(
        CREDENTIALS, CLUSTER, REGION, namespace="kvstore", eks_endpoint=moto, sts_endpoint=moto
    )
    config = yaml.safe_load(text)
    described = boto3.client(
        "eks",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="x",
        aws_secret_access_key="y",
    ).describe_cluster(name=CLUSTER)["cluster"]
    assert config["kind"] == "Config" and config["current-context"] == CLUSTER
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == described["endpoint"]
    assert (
        cluster["cluster"]["certificate-authority-data"]
        == described["certificateAuthority"]["data"]
    )
    (context,) = config["contexts"]
    assert context["context"] == {"cluster": CLUSTER, "user": CLUSTER, "namespace": "kvstore"}
    (user,) = config["users"]
    url = decode_token(user["user"]["token"])
    assert _query(url)["X-Amz-Signature"] == _signature(url, CREDENTIALS.secret_access_key, CLUSTER)


def test_missing_cluster_is_named(moto: str) -> None:
    with pytest.raises(EksAccessError, match="'kvstore-qa' does not exist in eu-west-1"):
        cluster_kubeconfig(CREDENTIALS, "kvstore-qa", REGION, eks_endpoint=moto)
