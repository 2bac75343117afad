"""``ml/base_models`` and ``ml/oof_predictions`` per symbol: every (learner, scheme, split) trained
as its own step, so the multiprocess and Dask executors spread the folds over the cores, then
collected into the stored out-of-fold predictions; and ``ml/stacking_ensemble``, the blends and
the walk-forward evaluation on them."""

import dagster as dg
import pandas as pd

from ..automation.conditions import refresh_when_deps_update
from ..automation.partitions import SYMBOLS
from ..ml.dataset import learning_samples
from ..ml.ensemble_report import diversity_table, ensemble_report
from ..ml.insufficient import InsufficientData
from ..ml.learners import LEARNERS
from ..ml.oof import SCHEMES, oof_table, sample_count
from ..ml.training import (
    lstm_diagnostics,
    model_index,
    stored_bytes,
    train_planned,
    training_plan,
    training_seconds,
)
from ..report import markdown_image, plot_attention, plot_learning_curves, plot_scores
from ..resources.training import TrainingResource
from .keys import BARS, BASE_MODELS, ENSEMBLE, FEATURES, FOLDS, LABELS, OOF
from .metadata import column_schema, table

STEP_IO = "step_io"


@dg.op(out=dg.DynamicOut(io_manager_key=STEP_IO),
       description="One step per (learner, scheme, split) of the stored folds.")
def plan_training(context: dg.OpExecutionContext, bars: pd.DataFrame, features: pd.DataFrame,
                  labels: pd.DataFrame, folds: pd.DataFrame):
    samples = _samples(context, bars, features, labels)
    for job in training_plan(samples, folds, LEARNERS, SCHEMES):
        yield dg.DynamicOutput(job, mapping_key=f"{job['learner']}_{job['scheme']}_{job['split']}")


def _samples(context, bars, features, labels):
    try:
        return learning_samples(bars, features, labels, symbol=context.partition_key)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None


@dg.op(out=dg.Out(io_manager_key=STEP_IO), tags={"dagster/concurrency_key": "training"},
       description="Fit the inputs and one learner on a split's training rows; predict its test "
                   "rows; store the model (safetensors / skops, with sha256).")
def train_split(context: dg.OpExecutionContext, training: TrainingResource, job: dict,
                bars: pd.DataFrame, features: pd.DataFrame, labels: pd.DataFrame
                ) -> pd.DataFrame:
    symbol = context.partition_key

    def progress(epoch: int, train_loss: float, val_loss: float) -> None:
        context.log.info(f"{job['learner']} {job['scheme']} split {job['split']}: epoch {epoch} "
                         f"train loss {train_loss:.4f}, validation loss {val_loss:.4f}")

    try:
        return train_planned(job, _samples(context, bars, features, labels), symbol=symbol,
                             settings=training.settings(), seed=training.seed,
                             progress=progress)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None


@dg.op(out={"base_models": dg.Out(), "oof_predictions": dg.Out()},
       description="Collect the trained splits: the model index and the out-of-fold "
                   "predictions.")
def collect_training(context: dg.OpExecutionContext, trained: list[pd.DataFrame]):
    symbol = context.partition_key
    rows = pd.concat(trained, ignore_index=True)
    models = model_index(rows, symbol)
    oof = oof_table(rows, symbol)
    yield dg.Output(models, "base_models", metadata={
        "models": dg.MetadataValue.int(len(models)),
        "bytes": dg.MetadataValue.int(stored_bytes(models)),
        "training_seconds": table(training_seconds(models)),
        "per_fold": table(models[["learner", "scheme", "split", "n_train", "n_test", "seconds",
                                  "best_epoch", "sha256"]]),
        **_lstm_plots(models, symbol),
    })
    yield dg.Output(oof, "oof_predictions", metadata={
        "rows": dg.MetadataValue.int(len(oof)),
        "samples": dg.MetadataValue.int(sample_count(oof)),
    })


def _lstm_plots(models: pd.DataFrame, symbol: str) -> dict:
    curves, attention = lstm_diagnostics(models)
    if not curves or attention is None:
        return {}
    return {
        "learning_curves": dg.MetadataValue.md(markdown_image(
            plot_learning_curves(curves, f"{symbol}: attention LSTM"), "learning curves")),
        "attention": dg.MetadataValue.md(markdown_image(plot_attention(
            attention, f"{symbol}: attention of the last walk-forward test window"),
            "attention heatmap")),
    }


def _per_symbol(key: dg.AssetKey, table_name: str, description: str) -> dg.AssetOut:
    return dg.AssetOut(key=key, description=description, kinds={"duckdb", "pytorch"},
                       automation_condition=refresh_when_deps_update(),
                       metadata={"partition_expr": "symbol",
                                 "dagster/column_schema": column_schema(table_name)})


@dg.graph_multi_asset(
    outs={
        "base_models": _per_symbol(
            BASE_MODELS, "ml.base_models",
            "The trained base learners, one per (learner, scheme, split): attention LSTM, "
            "gradient boosting, logistic regression, extra trees; path and sha256 of each."),
        "oof_predictions": _per_symbol(
            OOF, "ml.oof_predictions",
            "Out-of-fold probabilities: purged K-fold (every sample once per learner) and "
            "purged walk-forward (trained on the past only)."),
    },
    ins={"bars": dg.AssetIn(BARS), "features": dg.AssetIn(FEATURES),
         "labels": dg.AssetIn(LABELS), "folds": dg.AssetIn(FOLDS)},
    partitions_def=SYMBOLS,
    group_name="models",
)
def base_models(bars, features, labels, folds):
    trained = plan_training(bars, features, labels, folds).map(
        lambda job: train_split(job, bars, features, labels))
    return collect_training(trained.collect())


@dg.asset(
    key=ENSEMBLE, partitions_def=SYMBOLS, group_name="models",
    ins={"oof": dg.AssetIn(OOF), "labels": dg.AssetIn(LABELS)},
    metadata={"partition_expr": "symbol",
              "dagster/column_schema": column_schema("ml.stacking_ensemble")},
    automation_condition=refresh_when_deps_update(), kinds={"duckdb", "scikitlearn"},
    code_version="1",
    description="Five blends of the base learners' out-of-fold probabilities (mean, weighted, "
                "rank, median, logistic stacking), their diversity, and the walk-forward "
                "evaluation of every learner and blend with standard errors, PBO and DSR.",
)
def stacking_ensemble(context: dg.AssetExecutionContext, oof: pd.DataFrame,
                      labels: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    try:
        report = ensemble_report(oof, labels, symbol=symbol)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    walk = report.walk_forward
    return dg.MaterializeResult(value=report.stored, metadata={
        "walk_forward": table(walk.metrics),
        "scores": dg.MetadataValue.md(markdown_image(plot_scores(
            walk.metrics, f"{symbol}: walk-forward, out of sample"), "scores")),
        "purged_kfold_oof": table(report.oof_metrics),
        "weights": table(report.weights()),
        "diversity": table(diversity_table(report.diversity)),
        "diversity_score": dg.MetadataValue.float(float(report.diversity.D_av)),
        "pairs": table(report.pairs),
        "pbo": dg.MetadataValue.float(walk.pbo),
        "selected": walk.selected,
        "selected_sharpe": dg.MetadataValue.float(walk.selected_sharpe),
        "deflated_sharpe_ratio": dg.MetadataValue.float(walk.deflated_sharpe),
        "configurations_tried": dg.MetadataValue.int(walk.n_trials),
    })
