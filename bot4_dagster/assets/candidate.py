"""``ml/model_candidate`` per symbol: every learner refitted on all samples with the blend and the
per-regime calibrator, stored as one verified, content-addressed bundle under
``BOT4_HOME/models/candidates`` and indexed in ``ml.model_candidates``; and its blocking check,
which reads the bundle back and reproduces the training side's predictions."""

import dagster as dg
import pandas as pd

from ..automation.conditions import refresh_when_deps_update
from ..automation.partitions import SYMBOLS
from ..ml.candidate import build_candidate, candidate_index, latest_candidate
from ..ml.candidate_check import check_newest
from ..ml.dataset import learning_samples
from ..ml.insufficient import InsufficientData
from ..resources.training import TrainingResource
from .keys import BARS, CANDIDATE, FEATURES, FOLDS, LABELS, OOF
from .lineage import input_data_versions
from .metadata import column_schema, table

INPUTS = {"bars": dg.AssetIn(BARS), "features": dg.AssetIn(FEATURES),
          "labels": dg.AssetIn(LABELS), "oof": dg.AssetIn(OOF), "folds": dg.AssetIn(FOLDS)}


@dg.asset(
    key=CANDIDATE, partitions_def=SYMBOLS, group_name="models", ins=INPUTS,
    metadata={"partition_expr": "symbol", "table": "ml.model_candidates",
              "dagster/column_schema": column_schema("ml.model_candidates")},
    automation_condition=refresh_when_deps_update(), kinds={"duckdb", "safetensors"},
    tags={"dagster/concurrency_key": "training"}, code_version="1",
    description="The model candidate: the four learners refitted on every sample, the weighted "
                "blend and the per-regime isotonic calibrator as one safetensors bundle with its "
                "manifest and lineage (git commit, run, data versions, train window, profile, "
                "parent); no pickle. ml.model_candidates indexes every stored bundle.",
)
def model_candidate(context: dg.AssetExecutionContext, training: TrainingResource,
                    bars: pd.DataFrame, features: pd.DataFrame, labels: pd.DataFrame,
                    oof: pd.DataFrame, folds: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key

    def progress(epoch: int, train_loss: float, val_loss: float) -> None:
        context.log.info(f"candidate attention_lstm: epoch {epoch} train loss {train_loss:.4f}, "
                         f"validation loss {val_loss:.4f}")

    try:
        samples = learning_samples(bars, features, labels, symbol=symbol)
        candidate = build_candidate(
            samples, oof, folds, symbol=symbol, settings=training.settings(),
            seed=training.seed, run_id=context.run_id,
            data_versions=input_data_versions(context, [BARS, FEATURES, LABELS, FOLDS, OOF]),
            parent=latest_candidate(symbol), progress=progress, log=context.log.info)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    stored = candidate.write()
    manifest = candidate.manifest
    return dg.MaterializeResult(value=candidate_index(symbol), metadata={
        "bundle_id": stored.id,
        "path": dg.MetadataValue.path(str(stored.path)),
        "bytes": dg.MetadataValue.int(stored.size),
        "sha256": stored.sha256,
        "parent": manifest["lineage"]["parent"] or "none",
        "lineage": dg.MetadataValue.json(manifest["lineage"]),
        **{name: table(frame) for name, frame in candidate.tables().items()},
        "features": ", ".join(manifest["features"]),
    })


@dg.asset_check(asset=CANDIDATE, blocking=True, partitions_def=SYMBOLS,
                additional_ins=INPUTS,
                description="Reads the newest bundle back through the verifying loader (manifest, "
                            "sha256 of every file, safetensors header) and reproduces, from its "
                            "arrays alone: each learner's and the calibrated ensemble's "
                            "predictions of its self-test rows, those rows' inputs from the raw "
                            "bars, and the calibrated out-of-fold probabilities of 256 stored "
                            "rows as the training side computes them; then serves 256 raw "
                            "windows through the numba champion (bot4_dagster.serving) against "
                            "that reference.")
def candidate_reproduces_training(context: dg.AssetCheckExecutionContext,
                                  model_candidate: pd.DataFrame, bars: pd.DataFrame,
                                  features: pd.DataFrame, labels: pd.DataFrame,
                                  oof: pd.DataFrame, folds: pd.DataFrame
                                  ) -> dg.AssetCheckResult:
    symbol = context.partition_key
    samples = learning_samples(bars, features, labels, symbol=symbol)
    result = check_newest(model_candidate, samples, oof, folds, symbol=symbol)
    metadata = {"bundle_id": result.bundle_id, "problem": result.problem or "none"}
    if result.agreements:
        metadata["comparisons"] = table(result.table())
    return dg.AssetCheckResult(passed=result.passed, metadata=metadata)
