"""The module's main object, ``KvstoreCi``: one function per pipeline stage.

The functions live by family in :mod:`kvstore_ci.functions`; this class only joins the
families and holds the module's one argument, ``mirror``.
"""

from __future__ import annotations

from typing import Annotated

from dagger import Doc, object_type

from kvstore_ci.functions.checks import CheckFunctions
from kvstore_ci.functions.deploy import DeployFunctions
from kvstore_ci.functions.monitoring import MonitoringFunctions
from kvstore_ci.functions.terraform import TerraformFunctions

__all__ = ["KvstoreCi"]


@object_type
class KvstoreCi(CheckFunctions, TerraformFunctions, DeployFunctions, MonitoringFunctions):
    """Lint, test, build, publish and deploy the kvstore."""

    mirror: Annotated[
        str,
        Doc(
            "Registry host (and optional path) to pull every base image from instead of"
            " its public registry, e.g. 'registry.internal:5000/hub'. Digests are kept."
        ),
    ] = ""
