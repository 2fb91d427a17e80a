"""The publish flow for real: ECR token from moto, push to a registry that demands it.

Stand-ins, both unavoidable without AWS: moto plays ECR's API (token exchange and the
repository check), and Debian's ``docker-registry`` plays the registry, configured with
htpasswd basic auth for exactly the user and password in moto's token. The credentials
come from :func:`kvstore_ci.ecr.login`, the code ``publish`` runs, and the registry host
from :func:`kvstore_ci.images.registry_host`, which ``with_registry_auth`` uses; the Docker
CLI does the push a Dagger engine would do.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from kvstore_ci import ecr, images

from tests.ci.moto_server import moto_server
from tests.tooling import require_tool

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REGION = "us-east-1"


@dataclass(frozen=True)
class Registry:
    address: str  # 127.0.0.1:port
    credentials: ecr.RegistryLogin


@pytest.fixture
def ecr_login() -> Iterator[ecr.RegistryLogin]:
    with moto_server() as endpoint:
        keys = {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "example"}
        client = boto3.client("ecr", region_name=REGION, endpoint_url=endpoint, **keys)
        client.create_repository(repositoryName="kvstore", imageTagMutability="IMMUTABLE")
        yield ecr.login(
            region=REGION,
            repository="kvstore",
            access_key_id=keys["aws_access_key_id"],
            secret_access_key=keys["aws_secret_access_key"],
            endpoint_url=endpoint,
        )


@pytest.fixture
def registry(
    tmp_path: Path, free_port: Callable[[], int], ecr_login: ecr.RegistryLogin
) -> Iterator[Registry]:
    """docker-registry on a free loopback port, basic auth with the ECR token's credentials."""
    binary = require_tool("docker-registry")
    htpasswd = subprocess.run(
        [require_tool("htpasswd"), "-Bbn", ecr_login.username, ecr_login.password],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "htpasswd").write_text(htpasswd)
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
        f"auth: {{htpasswd: {{realm: kvstore-test, path: {tmp_path / 'htpasswd'}}}}}\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and demanding credentials
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("docker-registry did not start")
            time.sleep(0.2)
        yield Registry(f"127.0.0.1:{port}", ecr_login)
    finally:
        process.terminate()
        process.wait(timeout=10)


def docker_cli(
    docker: str, config_dir: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The docker CLI with its own config dir, so logins stay inside the test."""
    return subprocess.run(
        [docker, "--config", str(config_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ},
    )


def test_push_with_the_ecr_token_and_pull_back_by_digest(
    docker: str, kvstore_image: str, registry: Registry, tmp_path: Path
) -> None:
    credentials = registry.credentials
    address = f"{registry.address}/{credentials.repository}:0123abcd"
    host = images.registry_host(address)
    assert host == registry.address
    config_dir = tmp_path / "docker-config"

    # without the token the registry refuses, and the error names registry and repository
    assert docker_cli(docker, config_dir, "tag", kvstore_image, address).returncode == 0
    refused = docker_cli(docker, config_dir, "push", address)
    assert refused.returncode != 0
    explained = ecr.explain_push_error(refused.stderr, host, credentials.repository)
    assert explained.startswith(
        f"the registry rejected the credentials for repository 'kvstore' in {host}"
    ), explained

    login = docker_cli(
        docker,
        config_dir,
        *("login", host, "--username", credentials.username, "--password-stdin"),
        stdin=credentials.password,
    )
    assert login.returncode == 0, login.stderr
    pushed = docker_cli(docker, config_dir, "push", address)
    assert pushed.returncode == 0, pushed.stderr
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
    assert match, pushed.stdout
    reference = f"{registry.address}/{credentials.repository}@{match.group(1)}"

    assert docker_cli(docker, config_dir, "rmi", address).returncode == 0
    pulled = docker_cli(docker, config_dir, "pull", reference)
    assert pulled.returncode == 0, pulled.stderr
    inspect = docker_cli(docker, config_dir, "image", "inspect", "--format", "{{.Id}}", reference)
    original = docker_cli(
        docker, config_dir, "image", "inspect", "--format", "{{.Id}}", kvstore_image
    )
    assert inspect.stdout.strip() == original.stdout.strip()
    docker_cli(docker, config_dir, "rmi", reference)


def test_wrong_password_is_rejected(registry: Registry, docker: str, tmp_path: Path) -> None:
    host = registry.address
    failed = docker_cli(
        docker,
        tmp_path / "docker-config",
        *("login", host, "--username", "AWS", "--password-stdin"),
        stdin="not-the-token",
    )
    assert failed.returncode != 0
    explained = ecr.explain_push_error(failed.stderr, host, "kvstore")
    assert "rejected the credentials for repository 'kvstore'" in explained
