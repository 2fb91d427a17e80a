"""The arguments each function needs to run all of its steps in a plan (tests/ci helpers).

Required values a plan cannot invent usefully (the environment, an image digest) and the
optional tokens a strategy needs; everything else is a plan placeholder or a default.
"""

from __future__ import annotations

DIGEST = "sha256:" + "ab" * 32
TOKENS = {"git-token": "env://GIT_TOKEN", "argocd-token": "env://ARGOCD_AUTH_TOKEN"}

FLAGS: dict[str, dict[str, str]] = {
    "terraform-plan": {"env": "staging"},
    "terraform-apply": {"env": "staging"},
    "kubeconfig": {"env": "staging"},
    "helm-upgrade": {"env": "staging", "image": DIGEST},
    "promote": {"env": "staging", "image": DIGEST},
    "argocd-sync": {"env": "staging"},
    "deploy": {"env": "staging", **TOKENS},
    "rollback": {"env": "staging", **TOKENS},
    "deploy-monitoring": {"env": "staging", "argocd-token": TOKENS["argocd-token"]},
    "affected": {"base": "HEAD~1"},
}


def flags_of(name: str) -> dict[str, str]:
    """The flags for function ``name`` (kebab-case); none for the rest."""
    return dict(FLAGS.get(name, {}))
