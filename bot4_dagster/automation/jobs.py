"""Jobs, built from the asset graph rather than listed: one per asset group (the UI's natural
unit: "re-run the features"; multiprocess, like every run the definitions' executor governs), and
``symbol_pipeline``, every per-symbol asset from ingest to the last stage, which is what
``bot4 run`` launches for each symbol, in-process. A new asset joins its group's job and the
pipeline without an edit here."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from .partitions import SYMBOLS

PIPELINE = "symbol_pipeline"


def build_jobs(assets: Sequence[dg.AssetsDefinition]) -> list[dg.UnresolvedAssetJobDefinition]:
    groups: dict[str, set[dg.AssetKey]] = {}
    per_symbol: set[dg.AssetKey] = set()
    for definition in assets:
        for spec in definition.specs:
            groups.setdefault(spec.group_name or "default", set()).add(spec.key)
            if spec.partitions_def == SYMBOLS:
                per_symbol.add(spec.key)
    jobs = [dg.define_asset_job(f"{group}_job", selection=dg.AssetSelection.groups(group),
                                description=f"Materialize the assets of group '{group}'.")
            for group in sorted(groups)]
    # In-process: `bot4 run` runs one pipeline per symbol at once, so its steps need no process
    # of their own; on 2 cores a process per step (import, resources, IO) cost a third of a run.
    jobs.append(dg.define_asset_job(
        PIPELINE, selection=dg.AssetSelection.assets(*sorted(per_symbol)), partitions_def=SYMBOLS,
        executor_def=dg.in_process_executor,
        description="Everything per symbol, ingest to the last stage, in dependency order: a "
                    "failed step (or blocking check) stops what depends on it."))
    return jobs
