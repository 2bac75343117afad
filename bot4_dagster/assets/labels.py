"""``ml/labels``, ``ml/cv_folds`` and ``ml/leakage_proof`` per symbol: triple-barrier labels on
GARCH volatility, purged and combinatorial folds checked for leakage, and the measured effect of
purging on out-of-sample AUC."""

import dagster as dg
import pandas as pd

from ..automation.conditions import refresh_when_deps_update
from ..automation.partitions import SYMBOLS
from ..ml.folds import (
    fold_splitters,
    folds_table,
    role_matrices,
    role_totals,
    split_counts,
    stored_fold_violations,
    stored_schemes,
)
from ..ml.insufficient import InsufficientData
from ..ml.labels import label_counts, label_table, mean_uniqueness
from ..ml.leakage import leakage_proof_of_tables
from ..report import markdown_image, plot_folds
from .keys import BARS, FEATURES, FOLDS, LABELS, LEAKAGE, VOLATILITY
from .metadata import column_schema, table


class LabelConfig(dg.Config):
    upper: float = 2.0  # profit-taking barrier, in units of the next bar's GARCH volatility
    lower: float = 2.0  # stop-loss barrier
    horizon: int = 10  # vertical barrier, in bars


class FoldConfig(dg.Config):
    n_splits: int = 5  # PurgedKFold and PurgedWalkForward
    cpcv_folds: int = 6
    cpcv_test_folds: int = 2
    embargo_pct: float = 0.01  # embargo as a share of the samples (AFML: 1%)


class LeakageConfig(dg.Config):
    n_splits: int = 5
    max_samples: int = 25_000  # every k-th event beyond this, to keep the forests quick
    seed: int = 0


def _per_symbol(key: dg.AssetKey, table_name: str) -> dict:
    return dict(key=key, partitions_def=SYMBOLS, automation_condition=refresh_when_deps_update(),
                metadata={"partition_expr": "symbol",
                          "dagster/column_schema": column_schema(table_name)})


@dg.asset(
    **_per_symbol(LABELS, "ml.labels"),
    ins={"bars": dg.AssetIn(BARS), "volatility": dg.AssetIn(VOLATILITY)},
    kinds={"duckdb", "numba"}, group_name="labels", code_version="2",
    description="Triple-barrier labels (AFML ch. 3): barriers at ±k x the next bar's GARCH "
                "volatility, a vertical barrier after H bars; t1 = first touch; average-"
                "uniqueness weights (AFML ch. 4).",
)
def labels(context: dg.AssetExecutionContext, config: LabelConfig, bars: pd.DataFrame,
           volatility: pd.DataFrame) -> dg.MaterializeResult:
    try:
        stored = label_table(bars, volatility, symbol=context.partition_key, upper=config.upper,
                             lower=config.lower, horizon=config.horizon)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    return dg.MaterializeResult(value=stored, metadata={
        "events": dg.MetadataValue.int(len(stored)),
        "labels": table(label_counts(stored)),
        "mean_uniqueness": dg.MetadataValue.float(mean_uniqueness(stored)),
        "barriers": f"±{config.upper:g}/{config.lower:g} x sigma, horizon {config.horizon} bars",
    })


@dg.asset(
    **_per_symbol(FOLDS, "ml.cv_folds"),
    ins={"labels": dg.AssetIn(LABELS)}, kinds={"duckdb"}, group_name="labels", code_version="2",
    description="Purged K-fold, purged walk-forward and combinatorial purged CV folds over the "
                "labels: each sample's role (train/test/purged/embargoed) per split, and for "
                "CPCV test rows the backtest path that uses them.",
)
def cv_folds(context: dg.AssetExecutionContext, config: FoldConfig,
             labels: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    try:
        splitters = fold_splitters(labels, symbol=symbol, n_splits=config.n_splits,
                                   cpcv_folds=config.cpcv_folds,
                                   cpcv_test_folds=config.cpcv_test_folds,
                                   embargo_pct=config.embargo_pct)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    matrices = role_matrices(splitters)
    counts = split_counts(matrices)
    embargo = splitters["cpcv"].embargo
    png = plot_folds(list(matrices.items()),
                     f"{symbol}: folds ({len(labels):,} labels, embargo {embargo})")
    return dg.MaterializeResult(value=folds_table(labels, splitters, matrices, symbol=symbol),
                                metadata={
        "samples": dg.MetadataValue.int(len(labels)),
        "embargo": dg.MetadataValue.int(embargo),
        "splits": table(counts),
        **{f"{role}_total": dg.MetadataValue.int(n) for role, n in role_totals(counts).items()},
        "cpcv_paths": dg.MetadataValue.int(splitters["cpcv"].n_paths),
        "diagram": dg.MetadataValue.md(markdown_image(png, "folds")),
    })


@dg.asset_check(asset=FOLDS, blocking=True, partitions_def=SYMBOLS,
                additional_ins={"labels": dg.AssetIn(LABELS)},
                description="Reads the stored folds back and verifies: no training label overlaps "
                            "a test label, the embargo holds, roles are exclusive, and CPCV has "
                            "C(N,k) splits, each sample tested C(N-1,k-1) times, paths that "
                            "partition.")
def no_leakage(cv_folds: pd.DataFrame, labels: pd.DataFrame) -> dg.AssetCheckResult:
    problems = stored_fold_violations(cv_folds, labels)
    return dg.AssetCheckResult(passed=not problems, metadata={
        "violations": dg.MetadataValue.int(len(problems)),
        "first": "; ".join(problems[:5]) or "none",
        "schemes": ", ".join(stored_schemes(cv_folds)),
    })


@dg.asset(
    **_per_symbol(LEAKAGE, "ml.leakage_proof"),
    ins={"features": dg.AssetIn(FEATURES), "labels": dg.AssetIn(LABELS)},
    kinds={"duckdb", "scikitlearn"}, group_name="labels", code_version="2",
    description="What purging is worth: random-forest AUC under shuffled vs purged K-fold, and "
                "the purged AUC and strategy Sharpe on permuted labels (bot4_dagster.ml.leakage).",
)
def leakage_report(context: dg.AssetExecutionContext, config: LeakageConfig,
                   features: pd.DataFrame, labels: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    try:
        report = leakage_proof_of_tables(features, labels, symbol=symbol,
                                         n_splits=config.n_splits,
                                         max_samples=config.max_samples, seed=config.seed)
    except InsufficientData as exc:
        raise dg.Failure(str(exc)) from None
    return dg.MaterializeResult(value=report.stored(symbol), metadata={
        "results": table(report.table()),
        **{name: dg.MetadataValue.float(float(getattr(report, name)))
           for name in ("auc_shuffled", "auc_purged", "inflation", "auc_permuted",
                        "sharpe_permuted")},
        "samples": f"{report.n_samples:,} events (every {report.stride}), {report.n_features} "
                   f"features, {report.n_splits} folds, embargo {report.embargo}",
    })
