"""The peer suites: which client each is, where scripts/peers installed it, and how its own
tests are told where the server is.

The two Python clients' suites were written for a 3-member etcd that pifpaf starts
(``pifpaf run etcd --cluster``): members ``pifpaf0..2``, the first on ``localhost:2379``, its
URL in an environment variable (``PYTHON_ETCD_HTTP_URL`` for python-etcd3,
``TEST_ETCD_HTTP_URL`` for aetcd). Some of their tests rely on more than the variable: they
connect to the default ``localhost:2379``, run ``etcdctl`` with its default endpoint, or
SIGSTOP the processes whose command line holds ``--name pifpaf1`` or ``pifpaf2`` to take
the quorum away. The runner (tests/peers/runner.py) gives them exactly that setting, so
their tests run unmodified. The Go program (tests/peers/goclient) takes ``--endpoints``.

The cache layout and stamps here must agree with scripts/peers, which builds them.
"""

from __future__ import annotations

import enum
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tests.tooling import ROOT, tool_pins

CACHE_ENV = "KVSTORE_PEERS_CACHE"
DEFAULT_CACHE = Path("/var/cache/kvstore-peers")
GOCLIENT_SRC = ROOT / "tests" / "peers" / "goclient"
GOCLIENT_MODULE = "go.etcd.io/etcd/client/v3"
MEMBER_NAMES = ("pifpaf0", "pifpaf1", "pifpaf2")
"""pifpaf's member names, which the suites match with ``pgrep -f '--name pifpaf[12]'``."""
FIRST_CLIENT_PORT = 2379
"""The first member listens on 127.0.0.1:2379, the default endpoint of etcd clients and
etcdctl, which some of the suites' tests use."""


class Report(enum.StrEnum):
    """How a suite reports its results."""

    JUNIT = "junit"
    """pytest's JUnit XML (``--junitxml``)."""
    JSON_LINES = "jsonl"
    """One JSON object per check on stdout: ``{"check": ..., "ok": ..., "error": ...}``."""


def cache_dir() -> Path:
    """Where scripts/peers installs the suites (``KVSTORE_PEERS_CACHE`` overrides)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def etcdctl_path() -> Path:
    """etcd's etcdctl at ``PEERS_ETCDCTL``, as scripts/peers builds it."""
    return cache_dir() / f"etcdctl-{tool_pins()['PEERS_ETCDCTL']}" / "etcdctl"


@dataclass(frozen=True)
class Suite:
    """One peer suite.

    ``pin`` names the scripts/tools.env entry (``NAME==X.Y.Z``; ``<pin>_TEST_DEPS`` holds
    its test dependencies) for a Python client, and is empty for the Go program.
    ``pytest_args`` follow ``python -m pytest`` in the suite's source directory;
    ``endpoint_env`` is the variable through which its tests find the first member.
    """

    name: str
    report: Report
    pin: str = ""
    pytest_args: tuple[str, ...] = ()
    endpoint_env: str = ""
    version_env: str = ""
    """A variable through which the suite's tests learn the etcd version they run against
    (they skip what older versions lack); both runs are given the reference etcd's."""

    @property
    def is_python(self) -> bool:
        return self.report is Report.JUNIT

    def spec(self) -> str:
        """The client's pinned requirement, e.g. ``etcd3==0.12.0``."""
        return tool_pins()[self.pin]

    def install_dir(self, cache: Path) -> Path:
        """The suite's directory in the cache: ``<name>-<version>`` (scripts/peers)."""
        if self.is_python:
            package, _, version = self.spec().partition("==")
            return cache / f"{package}-{version}"
        return cache / f"goclient-{goclient_client_version()}"

    def source_dir(self, cache: Path) -> Path:
        """The unpacked source distribution (the suite's root directory)."""
        package, _, version = self.spec().partition("==")
        return self.install_dir(cache) / "src" / f"{package}-{version}"

    def python(self, cache: Path) -> Path:
        return self.install_dir(cache) / "venv" / "bin" / "python"

    def goclient(self, cache: Path) -> Path:
        return self.install_dir(cache) / "goclient"

    def expected_stamp(self) -> str:
        """What scripts/peers writes into ``stamp`` when it builds this suite."""
        if self.is_python:
            pins = tool_pins()
            return f"{pins[self.pin]};{pins[self.pin + '_TEST_DEPS']}"
        return goclient_stamp()

    def stale_reason(self, cache: Path) -> str | None:
        """Why the cached install cannot be used, or None when it matches the pins."""
        stamp_file = self.install_dir(cache) / "stamp"
        try:
            found = stamp_file.read_text().strip()
        except OSError:
            return f"{self.name} is not installed in {self.install_dir(cache)}"
        if found != self.expected_stamp():
            return f"{self.name} in {self.install_dir(cache)} was built from other pins"
        return None


def goclient_client_version() -> str:
    """The clientv3 version tests/peers/goclient/go.mod requires."""
    for raw in (GOCLIENT_SRC / "go.mod").read_text().splitlines():
        words = raw.split()
        if len(words) >= 2 and words[0] == GOCLIENT_MODULE:
            return words[1]
    raise ValueError(f"tests/peers/goclient/go.mod does not require {GOCLIENT_MODULE}")


def goclient_stamp() -> str:
    """SHA-256 of main.go, go.mod and go.sum, as scripts/peers computes it."""
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((GOCLIENT_SRC / name).read_bytes())
    return digest.hexdigest()


PYTHON_ETCD3 = Suite(
    name="python-etcd3",
    report=Report.JUNIT,
    pin="PEERS_ETCD3",
    pytest_args=("tests/test_etcd3.py",),
    endpoint_env="PYTHON_ETCD_HTTP_URL",
    version_env="TEST_ETCD_VERSION",  # it defaults to v3.2.8, skipping nested txns
)
AETCD = Suite(
    name="aetcd",
    report=Report.JUNIT,
    pin="PEERS_AETCD",
    # As its Makefile's `testcluster` target runs it; coverage is left out (it only costs).
    pytest_args=("--with-cluster", "--no-cov"),
    endpoint_env="TEST_ETCD_HTTP_URL",
)
GO_CLIENTV3 = Suite(name="go-clientv3", report=Report.JSON_LINES)
SUITES = {s.name: s for s in (PYTHON_ETCD3, AETCD, GO_CLIENTV3)}
