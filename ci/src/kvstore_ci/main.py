"""The module's main object: one function per pipeline stage."""

from __future__ import annotations

from typing import Annotated

import dagger
from dagger import Doc, dag, function, object_type

from kvstore_ci import images


@object_type
class KvstoreCi:
    """Lint, test, build, publish and deploy the kvstore."""

    mirror: Annotated[
        str,
        Doc(
            "Registry host (and optional path) to pull every base image from instead of"
            " its public registry, e.g. 'registry.internal:5000/hub'. Digests are kept."
        ),
    ] = ""

    @function
    def python_base(self) -> dagger.Container:
        """The pinned Python image every Python stage starts from."""
        return dag.container().from_(images.with_mirror(images.PYTHON, self.mirror))
