"""Jobs that the CLI, schedules and sensors launch."""

from __future__ import annotations

import dagster as dg

from .partitions import BAR_PARTITIONS, SYMBOLS, TICK_PARTITIONS

ingest_bars_job = dg.define_asset_job(
    "ingest_bars", selection=dg.AssetSelection.assets(["market", "bars"]),
    partitions_def=BAR_PARTITIONS, description="Ingest and validate bars for a symbol and month(s).",
)
ingest_ticks_job = dg.define_asset_job(
    "ingest_ticks",
    selection=dg.AssetSelection.assets(["market", "trades"], ["market", "quotes"]),
    partitions_def=TICK_PARTITIONS,
    description="Ingest and validate trades and quotes for a symbol and day(s).",
)
features_job = dg.define_asset_job(
    "microstructure_features", selection=dg.AssetSelection.assets(["features", "microstructure_features"]),
    partitions_def=SYMBOLS, description="Recompute the microstructure features of a symbol.",
)
volatility_job = dg.define_asset_job(
    "garch_volatility", selection=dg.AssetSelection.assets(["ml", "garch_volatility"]),
    partitions_def=SYMBOLS, description="Refit GARCH volatility and regimes of a symbol.",
)
labels_job = dg.define_asset_job(
    "labels_and_folds",
    selection=dg.AssetSelection.assets(["ml", "labels"], ["ml", "cv_folds"], ["ml", "leakage_proof"]),
    partitions_def=SYMBOLS,
    description="Triple-barrier labels, purged CV folds (checked for leakage) and the leakage proof.",
)
perf_manifest_job = dg.define_asset_job(
    "perf_manifest_job", selection=dg.AssetSelection.assets(["perf", "manifest"]),
    description="Refresh the performance manifest (hardware, versions, latest benchmarks).",
)

JOBS = [ingest_bars_job, ingest_ticks_job, features_job, volatility_job, labels_job,
        perf_manifest_job]
