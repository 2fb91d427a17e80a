"""GitOps promotion and rollback on real git repositories.

A bare repository on disk is the remote; every promotion clones it, edits, commits and
pushes with the real git CLI, as the ``promote`` stage does in its container.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from kvstore_ci.promotion import (
    DIGEST_TRAILER,
    ENV_TRAILER,
    SOURCE_TRAILER,
    PromotionError,
    parse_image_reference,
    promote_remote,
    rollback_remote,
    set_image,
    values_path,
)

from tests.ci.gitrepo import commit, git, init

OLD = "sha256:" + "0" * 64
DIGESTS = ["sha256:" + f"{n:x}" * 64 for n in range(1, 8)]

VALUES = f"""\
# Staging values: only what differs from the chart's defaults.
replicaCount: 3   # a Raft cluster of three

# image -- the store's image; the pipeline writes the digest below.
image:
  # image.repository -- ECR repository of the store.
  repository: 111111111111.dkr.ecr.eu-west-1.amazonaws.com/kvstore
  # image.digest -- what this environment runs (written by promotion).
  digest: "{OLD}"  # promoted by CI
  pullPolicy: IfNotPresent

resources:
  requests: {{cpu: 250m, memory: 256Mi}}
"""


def test_set_image_changes_only_the_value() -> None:
    new = DIGESTS[0]
    updated = set_image(VALUES, new)
    assert updated == VALUES.replace(OLD, new)
    assert set_image(updated, new) == updated, "setting the same digest changes nothing"


def test_set_image_keeps_quoting_and_can_set_repository() -> None:
    plain = VALUES.replace(f'"{OLD}"', OLD)
    assert f"  digest: {DIGESTS[1]}  # promoted by CI\n" in set_image(plain, DIGESTS[1])
    single = VALUES.replace(f'"{OLD}"', f"'{OLD}'")
    assert f"  digest: '{DIGESTS[1]}'  # promoted" in set_image(single, DIGESTS[1])
    empty = VALUES.replace(f'"{OLD}"  # promoted by CI', '""')
    assert f'  digest: "{DIGESTS[1]}"\n' in set_image(empty, DIGESTS[1])
    moved = set_image(VALUES, DIGESTS[1], "registry.local/kvstore")
    assert "  repository: registry.local/kvstore\n" in moved
    assert moved.count("\n") == VALUES.count("\n")


@pytest.mark.parametrize(
    ("text", "digest", "message"),
    [
        (VALUES, "sha256:abc", "is not a digest"),
        ("replicaCount: 3\n", DIGESTS[0], "image: missing or not a mapping"),
        ("image:\n  repository: x\n", DIGESTS[0], "image.digest: missing"),
        ("image:\n  digest: >\n    folded\n", DIGESTS[0], "must be a one-line scalar"),
        ("image: [unclosed\n", DIGESTS[0], "not valid YAML"),
    ],
)
def test_set_image_refuses_broken_files(text: str, digest: str, message: str) -> None:
    with pytest.raises(PromotionError, match=message):
        set_image(text, digest, source="values.yaml")


def test_image_reference() -> None:
    assert parse_image_reference(f"r.example/kvstore@{DIGESTS[0]}") == (
        "r.example/kvstore",
        DIGESTS[0],
    )
    # publish returns <repository>:<tag>@<digest>; the tag is not part of the repository.
    tagged = f"1.dkr.ecr.eu-west-1.amazonaws.com/kvstore:c0ffee@{DIGESTS[0]}"
    assert parse_image_reference(tagged) == (
        "1.dkr.ecr.eu-west-1.amazonaws.com/kvstore",
        DIGESTS[0],
    )
    assert parse_image_reference(f"localhost:5000/team/kvstore@{DIGESTS[0]}") == (
        "localhost:5000/team/kvstore",
        DIGESTS[0],
    )
    assert parse_image_reference(DIGESTS[0]) == ("", DIGESTS[0])
    with pytest.raises(PromotionError, match="not pinned by digest"):
        parse_image_reference("r.example/kvstore:latest")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare remote whose `staging` branch holds both environments' values."""
    seed = init(tmp_path / "seed", branch="staging")
    commit(
        seed,
        {
            values_path("staging"): VALUES,
            values_path("production"): VALUES,
            "README.md": "kvstore\n",
        },
        "initial",
    )
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def _read(remote: Path, path: str, branch: str = "staging") -> str:
    return git(remote, "show", f"{branch}:{path}") + "\n"


def _promote(remote: Path, workdir: Path, digest: str, env: str = "staging") -> object:
    return promote_remote(
        remote=str(remote),
        branch="staging",
        workdir=workdir,
        env=env,
        digest=digest,
        source_revision="c0ffee" * 6 + "abcd",
    )


def test_promotion_commits_and_pushes(remote: Path, tmp_path: Path) -> None:
    result = _promote(remote, tmp_path / "w1", DIGESTS[0])
    assert result.changed and result.attempts == 1  # type: ignore[attr-defined]
    assert git(remote, "rev-parse", "staging") == result.commit  # type: ignore[attr-defined]
    assert _read(remote, values_path("staging")) == VALUES.replace(OLD, DIGESTS[0])
    assert _read(remote, values_path("production")) == VALUES, "other environment untouched"
    message = git(remote, "log", "-1", "--format=%B", "staging")
    assert message.startswith(f"deploy(staging): promote {DIGESTS[0][:19]} built from c0ffee")
    assert f"{ENV_TRAILER}: staging" in message
    assert f"{DIGEST_TRAILER}: {DIGESTS[0]}" in message
    assert f"{SOURCE_TRAILER}: {'c0ffee' * 6}abcd" in message
    changed = git(remote, "show", "--name-only", "--format=", "staging")
    assert changed == values_path("staging"), "the commit touches the values file only"


def test_repeated_promotion_is_a_no_op(remote: Path, tmp_path: Path) -> None:
    first = _promote(remote, tmp_path / "w1", DIGESTS[0])
    again = _promote(remote, tmp_path / "w2", DIGESTS[0])
    assert not again.changed  # type: ignore[attr-defined]
    assert again.commit == first.commit  # type: ignore[attr-defined]
    assert git(remote, "rev-list", "--count", "staging") == "2"


def test_push_after_someone_else_pushed_rebases(remote: Path, tmp_path: Path) -> None:
    """A commit lands between our clone and our push: we rebase on it and keep it."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "staging", str(remote), str(other))
    theirs = commit(other, {"README.md": "kvstore, edited\n"}, "docs: someone else's change")

    # Race: clone first, then let the other commit land, then push.
    workdir = tmp_path / "w1"
    from kvstore_ci import promotion  # noqa: PLC0415

    real_push = promotion._push
    pushed_theirs = False

    def push_theirs_first(g: object, branch: str) -> bool:
        nonlocal pushed_theirs
        if not pushed_theirs:
            git(other, "push", "-q", "origin", "staging")
            pushed_theirs = True
        return real_push(g, branch)  # type: ignore[arg-type]

    promotion._push = push_theirs_first  # type: ignore[assignment]
    try:
        result = _promote(remote, workdir, DIGESTS[0])
    finally:
        promotion._push = real_push
    assert result.changed and result.attempts == 2  # type: ignore[attr-defined]
    assert git(remote, "rev-parse", "staging~1") == theirs, "their commit kept, ours on top"
    assert _read(remote, "README.md") == "kvstore, edited\n"
    assert DIGESTS[0] in _read(remote, values_path("staging"))


def test_conflicting_promotion_is_redone_on_top(remote: Path, tmp_path: Path) -> None:
    """Someone promoted the same environment meanwhile: the rebase conflicts, we redo it."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "staging", str(remote), str(other))
    conflicting = set_image(VALUES, DIGESTS[5])
    theirs = commit(other, {values_path("staging"): conflicting}, "hand edit of staging")

    from kvstore_ci import promotion  # noqa: PLC0415

    real_push = promotion._push
    calls = 0

    def push_theirs_first(g: object, branch: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            git(other, "push", "-q", "origin", "staging")
        return real_push(g, branch)  # type: ignore[arg-type]

    promotion._push = push_theirs_first  # type: ignore[assignment]
    try:
        result = _promote(remote, tmp_path / "w1", DIGESTS[0])
    finally:
        promotion._push = real_push
    assert result.changed and result.attempts == 2  # type: ignore[attr-defined]
    assert git(remote, "rev-parse", "staging~1") == theirs
    assert _read(remote, values_path("staging")) == VALUES.replace(OLD, DIGESTS[0])


@pytest.mark.slow
def test_concurrent_pushers_lose_nothing(remote: Path, tmp_path: Path) -> None:
    """Four promotions (both environments) and two unrelated pushes, all at once."""
    errors: list[BaseException] = []
    results: list[object] = []

    def promote(n: int) -> None:
        try:
            env = "staging" if n % 2 else "production"
            results.append(_promote(remote, tmp_path / f"p{n}", DIGESTS[n], env))
        except BaseException as error:
            errors.append(error)

    def unrelated(n: int) -> None:
        try:
            work = tmp_path / f"u{n}"
            git(tmp_path, "clone", "-q", "--branch", "staging", str(remote), str(work))
            commit(work, {f"notes/{n}.md": f"note {n}\n"}, f"notes: {n}")
            for _ in range(20):
                pushed = _try_push(work)
                if pushed:
                    return
                git(work, "pull", "-q", "--rebase", "origin", "staging")
            raise AssertionError("unrelated push never landed")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=promote, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=unrelated, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    assert len(results) == 4 and all(r.changed for r in results)  # type: ignore[attr-defined]
    log = git(remote, "log", "--format=%s", "staging").splitlines()
    assert len(log) == 1 + 4 + 2, log
    for n in range(2):
        assert f"notes: {n}" in log
        assert _read(remote, f"notes/{n}.md") == f"note {n}\n"
    for n in range(4):
        assert any(line.startswith("deploy(") and DIGESTS[n][:19] in line for line in log)
    # Each environment ends at the digest of its last promotion to land.
    for env in ("staging", "production"):
        last = git(remote, "log", "-1", f"--grep={ENV_TRAILER}: {env}", "--format=%B", "staging")
        digest = last.split(f"{DIGEST_TRAILER}: ")[1].split()[0]
        assert f'digest: "{digest}"' in _read(remote, values_path(env))


def _try_push(work: Path) -> bool:
    import subprocess  # noqa: PLC0415

    result = subprocess.run(
        ["git", "-C", str(work), "push", "-q", "origin", "staging"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    return result.returncode == 0


def test_rollback_reverts_the_last_promotion(remote: Path, tmp_path: Path) -> None:
    _promote(remote, tmp_path / "w1", DIGESTS[0])
    _promote(remote, tmp_path / "w2", DIGESTS[1])
    _promote(remote, tmp_path / "w3", DIGESTS[1], env="production")

    def rollback(name: str) -> object:
        return rollback_remote(
            remote=str(remote), branch="staging", workdir=tmp_path / name, env="staging"
        )

    first = rollback("r1")
    assert first.digest == DIGESTS[0] and first.changed  # type: ignore[attr-defined]
    assert f'digest: "{DIGESTS[0]}"' in _read(remote, values_path("staging"))
    assert f'digest: "{DIGESTS[1]}"' in _read(remote, values_path("production"))
    subject = git(remote, "log", "-1", "--format=%s", "staging")
    assert subject == f"deploy(staging): roll back {DIGESTS[1][:19]} to {DIGESTS[0][:19]}"
    second = rollback("r2")
    assert second.digest == OLD  # type: ignore[attr-defined]
    assert _read(remote, values_path("staging")) == VALUES
    with pytest.raises(PromotionError, match=f"no promotion commit of {OLD} to staging"):
        rollback("r3")


def test_missing_branch_is_a_clear_error(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(PromotionError, match="cannot clone branch 'nope'"):
        promote_remote(
            remote=str(remote),
            branch="nope",
            workdir=tmp_path / "w",
            env="staging",
            digest=DIGESTS[0],
            source_revision="abc",
        )


def test_command_line_promote_and_rollback(
    remote: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m kvstore_ci promote|rollback`, what the stage's container runs."""
    from kvstore_ci.__main__ import main  # noqa: PLC0415

    common = ["--env", "staging", "--remote", str(remote), "--branch", "staging"]
    image = f"registry.local/kvstore@{DIGESTS[2]}"
    argv = ["promote", *common, "--image", image, "--source-revision", "abc123"]
    assert main([*argv, "--workdir", str(tmp_path / "c1")]) == 0
    promoted = json.loads(capsys.readouterr().out)
    assert promoted["changed"] and promoted["digest"] == DIGESTS[2]
    values = _read(remote, values_path("staging"))
    assert "  repository: registry.local/kvstore\n" in values
    assert f'digest: "{DIGESTS[2]}"' in values

    assert main(["rollback", *common, "--workdir", str(tmp_path / "c2")]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == OLD
    assert _read(remote, values_path("staging")) == VALUES

    bad = ["promote", *common, "--image", "kvstore:latest", "--source-revision", "x"]
    assert main([*bad, "--workdir", str(tmp_path / "c3")]) == 1
    assert "promote: 'kvstore:latest' is not pinned by digest" in capsys.readouterr().err
