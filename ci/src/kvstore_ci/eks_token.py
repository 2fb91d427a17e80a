"""EKS bearer tokens and kubeconfigs, made the way ``aws eks get-token`` makes them.

An EKS cluster authenticates a bearer token by replaying it to STS: the token is a presigned
``GetCallerIdentity`` URL whose signature also covers the ``x-k8s-aws-id`` header naming the
cluster, so a token minted for one cluster is useless against another. The URL is valid for
60 seconds of signing time (``X-Amz-Expires=60``); EKS accepts the token for 15 minutes
after it was signed, which is why :data:`TOKEN_LIFETIME` is 14 minutes, leaving a margin.

Encoding: ``k8s-aws-v1.`` followed by the URL in URL-safe base64 without ``=`` padding.

No AWS CLI is needed: botocore signs the request, and the kubeconfig embeds the token, so
helm and kubectl containers need nothing but the file.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from io import StringIO
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ruamel.yaml import YAML

__all__ = [
    "CLUSTER_HEADER",
    "PRESIGN_EXPIRES_SECONDS",
    "TOKEN_LIFETIME",
    "TOKEN_PREFIX",
    "AwsCredentials",
    "EksAccessError",
    "EksToken",
    "cluster_kubeconfig",
    "decode_token",
    "encode_token",
    "get_token",
    "kubeconfig_yaml",
]

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format marker, not a secret
CLUSTER_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES_SECONDS = 60
TOKEN_LIFETIME = dt.timedelta(minutes=14)


class EksAccessError(RuntimeError):
    """The cluster cannot be described or a token cannot be made (names cluster and region)."""


@dataclass(frozen=True)
class AwsCredentials:
    """AWS credentials as plain values: only ever built from Dagger Secrets at run time."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def session(self, region: str) -> boto3.Session:
        """A boto3 session with exactly these credentials (never the ambient ones)."""
        return boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token or None,
            region_name=region,
        )

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key_id={self.access_key_id[:4]}…, secret=<hidden>)"


@dataclass(frozen=True)
class EksToken:
    """A bearer token for one cluster and when a client should stop using it."""

    token: str
    expires_at: dt.datetime

    def __repr__(self) -> str:
        return f"EksToken(token=<hidden>, expires_at={self.expires_at.isoformat()})"


def encode_token(presigned_url: str) -> str:
    """``k8s-aws-v1.`` plus the URL in URL-safe base64 without padding."""
    encoded = base64.urlsafe_b64encode(presigned_url.encode("utf-8")).decode("ascii")
    return TOKEN_PREFIX + encoded.rstrip("=")


def decode_token(token: str) -> str:
    """The presigned URL inside a token (for checks and diagnostics)."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"not an EKS token: does not start with {TOKEN_PREFIX!r}")
    body = token[len(TOKEN_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")


def _sts_endpoint(region: str) -> str:
    """The regional STS endpoint: EKS verifies tokens against its own region's STS."""
    return f"https://sts.{region}.amazonaws.com"


def get_token(
    credentials: AwsCredentials,
    cluster_name: str,
    region: str,
    *,
    sts_endpoint: str | None = None,
    now: dt.datetime | None = None,
) -> EksToken:
    """A bearer token for ``cluster_name``: a presigned STS GetCallerIdentity with its header.

    ``sts_endpoint`` overrides the regional endpoint (an emulator in tests, a VPC endpoint).
    """
    client = credentials.session(region).client(
        "sts", region_name=region, endpoint_url=sts_endpoint or _sts_endpoint(region)
    )

    def add_cluster_header(request: Any, **_: Any) -> None:  # noqa: ANN401 - botocore hook
        request.headers[CLUSTER_HEADER] = cluster_name

    client.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    try:
        url = client.generate_presigned_url(
            "get_caller_identity",
            Params={},
            ExpiresIn=PRESIGN_EXPIRES_SECONDS,
            HttpMethod="GET",
        )
    except BotoCoreError as error:
        raise EksAccessError(
            f"cannot sign a token for EKS cluster {cluster_name!r} in {region}: {error}"
        ) from error
    signed_at = now or dt.datetime.now(dt.UTC)
    return EksToken(token=encode_token(str(url)), expires_at=signed_at + TOKEN_LIFETIME)


def kubeconfig_yaml(
    *,
    cluster_name: str,
    server: str,
    certificate_authority_data: str,
    token: str,
    namespace: str = "",
) -> str:
    """A kubeconfig with one cluster, one user holding ``token`` and one current context."""
    context: dict[str, str] = {"cluster": cluster_name, "user": cluster_name}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": certificate_authority_data,
                },
            }
        ],
        "users": [{"name": cluster_name, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": context}],
        "current-context": cluster_name,
        "preferences": {},
    }
    out = StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(config, out)
    return out.getvalue()


def cluster_kubeconfig(
    credentials: AwsCredentials,
    cluster_name: str,
    region: str,
    *,
    namespace: str = "",
    eks_endpoint: str | None = None,
    sts_endpoint: str | None = None,
) -> str:
    """The kubeconfig for an EKS cluster: endpoint and CA from DescribeCluster, a fresh token.

    Fails with :class:`EksAccessError` naming the cluster and region when the cluster does
    not exist, is not ACTIVE yet, or the credentials are refused.
    """
    eks = credentials.session(region).client("eks", region_name=region, endpoint_url=eks_endpoint)
    try:
        cluster = eks.describe_cluster(name=cluster_name)["cluster"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise EksAccessError(
                f"EKS cluster {cluster_name!r} does not exist in {region}"
                " (has the infrastructure pipeline been applied?)"
            ) from error
        raise EksAccessError(
            f"cannot describe EKS cluster {cluster_name!r} in {region}: {code or error}"
        ) from error
    except BotoCoreError as error:
        raise EksAccessError(
            f"cannot describe EKS cluster {cluster_name!r} in {region}: {error}"
        ) from error
    status = cluster.get("status", "")
    if status != "ACTIVE":
        raise EksAccessError(f"EKS cluster {cluster_name!r} in {region} is {status}, not ACTIVE")
    token = get_token(credentials, cluster_name, region, sts_endpoint=sts_endpoint)
    return kubeconfig_yaml(
        cluster_name=cluster_name,
        server=cluster["endpoint"],
        certificate_authority_data=cluster["certificateAuthority"]["data"],
        token=token.token,
        namespace=namespace,
    )
