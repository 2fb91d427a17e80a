"""Which pipelines a change triggers: the one source of truth for the path rules.

:data:`PIPELINE_PATHS` maps each pipeline to the paths that trigger it. The GitHub Actions
workflows' ``paths:`` filters are derived from it (:func:`github_path_filters`) and checked
against it by the workflow tests, and :func:`affected` applies it to the files changed
between two revisions, so "what does this change deploy" has one answer everywhere.

A rule ending in ``/`` matches everything below that directory; any other rule matches that
exact file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "PIPELINES",
    "PIPELINE_PATHS",
    "AffectedError",
    "affected",
    "changed_files",
    "github_path_filters",
    "pipelines_for",
]

PIPELINE_PATHS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # terraform init, plan (reviewed on the pull request), apply of that plan
        "infrastructure": ("deploy/terraform/",),
        # test, build and push the image, promote its digest (or helm upgrade)
        "application": (
            "kvstore/",
            "Dockerfile",
            ".dockerignore",
            "pyproject.toml",
            "constraints.txt",
            "deploy/kubernetes/charts/",
            "deploy/kubernetes/environments/",
        ),
        # Prometheus rules, Grafana dashboards, Jaeger
        "monitoring": ("deploy/kubernetes/monitoring/",),
    }
)
"""Pipeline name to the paths whose change triggers it."""

PIPELINES: tuple[str, ...] = tuple(PIPELINE_PATHS)
"""The pipelines in the order they are reported."""

# What `git push` reports as the previous revision of a branch that did not exist before.
_NULL_REVISION = "0" * 40


class AffectedError(RuntimeError):
    """The revisions cannot be compared (unknown revision, not a git repository)."""


def _matches(path: str, rule: str) -> bool:
    if rule.endswith("/"):
        return path.startswith(rule)
    return path == rule


def pipelines_for(paths: Iterable[str]) -> list[str]:
    """The pipelines that changes to ``paths`` trigger, in :data:`PIPELINES` order."""
    changed = list(paths)
    return [
        pipeline
        for pipeline, rules in PIPELINE_PATHS.items()
        if any(_matches(path, rule) for path in changed for rule in rules)
    ]


def github_path_filters(pipeline: str) -> list[str]:
    """The ``on.<event>.paths`` patterns of GitHub Actions equivalent to ``pipeline``'s rules."""
    return [rule + "**" if rule.endswith("/") else rule for rule in PIPELINE_PATHS[pipeline]]


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise AffectedError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def changed_files(repo: Path, base: str, head: str) -> list[str]:
    """Files that differ between the merge base of ``base`` and ``head``, and ``head``.

    This is what a pull request shows (three-dot diff), and for a push of a linear history
    it is simply the pushed commits. Renames count as a deletion plus an addition, so moving
    a file out of a pipeline's directory still triggers that pipeline.
    """
    for revision in (base, head):
        try:
            _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
        except AffectedError:
            raise AffectedError(
                f"unknown revision {revision!r} in {repo} (is the history fetched deep enough?)"
            ) from None
    output = _git(repo, "diff", "--name-only", "--no-renames", "-z", f"{base}...{head}")
    return sorted(path for path in output.split("\0") if path)


def affected(repo: Path, base: str, head: str) -> list[str]:
    """The pipelines triggered by the change from ``base`` to ``head`` in ``repo``.

    An empty or all-zero ``base`` (the first push of a branch) has nothing to compare with,
    so every pipeline runs: skipping a deploy is worse than running one that changes nothing.
    """
    if not base or base == _NULL_REVISION:
        return list(PIPELINES)
    return pipelines_for(changed_files(repo, base, head))
