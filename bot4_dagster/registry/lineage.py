"""The mandatory lineage tags of a registered version (reference/trading.md §3.4), taken from
the bundle's own manifest so the registry cannot disagree with the artifact it points at.

A version without any of them is refused before anything is written (M1): a model whose code,
data or parent cannot be named cannot be reproduced, audited or safely rolled back to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..ml.bundle import canonical_json

#: tag -> what it names; every one must be present and non-empty
MANDATORY = {
    "git_sha": "the commit of the code that trained the bundle",
    "dagster_run_id": "the Dagster run that materialized ml/model_candidate",
    "partitions": "the partitions trained on (JSON)",
    "data_versions": "the Dagster data versions of the inputs (JSON)",
    "data_snapshot_digest": "sha256 of partitions and data versions together",
    "feature_set_version": "sha256 of the ordered feature names, 16 digits",
    "train_window": "first and last label start, last label end, samples (JSON)",
    "parent_version": "the registered version of the parent bundle, or 'none'",
    "artifact_sha256": "sha256 of the bundle's manifest.json (which hashes every other file)",
}
#: files that may run code when loaded: never in a registered artifact (M5)
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".dill", ".cloudpickle")


class LineageError(ValueError):
    """A registration refused because its lineage is incomplete."""


def lineage_tags(manifest: Mapping[str, Any], artifact_sha256: str,
                 parent_version: str | None) -> dict[str, str]:
    """The mandatory tags of the bundle ``manifest``; LineageError names every missing one."""
    lineage = manifest.get("lineage") or {}
    partitions, data_versions = lineage.get("partitions"), lineage.get("data_versions")
    features = manifest.get("features") or []
    snapshot = ({"partitions": partitions, "data_versions": data_versions}
                if partitions and data_versions else None)
    tags = {
        "git_sha": lineage.get("git_commit"),
        "dagster_run_id": lineage.get("run_id"),
        "partitions": _json(partitions),
        "data_versions": _json(data_versions),
        "data_snapshot_digest": hashlib.sha256(canonical_json(snapshot)).hexdigest()
        if snapshot else None,
        "feature_set_version": hashlib.sha256(json.dumps(list(features)).encode()).hexdigest()[:16]
        if features else None,
        "train_window": _json(lineage.get("train_window")),
        "parent_version": parent_version or "none",
        "artifact_sha256": artifact_sha256,
    }
    missing = [name for name, value in tags.items() if not value]
    if missing:
        raise LineageError(
            "registration refused: the bundle's lineage lacks "
            + "; ".join(f"{name} ({MANDATORY[name]})" for name in missing)
            + ". Build the candidate by materializing ml/model_candidate in a Dagster run of a "
              "git checkout, so every one is recorded.")
    return {name: str(value) for name, value in tags.items()}


def missing_tags(tags: Mapping[str, str]) -> list[str]:
    """The mandatory tags absent from (or empty in) a version's ``tags``."""
    return [name for name in MANDATORY if not tags.get(name)]


def unsafe_files(path: Path) -> list[str]:
    """Files under ``path`` whose format may execute code on load (pickle and its kin)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")
                  if p.is_file() and p.suffix.lower() in UNSAFE_SUFFIXES)


def _json(value: Any) -> str | None:
    return json.dumps(value, sort_keys=True, default=str) if value else None
