"""GitOps promotion: the image an environment runs is the digest written in git.

:func:`set_image` edits ``deploy/kubernetes/environments/<env>/values.yaml`` in place: only
the characters of the ``image.digest`` (and optionally ``image.repository``) value change,
so comments, key order, quoting and indentation stay exactly as people wrote them.

:func:`promote_remote` clones the environment's branch, edits, commits with a message naming
the digest and the source revision, and pushes. It is a no-op when the digest is already
there. A push rejected because someone else pushed first is retried after a rebase; if the
rebase conflicts (another promotion of the same environment), the local commit is dropped,
the branch is taken as the remote has it and the edit is made again on top. Nothing is ever
force-pushed, so no one else's commit can be lost.

:func:`rollback_remote` reverts the promotion commit that set the environment's current
digest, which takes the environment back to the digest before it; run again, it steps back
once more. Promotion commits are found by their trailers (:data:`ENV_TRAILER`,
:data:`DIGEST_TRAILER`), not by parsing prose.
"""

from __future__ import annotations

import base64
import os
import random
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

__all__ = [
    "DIGEST_TRAILER",
    "ENV_TRAILER",
    "SOURCE_TRAILER",
    "GitIdentity",
    "PromotionError",
    "PromotionResult",
    "commit_message",
    "parse_image_reference",
    "promote_remote",
    "rollback_remote",
    "set_image",
    "values_path",
]

ENV_TRAILER = "Kvstore-Environment"
DIGEST_TRAILER = "Kvstore-Image-Digest"
SOURCE_TRAILER = "Kvstore-Source-Revision"

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_ATTEMPTS = 20

# `key: value  # comment` on one line; the value is quoted, plain, or absent.
_SCALAR_LINE = re.compile(
    r"""^(?P<head>\s*(?P<key>[A-Za-z0-9_.-]+)\s*:)(?P<gap>[ \t]*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#][^#]*?)?"""
    r"""(?P<tail>[ \t]+#.*|[ \t]*)$"""
)


class PromotionError(RuntimeError):
    """The promotion or rollback could not be made (the message says which step failed)."""


@dataclass(frozen=True)
class GitIdentity:
    """Who the promotion commits are made by."""

    name: str = "kvstore-ci"
    email: str = "kvstore-ci@users.noreply.github.com"


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion or rollback did: the commit the branch points at afterwards."""

    env: str
    digest: str
    changed: bool
    commit: str
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, printed by ``python -m kvstore_ci promote``."""
        return asdict(self)


def values_path(env: str) -> str:
    """The values file of ``env``, relative to the repository root."""
    return f"deploy/kubernetes/environments/{env}/values.yaml"


def parse_image_reference(reference: str) -> tuple[str, str]:
    """Split ``repo[:tag]@sha256:...`` (or a bare ``sha256:...``) into repository and digest.

    A tag is dropped (``publish`` returns ``<repo>:<tag>@sha256:...``): the values file
    holds the repository alone and the digest decides the image. A registry port
    (``host:5000/repo``) is not a tag.
    """
    named, _, digest = reference.rpartition("@")
    if not DIGEST.match(digest):
        raise PromotionError(
            f"{reference!r} is not pinned by digest: expected <repository>@sha256:<64 hex>"
        )
    head, slash, last = named.rpartition("/")
    return f"{head}{slash}{last.partition(':')[0]}", digest


def set_image(text: str, digest: str, repository: str = "", *, source: str = "") -> str:
    """``text`` with ``image.digest`` (and ``image.repository`` if given) set, nothing else.

    Raises :class:`PromotionError` when the file is not YAML or has no ``image.digest`` key:
    the chart's values contract is that the key exists, so a missing one is a broken file,
    not something to paper over by appending.
    """
    if not DIGEST.match(digest):
        raise PromotionError(f"{digest!r} is not a digest (sha256:<64 hex>)")
    updates = {"digest": digest}
    if repository:
        updates["repository"] = repository
    lines = text.splitlines(keepends=True)
    image = _image_mapping(text, source)
    for key, value in updates.items():
        if key not in image:
            raise PromotionError(f"{source or 'values'}: image.{key}: missing")
        line_no, _col = image.lc.key(key)
        lines[line_no] = _replace_value(lines[line_no], key, value, source)
    updated = "".join(lines)
    check = _image_mapping(updated, source)
    for key, value in updates.items():
        if check.get(key) != value:  # a guard on the line edit itself
            raise PromotionError(f"{source or 'values'}: image.{key}: edit did not take")
    return updated


def _image_mapping(text: str, source: str) -> CommentedMap:
    try:
        data = YAML(typ="rt").load(StringIO(text))
    except YAMLError as error:
        raise PromotionError(f"{source or 'values'}: not valid YAML: {error}") from error
    image = data.get("image") if isinstance(data, CommentedMap) else None
    if not isinstance(image, CommentedMap):
        raise PromotionError(f"{source or 'values'}: image: missing or not a mapping")
    return image


def _replace_value(line: str, key: str, value: str, source: str) -> str:
    """Replace the scalar on ``line`` (``key: old  # comment``), keeping quotes and comment."""
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    match = _SCALAR_LINE.match(body)
    if match is None or match["key"] != key or (match["value"] or " ")[0] in "|>&*![{":
        raise PromotionError(
            f"{source or 'values'}: image.{key}: the value must be a one-line scalar"
        )
    old = match["value"] or ""
    if old.startswith("'"):
        new = f"'{value}'"
    elif old.startswith('"') or not old:
        new = f'"{value}"'
    else:
        new = value
    gap = match["gap"] or " "
    return f"{match['head']}{gap}{new}{match['tail']}{ending}"


def commit_message(env: str, digest: str, source_revision: str, repository: str = "") -> str:
    """The promotion commit message: a readable subject and machine-readable trailers."""
    image = f"{repository}@{digest}" if repository else digest
    return (
        f"deploy({env}): promote {digest[:19]} built from {source_revision[:12]}\n\n"
        f"Image: {image}\n\n"
        f"{ENV_TRAILER}: {env}\n"
        f"{DIGEST_TRAILER}: {digest}\n"
        f"{SOURCE_TRAILER}: {source_revision}\n"
    )


class _Git:
    """git in one working directory, with an isolated configuration and optional token."""

    def __init__(self, workdir: Path, identity: GitIdentity, token: str) -> None:
        self.workdir = workdir
        self._env = {
            **os.environ,
            "GIT_AUTHOR_NAME": identity.name,
            "GIT_AUTHOR_EMAIL": identity.email,
            "GIT_COMMITTER_NAME": identity.name,
            "GIT_COMMITTER_EMAIL": identity.email,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }
        if token:
            # Through the environment, not the command line: `ps` must not show the token.
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            self._env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
        self._token = token

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", "-C", str(self.workdir), *args],
            capture_output=True,
            text=True,
            check=False,
            env=self._env,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise PromotionError(f"git {args[0]} failed: {self._redact(result.stderr.strip())}")
        return result

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _clone(remote: str, branch: str, workdir: Path, git: _Git) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / ".git").exists():
        raise PromotionError(f"{workdir} already holds a clone; promotion needs a fresh one")
    result = git.run("clone", "--quiet", "--branch", branch, "--", remote, ".", check=False)
    if result.returncode != 0:
        raise PromotionError(
            f"cannot clone branch {branch!r} of {_safe_remote(remote)}: "
            f"{git._redact(result.stderr.strip())}"
        )


def _safe_remote(remote: str) -> str:
    """The remote URL without any user:password part."""
    return re.sub(r"//[^/@]+@", "//", remote)


# What git says when the branch moved between our fetch and our push (including the race
# of two pushes landing at the same instant on the server's ref lock).
_RETRYABLE_PUSH = ("non-fast-forward", "fetch first", "failed to update ref", "cannot lock ref")


def _push(git: _Git, branch: str) -> bool:
    """Push HEAD to ``branch``; False when rejected because the remote moved on."""
    result = git.run("push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}", check=False)
    if result.returncode == 0:
        return True
    output = result.stdout + result.stderr
    if any(marker in output for marker in _RETRYABLE_PUSH):
        return False
    raise PromotionError(f"push to {branch!r} failed: {git._redact(output.strip())}")


def _catch_up(git: _Git, branch: str) -> None:
    """Bring the local branch on top of the remote: rebase, or drop ours on a conflict."""
    git.run("fetch", "--quiet", "origin", branch)
    rebase = git.run("rebase", "--quiet", f"origin/{branch}", check=False)
    if rebase.returncode != 0:
        git.run("rebase", "--abort", check=False)
        git.run("reset", "--quiet", "--hard", f"origin/{branch}")


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # noqa: S311


def promote_remote(
    *,
    remote: str,
    branch: str,
    workdir: Path,
    env: str,
    digest: str,
    source_revision: str,
    repository: str = "",
    token: str = "",
    identity: GitIdentity | None = None,
) -> PromotionResult:
    """Write ``digest`` into ``env``'s values on ``branch`` of ``remote`` and push it."""
    if not DIGEST.match(digest):
        raise PromotionError(f"{digest!r} is not a digest (sha256:<64 hex>)")
    git = _Git(workdir, identity or GitIdentity(), token)
    _clone(remote, branch, workdir, git)
    relative = values_path(env)
    path = workdir / relative
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise PromotionError(f"{relative}: cannot read on {branch!r}: {error}") from error
        updated = set_image(text, digest, repository, source=relative)
        if updated == text:
            if git.out("rev-parse", "HEAD") == git.out("rev-parse", f"origin/{branch}"):
                return PromotionResult(env, digest, False, git.out("rev-parse", "HEAD"), attempt)
        else:
            path.write_text(updated, encoding="utf-8")
            git.run("add", "--", relative)
            message = commit_message(env, digest, source_revision, repository)
            git.run("commit", "--quiet", "-m", message, "--", relative)
        if _push(git, branch):
            return PromotionResult(env, digest, True, git.out("rev-parse", "HEAD"), attempt)
        _catch_up(git, branch)
        _backoff(attempt)
    raise PromotionError(
        f"gave up promoting {digest} to {env} after {MAX_ATTEMPTS} attempts: {branch!r} kept moving"
    )


def _current_digest(path: Path, relative: str) -> str:
    image = _image_mapping(path.read_text(encoding="utf-8"), relative)
    return str(image.get("digest") or "")


def _promotion_commit(git: _Git, env: str, digest: str) -> str:
    """The newest commit whose trailers say it promoted ``digest`` to ``env``."""
    log = git.out(
        "log",
        "--format=%H%x00%(trailers:key=" + ENV_TRAILER + ",valueonly,separator=%x01)%x00"
        "%(trailers:key=" + DIGEST_TRAILER + ",valueonly,separator=%x01)",
        "--",
        values_path(env),
    )
    for line in log.splitlines():
        sha, envs, digests = [*line.split("\0"), "", ""][:3]
        if env in envs.split("\x01") and digest in digests.split("\x01"):
            return sha
    raise PromotionError(
        f"no promotion commit of {digest} to {env} found in the history of {values_path(env)}"
    )


def rollback_remote(
    *,
    remote: str,
    branch: str,
    workdir: Path,
    env: str,
    token: str = "",
    identity: GitIdentity | None = None,
) -> PromotionResult:
    """Revert the promotion that set ``env``'s current digest, and push the revert."""
    git = _Git(workdir, identity or GitIdentity(), token)
    _clone(remote, branch, workdir, git)
    relative = values_path(env)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        current = _current_digest(workdir / relative, relative)
        promotion = _promotion_commit(git, env, current)
        revert = git.run("revert", "--no-edit", "--no-commit", promotion, check=False)
        if revert.returncode != 0:
            git.run("revert", "--abort", check=False)
            raise PromotionError(
                f"cannot revert promotion {promotion[:12]} of {env}: later commits changed the"
                f" same lines; promote the wanted digest instead ({revert.stderr.strip()})"
            )
        restored = _current_digest(workdir / relative, relative)
        message = (
            f"deploy({env}): roll back {current[:19]} to {restored[:19]}\n\n"
            f"This reverts commit {promotion}.\n\n"
            f"{ENV_TRAILER}: {env}\n"
            f"Kvstore-Rolled-Back-Digest: {current}\n"
        )
        git.run("commit", "--quiet", "-m", message)
        if _push(git, branch):
            return PromotionResult(env, restored, True, git.out("rev-parse", "HEAD"), attempt)
        git.run("fetch", "--quiet", "origin", branch)
        git.run("reset", "--quiet", "--hard", f"origin/{branch}")
        _backoff(attempt)
    raise PromotionError(f"gave up rolling back {env} after {MAX_ATTEMPTS} attempts")
