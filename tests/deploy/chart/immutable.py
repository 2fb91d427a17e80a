"""Which StatefulSet fields an upgrade may not change, and whether a new rendering changes them.

Kubernetes rejects an update of a StatefulSet's selector, serviceName, volumeClaimTemplates or
podManagementPolicy; Argo CD or helm would then fail mid-rollout, and "fixing" it by deleting
the StatefulSet re-creates the members under new names or volumes. The comparison is pure:
it takes rendered manifests and returns readable differences.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

IMMUTABLE_FIELDS = ("selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy")

Fields = dict[str, dict[str, Any]]


def immutable_fields(manifests: Iterable[Mapping[str, Any]]) -> Fields:
    """The immutable fields of every StatefulSet, keyed by "namespace/name"."""
    fields: Fields = {}
    for manifest in manifests:
        if manifest.get("kind") != "StatefulSet":
            continue
        meta = manifest["metadata"]
        key = f"{meta.get('namespace', '')}/{meta['name']}"
        spec = manifest["spec"]
        fields[key] = {field: spec.get(field) for field in IMMUTABLE_FIELDS}
    return fields


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def immutable_changes(old: Fields, new: Fields) -> list[str]:
    """Every change an upgrade from ``old`` to ``new`` would make to an immutable field.

    A StatefulSet that disappears is a change too: its replacement would start with new
    volumes, that is as a new cluster.
    """
    changes: list[str] = []
    for key, old_fields in sorted(old.items()):
        if key not in new:
            changes.append(f"StatefulSet {key} disappears (renamed or removed)")
            continue
        for field in IMMUTABLE_FIELDS:
            before, after = old_fields.get(field), new[key].get(field)
            if before != after:
                changes.append(
                    f"StatefulSet {key}: {field} would change"
                    f" from {_show(before)} to {_show(after)}"
                )
    return changes
