"""etcdctl 3.5 (built by scripts/peers) runs one battery of commands against a
fresh 3-member etcd (Debian's 3.4.23) and a fresh 3-member store: every step must end with
the same exit status, and its output must be the same once the values that differ between
any two clusters (ids, addresses, revisions, terms, sizes, versions, times) are masked."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from kvstore.verify.cluster import RAFT_FLAGS, Kind, LocalCluster
from tests.kvstore.server.conftest import running
from tests.peers.suites import etcdctl_path
from tests.tooling import missing

pytestmark = [pytest.mark.peers, pytest.mark.slow]

Step = tuple[str, list[str], str | None]

STEPS: list[Step] = [
    ("put", ["put", "foo", "bar"], None),
    ("put prev-kv", ["put", "foo", "bar2", "--prev-kv"], None),
    ("put ignore-value, no key", ["put", "nokey", "--ignore-value"], None),
    ("put ignore-value", ["put", "foo", "--ignore-value"], None),
    ("put ignore-lease, no lease", ["put", "foo", "x", "--ignore-lease"], None),
    ("get", ["get", "foo"], None),
    ("get json", ["get", "foo", "-w", "json"], None),
    ("get fields", ["get", "foo", "-w", "fields"], None),
    ("get missing", ["get", "missing"], None),
    ("put app/a", ["put", "app/a", "1"], None),
    ("put app/b", ["put", "app/b", "2"], None),
    ("put app/c", ["put", "app/c", "3"], None),
    ("get prefix", ["get", "app/", "--prefix"], None),
    ("get keys-only", ["get", "app/", "--prefix", "--keys-only"], None),
    ("get count-only", ["get", "app/", "--prefix", "--count-only", "-w", "json"], None),
    ("get limit", ["get", "app/", "--prefix", "--limit", "2"], None),
    ("get sorted", ["get", "app/", "--prefix", "--sort-by", "KEY", "--order", "DESCEND"], None),
    ("get bad sort", ["get", "app/", "--prefix", "--sort-by", "WHAT"], None),
    ("get range", ["get", "app/a", "app/c"], None),
    ("get from-key", ["get", "app/b", "--from-key", "--keys-only"], None),
    ("get at revision", ["get", "foo", "--rev", "1"], None),
    ("get future revision", ["get", "foo", "--rev", "100000"], None),
    ("get serializable", ["get", "foo", "--consistency", "s"], None),
    ("get value only", ["get", "foo", "--print-value-only"], None),
    ("get min-mod-revision", ["get", "app/", "--prefix", "--min-mod-revision", "5"], None),
    ("del", ["del", "app/a"], None),
    ("del prev-kv", ["del", "app/b", "--prev-kv"], None),
    ("del missing", ["del", "nothing"], None),
    ("del prefix", ["del", "app/", "--prefix"], None),
    ("txn success", ["txn"], 'value("foo") = "bar2"\n\nput txn-yes 1\n\nput txn-no 1\n\n'),
    ("txn failure", ["txn"], 'value("foo") = "nope"\n\nput txn-yes 2\n\nput txn-no 2\n\n'),
    ("txn json", ["txn", "-w", "json"], "\nput b 2\nget foo\ndel b --prev-kv\n\n\n"),
    ("txn bad", ["txn"], "bogus\n\n\n"),
    ("compaction", ["compaction", "3"], None),
    ("compaction again", ["compaction", "2"], None),
    ("get compacted", ["get", "foo", "--rev", "2"], None),
    ("compaction future", ["compaction", "100000"], None),
    ("lease grant", ["lease", "grant", "600"], None),
    ("lease grant bad", ["lease", "grant", "abc"], None),
    ("lease list", ["lease", "list"], None),
    ("lease timetolive missing", ["lease", "timetolive", "1234abcd"], None),
    ("lease revoke missing", ["lease", "revoke", "1234abcd"], None),
    ("lease keep-alive missing", ["lease", "keep-alive", "--once", "1234abcd"], None),
    ("put with missing lease", ["put", "leased", "v", "--lease", "1234abcd"], None),
    ("member list", ["member", "list"], None),
    ("member list json", ["member", "list", "-w", "json"], None),
    ("member list table", ["member", "list", "-w", "table"], None),
    ("member remove missing", ["member", "remove", "1234abcd"], None),
    ("member update missing", ["member", "update", "1234abcd", "--peer-urls=http://h:1"], None),
    ("member promote missing", ["member", "promote", "1234abcd"], None),
    ("member add bad url", ["member", "add", "x", "--peer-urls=notaurl"], None),
    ("endpoint health", ["endpoint", "health"], None),
    ("endpoint health json", ["endpoint", "health", "-w", "json"], None),
    ("endpoint status", ["endpoint", "status"], None),
    ("endpoint status json", ["endpoint", "status", "-w", "json"], None),
    ("endpoint hashkv", ["endpoint", "hashkv"], None),
    ("alarm list", ["alarm", "list"], None),
    ("alarm disarm", ["alarm", "disarm"], None),
    ("defrag", ["defrag"], None),
    ("move-leader to nobody", ["move-leader", "1234abcd"], None),
    ("lock", ["lock", "mylock", "echo", "locked"], None),
    ("user list", ["user", "list"], None),
    ("role list", ["role", "list"], None),
    ("user get missing", ["user", "get", "nobody"], None),
    ("role get missing", ["role", "get", "nobody"], None),
    ("user add, role add, grant", ["user", "add", "u1:pw"], None),
    ("role add", ["role", "add", "r1"], None),
    (
        "role grant-permission",
        ["role", "grant-permission", "r1", "readwrite", "k", "--prefix"],
        None,
    ),
    ("user grant-role", ["user", "grant-role", "u1", "r1"], None),
    ("user get", ["user", "get", "u1", "--detail"], None),
    ("version", ["version"], None),
]

STEPS.append(("auth status", ["auth", "status"], None))

REFERENCE_GAPS = {
    "auth status": "etcd 3.4 has no AuthStatus call (3.5 added it); the store answers as 3.5",
}
"""Steps whose outcome the reference server (3.4) cannot give; run, but not compared."""

_MASKS = [
    (re.compile(r'^\{"level":"warn".*$\n?', re.MULTILINE), ""),  # the client's retry log
    (re.compile(r"\d+(\.\d+)? (B|kB|MB)\b"), "SIZE"),
    (re.compile(r"127\.\d+\.\d+\.\d+:\d+"), "ADDR"),
    (re.compile(r"\b3\.[45]\.\d+\b"), "VERSION"),
    (re.compile(r"\b[0-9a-f]{12,16}\b"), "HEX"),
    (re.compile(r"\d+(\.\d+)?(ms|µs|s)\b"), "DURATION"),
    (re.compile(r"\d+"), "N"),
    (re.compile(r" {2,}"), " "),  # table columns as wide as the values in them
    (re.compile(r"-{3,}"), "---"),
]


PER_MEMBER = {
    "endpoint status",
    "endpoint health",
    "endpoint hashkv",
    "member list",
    "member list table",
}
"""Steps printing a line per member, in an order that depends on ids or timing."""


def _mask(name: str, text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return "\n".join(sorted(text.splitlines())) if name in PER_MEMBER else text


def _run_battery(etcdctl: str, cluster: LocalCluster) -> list[tuple[str, int, str]]:
    env = {**os.environ, "ETCDCTL_API": "3"}
    eps = ",".join(cluster.endpoints)
    out: list[tuple[str, int, str]] = []
    for name, argv, stdin in STEPS:
        result = subprocess.run(
            [etcdctl, "--endpoints", eps, "--command-timeout=5s", *argv],
            input=stdin, capture_output=True, text=True, env=env, timeout=30, check=False,
        )  # fmt: skip
        out.append((name, result.returncode, _mask(name, result.stdout + "\n" + result.stderr)))
    return out


def _etcdctl() -> str:
    path = etcdctl_path()
    if not os.access(path, os.X_OK):
        missing(f"etcdctl is not built in {path.parent} (scripts/peers build)")
    return str(path)


def test_the_etcdctl_35_battery_differs_from_etcd_only_in_values(tmp_path: Path) -> None:
    etcdctl = _etcdctl()
    with running(LocalCluster(tmp_path / "etcd", 3, kind=Kind.ETCD, extra=RAFT_FLAGS)) as etcd:
        reference = _run_battery(etcdctl, etcd)
    with running(LocalCluster(tmp_path / "kv", 3, extra=RAFT_FLAGS)) as kv:
        ours = _run_battery(etcdctl, kv)
    differences = [
        f"{name}: etcd exit {ref_code}, kvstore exit {code}\n--- etcd\n{ref_out}--- kvstore\n{out}"
        for (name, ref_code, ref_out), (_, code, out) in zip(reference, ours, strict=True)
        if name not in REFERENCE_GAPS and (ref_code, ref_out) != (code, out)
    ]
    compared = len(STEPS) - len(REFERENCE_GAPS)
    print(f"etcdctl 3.5 battery: {compared - len(differences)} of {compared} steps the same")
    assert not differences, "\n\n".join(differences)
