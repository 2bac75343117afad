"""``registry.model_versions``: every registered version of a symbol's model as a warehouse row,
so the registry's state is queryable beside the data it was trained on (``make status``,
DuckDB). Built from MLflow's version objects; MLflow itself is not imported here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

COLUMNS = ("symbol", "model", "version", "aliases", "bundle_id", "artifact_sha256",
           "dagster_run_id", "git_sha", "parent_version", "quarantined", "registered_at",
           "model_uri")  # registry.model_versions


def versions_table(versions: Iterable[Any], aliases: Mapping[str, str], *, model: str,
                   symbol: str) -> pd.DataFrame:
    """One row per MLflow ``ModelVersion`` of ``model``, oldest first; ``aliases`` maps an
    alias to the version it points at."""
    held: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        held.setdefault(str(version), []).append(alias)
    rows = [{"symbol": symbol, "model": model, "version": int(v.version),
             "aliases": ",".join(held.get(str(v.version), [])),
             "bundle_id": v.tags.get("bundle_id"), "artifact_sha256": v.tags.get("artifact_sha256"),
             "dagster_run_id": v.tags.get("dagster_run_id"), "git_sha": v.tags.get("git_sha"),
             "parent_version": v.tags.get("parent_version"),
             "quarantined": v.tags.get("quarantined") == "true",
             "registered_at": pd.Timestamp(int(v.creation_timestamp), unit="ms", tz="UTC"),
             "model_uri": f"models:/{model}/{v.version}"} for v in versions]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["registered_at"] = pd.to_datetime(frame["registered_at"], utc=True)
    strings = ("symbol", "model", "aliases", "bundle_id", "artifact_sha256", "dagster_run_id",
               "git_sha", "parent_version", "model_uri")
    return (frame.sort_values("version", ignore_index=True)
            .astype({c: "string" for c in strings} | {"version": "int64", "quarantined": "bool"}))
