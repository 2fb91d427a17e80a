"""A parsed view of deploy/terraform and the review rules the structural tests enforce.

No provider can be downloaded on the test machines, so ``terraform validate`` cannot check
the AWS modules. What a reviewer checks by reading (every variable typed and described,
sources pinned, no ``*`` on ``*``, ...) is checked here on the HCL parsed by python-hcl2.

Each rule is a pure function from parsed HCL to a list of problems (empty when the rule
holds), so the tests can show both that the tree passes and that the rule catches a
violation written on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

from tests.tooling import ROOT

TERRAFORM_ROOT = ROOT / "deploy" / "terraform"
MODULES = TERRAFORM_ROOT / "modules"
ENVS = TERRAFORM_ROOT / "envs"
BOOTSTRAP = TERRAFORM_ROOT / "bootstrap"

Body = dict[str, Any]

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_GIT_REF = re.compile(r"[?&]ref=(?P<ref>[0-9a-f]{40}|v?\d+\.\d+\.\d+)$")


def parse_text(text: str) -> Body:
    """Parse HCL text into python-hcl2's dict form, with quotes stripped."""
    body: Body = hcl2.loads(text, serialization_options=_OPTIONS)
    return body


def parse_file(path: Path) -> Body:
    """Parse one .tf or .tfvars file."""
    return parse_text(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Directory:
    """The .tf files of one module or root directory, parsed."""

    path: Path
    files: dict[str, Body]

    @property
    def name(self) -> str:
        """The path relative to deploy/terraform (when inside it), for messages."""
        if self.path.is_relative_to(TERRAFORM_ROOT):
            return str(self.path.relative_to(TERRAFORM_ROOT))
        return str(self.path)


def load_directory(path: Path) -> Directory:
    """Parse every .tf file directly in ``path``."""
    return Directory(path, {tf.name: parse_file(tf) for tf in sorted(path.glob("*.tf"))})


def terraform_directories() -> list[Path]:
    """Every module and root directory: each directory holding .tf files, tests excluded."""
    return sorted(
        {
            tf.parent
            for tf in TERRAFORM_ROOT.rglob("*.tf")
            if ".terraform" not in tf.parts and "tests" not in tf.parts
        }
    )


def labelled(body: Body, kind: str) -> Iterator[tuple[str, Body]]:
    """The blocks of ``kind`` with one label (variable, output, module), as (name, body)."""
    for block in body.get(kind, []):
        yield from block.items()


def labelled_all(directory: Directory, kind: str = "module") -> Iterator[tuple[str, Body]]:
    """The one-label blocks of ``kind`` across every file of a directory."""
    for body in directory.files.values():
        yield from labelled(body, kind)


def typed(body: Body, kind: str) -> Iterator[tuple[str, str, Body]]:
    """The blocks of ``kind`` with two labels (resource, data), as (type, name, body)."""
    for block in body.get(kind, []):
        for type_name, by_name in block.items():
            for name, attributes in by_name.items():
                yield type_name, name, attributes


def settings(body: Body) -> Iterator[Body]:
    """The terraform {} blocks of a file."""
    yield from body.get("terraform", [])


def as_list(value: Any) -> list[Any]:
    """A scalar as a one-element list; a list unchanged; None as empty."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------
# Rules. Each returns the problems found, as messages naming where.


def variable_problems(body: Body, where: str) -> list[str]:
    """Variables without a type or without a non-empty description."""
    problems = []
    for name, attributes in labelled(body, "variable"):
        if "type" not in attributes:
            problems.append(f"{where}: variable {name} has no type")
        if not str(attributes.get("description", "")).strip():
            problems.append(f"{where}: variable {name} has no description")
    return problems


def output_problems(body: Body, where: str) -> list[str]:
    """Outputs without a non-empty description."""
    return [
        f"{where}: output {name} has no description"
        for name, attributes in labelled(body, "output")
        if not str(attributes.get("description", "")).strip()
    ]


def policy_statements(body: Body) -> Iterator[tuple[str, Body]]:
    """Every statement of every aws_iam_policy_document, static or dynamic, as (doc, statement)."""
    for _, name, document in typed(body, "data"):
        if _ != "aws_iam_policy_document":
            continue
        for statement in as_list(document.get("statement")):
            yield name, statement
        for dynamic in as_list(document.get("dynamic")):
            for content in as_list(dynamic.get("statement", {}).get("content")):
                yield name, content


def star_on_star_problems(body: Body, where: str) -> list[str]:
    """Allow statements granting every action on every resource, or everything but a list."""
    problems = []
    for document, statement in policy_statements(body):
        if statement.get("effect", "Allow") == "Deny":
            continue
        actions = as_list(statement.get("actions"))
        resources = as_list(statement.get("resources"))
        if "not_actions" in statement:
            problems.append(f"{where}: {document} allows everything but a list (not_actions)")
        if "*" in actions and ("*" in resources or "not_resources" in statement):
            problems.append(f"{where}: {document} allows action * on resource *")
    return problems


def module_source_problems(body: Body, directory: Path, where: str) -> list[str]:
    """Module sources that are not pinned: a missing local path, an unversioned registry
    module, or a git source without an exact tag or commit."""
    problems = []
    for name, attributes in labelled(body, "module"):
        source = str(attributes.get("source", ""))
        if source.startswith(("./", "../")):
            if not (directory / source).resolve().is_dir():
                problems.append(f"{where}: module {name} points at missing {source}")
        elif source.startswith(("git::", "github.com/")) or ".git" in source:
            if not _GIT_REF.search(source):
                problems.append(f"{where}: module {name} git source lacks ref=<tag|sha>")
        elif not _SEMVER.match(str(attributes.get("version", ""))):
            problems.append(f"{where}: module {name} ({source}) needs an exact version")
    return problems


def version_constraint_problems(directory: Directory) -> list[str]:
    """A module without a bounded required_version, or using a provider it does not pin."""
    where = directory.name
    blocks = [block for body in directory.files.values() for block in settings(body)]
    problems = []
    required = [str(block["required_version"]) for block in blocks if "required_version" in block]
    if not required:
        problems.append(f"{where}: no required_version")
    elif not all(">=" in text and "<" in text.replace("<=", "<") for text in required):
        problems.append(f"{where}: required_version {required} needs a lower and an upper bound")
    pinned: dict[str, Body] = {}
    for block in blocks:
        for entry in as_list(block.get("required_providers")):
            pinned.update(entry)
    for name, provider in pinned.items():
        if not isinstance(provider, dict) or "source" not in provider:
            problems.append(f"{where}: provider {name} has no source")
        elif ">=" not in str(provider.get("version", "")) or "<" not in str(
            provider.get("version", "")
        ).replace("<=", "<"):
            problems.append(f"{where}: provider {name} needs a bounded version constraint")
    used = {
        type_name.split("_", 1)[0]
        for body in directory.files.values()
        for kind in ("resource", "data")
        for type_name, _, _ in typed(body, kind)
    }
    problems.extend(
        f"{where}: uses provider {name} without required_providers"
        for name in sorted(used - set(pinned))
    )
    return problems


def backend_blocks(body: Body) -> list[tuple[str, Body]]:
    """The backend blocks of a file, as (type, settings)."""
    return [
        (kind, config)
        for block in settings(body)
        for backend in as_list(block.get("backend"))
        for kind, config in backend.items()
    ]


def web_identity_trusts(body: Body) -> Iterator[tuple[str, Body]]:
    """Statements that let a federated (OIDC) principal assume a role."""
    for document, statement in policy_statements(body):
        if "sts:AssumeRoleWithWebIdentity" in as_list(statement.get("actions")):
            yield document, statement


def conditions_by_claim(statement: Body) -> dict[str, Body]:
    """A trust statement's conditions keyed by the claim after the issuer (sub, aud)."""
    return {
        str(condition["variable"]).rsplit(":", 1)[-1]: condition
        for condition in as_list(statement.get("condition"))
    }


def skip_comments(text: str) -> list[tuple[str, str]]:
    """The inline checkov skips of a file, as (check id, reason)."""
    return re.findall(r"#checkov:skip=([A-Z0-9_]+):?(.*)", text)
