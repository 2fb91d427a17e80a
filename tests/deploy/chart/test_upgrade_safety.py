"""An upgrade never changes a StatefulSet's immutable fields.

Two references: the chart as it was before its latest change in git (rendered with that
commit's environment values), and a committed record of the fields
(baseline/immutable-fields.json), which also covers a shallow clone or the chart's first
commit. Changing that record is a deliberate act that needs a migration plan.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.deploy.chart.immutable import immutable_changes, immutable_fields
from tests.deploy.rendering import (
    CHART,
    ENVIRONMENTS,
    KUBERNETES,
    env_values,
    render,
    render_env,
)
from tests.tooling import ROOT, require_tool

BASELINE = Path(__file__).parent / "baseline" / "immutable-fields.json"
TRACKED = [
    CHART.relative_to(ROOT).as_posix(),
    (KUBERNETES / "environments").relative_to(ROOT).as_posix(),
]


def git(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("git")
    return subprocess.run(
        [binary, "-C", str(ROOT), *args], capture_output=True, text=True, check=False, timeout=60
    )


def previous_chart_commit() -> str | None:
    """The commit holding the chart before its latest change, or None when there is none.

    With uncommitted changes to the chart, that is HEAD; otherwise the parent of the last
    commit that touched the chart or the environment values, when it has the chart at all.
    """
    if git("diff", "--quiet", "HEAD", "--", *TRACKED).returncode != 0:
        candidate = "HEAD"
    else:
        last = git("log", "-n", "1", "--format=%H", "--", *TRACKED).stdout.strip()
        if not last:
            return None
        parent = git("rev-parse", "--verify", "--quiet", f"{last}^")
        if parent.returncode != 0:
            return None
        candidate = parent.stdout.strip()
    chart_yaml = f"{candidate}:{TRACKED[0]}/Chart.yaml"
    return candidate if git("cat-file", "-e", chart_yaml).returncode == 0 else None


def extract(commit: str, destination: Path) -> None:
    """The chart and environment values of ``commit``, written under ``destination``."""
    binary = require_tool("git")
    archive = subprocess.run(
        [binary, "-C", str(ROOT), "archive", "--format=tar", commit, *TRACKED],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")


def current_fields() -> dict[str, dict[str, dict[str, object]]]:
    return {env: immutable_fields(render_env(env)) for env in ENVIRONMENTS}


def test_upgrade_from_the_previous_chart_keeps_immutable_fields(tmp_path: Path) -> None:
    commit = previous_chart_commit()
    if commit is None:
        # The chart's first version (or a shallow clone): the committed record is the reference.
        old = json.loads(BASELINE.read_text())
    else:
        extract(commit, tmp_path)
        old_chart = tmp_path / CHART.relative_to(ROOT)
        old = {}
        for env in ENVIRONMENTS:
            old_values = tmp_path / env_values(env).relative_to(ROOT)
            old[env] = immutable_fields(
                render(old_chart, [old_values] if old_values.exists() else [])
            )
    new = current_fields()
    for env in ENVIRONMENTS:
        assert immutable_changes(old[env], new[env]) == [], env


def test_immutable_fields_match_the_committed_record() -> None:
    assert current_fields() == json.loads(BASELINE.read_text())


def break_chart(tmp_path: Path) -> Path:
    """A copy of the chart with each immutable field changed the way a careless edit would."""
    copy = tmp_path / "kvstore"
    shutil.copytree(CHART, copy)
    helpers = copy / "templates" / "_helpers.tpl"
    instance = "app.kubernetes.io/instance: {{ .Release.Name }}\n"
    version = "app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}\n"
    text = helpers.read_text()
    helpers.write_text(
        text.replace(instance + "{{- end -}}", instance + version + "{{- end -}}", 1)
    )
    sts = copy / "templates" / "statefulset.yaml"
    text = sts.read_text()
    text = text.replace(
        'serviceName: {{ include "kvstore.headlessName" . }}',
        'serviceName: {{ include "kvstore.fullname" . }}',
    )
    text = text.replace("          - ReadWriteOnce", "          - ReadWriteOncePod")
    text = text.replace("podManagementPolicy: Parallel", "podManagementPolicy: OrderedReady")
    sts.write_text(text)
    return copy


def test_the_checker_catches_a_broken_chart(tmp_path: Path) -> None:
    broken = render(break_chart(tmp_path), [env_values("staging")])
    changes = immutable_changes(immutable_fields(render_env("staging")), immutable_fields(broken))
    changed = sorted(change.split(": ")[1].split(" ")[0] for change in changes)
    assert changed == ["podManagementPolicy", "selector", "serviceName", "volumeClaimTemplates"]


def test_the_checker_catches_a_renamed_statefulset() -> None:
    before = immutable_fields(render_env("staging"))
    after = immutable_fields(render_env("staging", sets=["fullnameOverride=kvstore-v2"]))
    assert immutable_changes(before, after) == [
        "StatefulSet kvstore/kvstore disappears (renamed or removed)"
    ]


def test_mutable_changes_pass_the_checker() -> None:
    """Replica count, image and resources change freely."""
    before = immutable_fields(render_env("staging"))
    after = immutable_fields(
        render_env(
            "staging",
            sets=[
                "replicas=5",
                "image.digest=sha256:" + "cd" * 32,
                "resources.limits.cpu=4",
            ],
        )
    )
    assert immutable_changes(before, after) == []
