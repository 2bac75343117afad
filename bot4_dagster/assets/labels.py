"""``ml/labels``, ``ml/cv_folds`` and ``ml/leakage_proof`` per symbol: triple-barrier labels on
GARCH volatility, purged and combinatorial folds checked for leakage, and the measured effect of
purging on out-of-sample AUC."""

import base64
from math import comb

import dagster as dg
import numpy as np
import pandas as pd

from ..automation.partitions import SYMBOLS
from ..ml.cv import (
    ROLES,
    TEST,
    CombinatorialPurgedCV,
    PurgedKFold,
    PurgedWalkForward,
    leakage_violations,
)
from ..ml.labels import triple_barrier_labels
from ..ml.leakage import leakage_proof
from ..report import plot_folds
from .keys import BARS, BY_SYMBOL

LABELS = dg.AssetKey(["ml", "labels"])
FOLDS = dg.AssetKey(["ml", "cv_folds"])
VOLATILITY = dg.AssetKey(["ml", "garch_volatility"])
FEATURES = dg.AssetKey(["features", "microstructure_features"])


class LabelConfig(dg.Config):
    upper: float = 2.0  # profit-taking barrier, in units of the next bar's GARCH volatility
    lower: float = 2.0  # stop-loss barrier
    horizon: int = 10  # vertical barrier, in bars


class FoldConfig(dg.Config):
    n_splits: int = 5  # PurgedKFold and PurgedWalkForward
    cpcv_folds: int = 6
    cpcv_test_folds: int = 2
    embargo_pct: float = 0.01  # embargo as a share of the samples (AFML: 1%)


def _t1(labels: pd.DataFrame) -> pd.Series:
    return pd.Series(pd.to_datetime(labels["t1"], utc=True).to_numpy(),
                     index=pd.DatetimeIndex(pd.to_datetime(labels["t0"], utc=True)))


def _splitters(labels: pd.DataFrame, config: FoldConfig) -> tuple[dict, int]:
    t1 = _t1(labels)
    embargo = int(np.ceil(config.embargo_pct * len(labels)))
    return {
        "purged_kfold": PurgedKFold(config.n_splits, t1, embargo=embargo),
        "walk_forward": PurgedWalkForward(config.n_splits, t1, embargo=embargo),
        "cpcv": CombinatorialPurgedCV(config.cpcv_folds, config.cpcv_test_folds, t1,
                                      embargo=embargo),
    }, embargo


@dg.asset(
    key=LABELS, partitions_def=SYMBOLS, metadata={"partition_expr": "symbol"},
    ins={"bars": dg.AssetIn(BARS, partition_mapping=BY_SYMBOL), "volatility": dg.AssetIn(VOLATILITY)},
    kinds={"duckdb", "numba"}, group_name="labels", code_version="1",
    description="Triple-barrier labels (AFML ch. 3): barriers at ±k x the next bar's GARCH "
                "volatility, a vertical barrier after H bars; t1 = first touch; average-"
                "uniqueness weights (AFML ch. 4).",
)
def labels(context: dg.AssetExecutionContext, config: LabelConfig, bars: pd.DataFrame,
           volatility: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    close = bars.set_index("ts")["close"]
    vol = volatility.set_index("ts")
    # sigma of the next bar's return, known at this bar's close, as a decimal return
    sigma = (vol["sigma"] / vol["scale"]).reindex(close.index).shift(-1)
    events = triple_barrier_labels(close, sigma, upper=config.upper, lower=config.lower,
                                   horizon=config.horizon)
    stored = events.reset_index().assign(symbol=symbol)[
        ["symbol", "t0", "t1", "label", "ret", "barrier", "sigma", "weight"]]
    stored["barrier"] = stored["barrier"].astype("string")
    counts = events["label"].value_counts().reindex([-1, 0, 1], fill_value=0)
    return dg.MaterializeResult(value=stored, metadata={
        "events": len(events),
        "labels": dg.MetadataValue.md(pd.DataFrame({
            "label": ["-1 (lower)", "0 (vertical)", "+1 (upper)"], "events": counts.to_numpy()
        }).to_markdown(index=False)),
        "mean_uniqueness": dg.MetadataValue.float(float(events["weight"].mean())),
        "barriers": f"±{config.upper:g}/{config.lower:g} x sigma, horizon {config.horizon} bars",
    })


@dg.asset(
    key=FOLDS, partitions_def=SYMBOLS, metadata={"partition_expr": "symbol"},
    ins={"labels": dg.AssetIn(LABELS)}, kinds={"duckdb"}, group_name="labels", code_version="1",
    description="Purged K-fold, purged walk-forward and combinatorial purged CV folds over the "
                "labels: each sample's role (train/test/purged/embargoed) per split, and for "
                "CPCV test rows the backtest path that uses them.",
)
def cv_folds(context: dg.AssetExecutionContext, config: FoldConfig,
             labels: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    splitters, embargo = _splitters(labels, config)
    parts, summary, diagrams = [], [], []
    for scheme, cv in splitters.items():
        matrix = cv.role_matrix(len(labels))
        paths = cv.sample_paths(len(labels)) if scheme == "cpcv" else None
        frame = _long(matrix, labels["t0"], scheme, paths)
        frame["embargo"] = embargo
        cpcv = isinstance(cv, CombinatorialPurgedCV)
        frame["folds"] = cv.n_folds if cpcv else cv.n_splits
        frame["test_folds"] = cv.n_test_folds if cpcv else 1
        parts.append(frame)
        for split, row in enumerate(matrix):
            summary.append({"scheme": scheme, "split": split,
                            **{role: int((row == code).sum()) for code, role in enumerate(ROLES)}})
        diagrams.append((scheme, matrix))
    stored = pd.concat(parts, ignore_index=True).assign(symbol=symbol)
    png = plot_folds(diagrams, f"{symbol}: folds ({len(labels):,} labels, embargo {embargo})")
    table = pd.DataFrame(summary)
    columns = ["symbol", "scheme", "split", "t0", "role", "path", "embargo", "folds", "test_folds"]
    return dg.MaterializeResult(value=stored[columns],
                                metadata={
        "samples": len(labels), "embargo": embargo,
        "splits": dg.MetadataValue.md(table.to_markdown(index=False)),
        "purged_total": int(table["purged"].sum()),
        "embargoed_total": int(table["embargoed"].sum()),
        "cpcv_paths": splitters["cpcv"].n_paths,
        "diagram": dg.MetadataValue.md(
            f"![folds](data:image/png;base64,{base64.b64encode(png).decode()})"),
    })


def _long(matrix: np.ndarray, t0: pd.Series, scheme: str,
          paths: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (split, sample used by the split); ``paths`` from ``sample_paths``."""
    splits, samples = np.nonzero(matrix >= 0)
    path = pd.array(np.full(len(splits), -1) if paths is None else paths[splits, samples],
                    dtype="Int32")
    path[path < 0] = pd.NA
    return pd.DataFrame({
        "scheme": scheme, "split": splits.astype(np.int32),
        "t0": t0.to_numpy()[samples],
        "role": np.asarray(ROLES)[matrix[splits, samples]],
        "path": path,
    })


@dg.asset_check(asset=FOLDS, blocking=True, partitions_def=SYMBOLS,
                additional_ins={"labels": dg.AssetIn(LABELS)},
                description="Reads the stored folds back and verifies: no training label overlaps "
                            "a test label, the embargo holds, roles are exclusive, and CPCV has "
                            "C(N,k) splits, each sample tested C(N-1,k-1) times, paths that partition.")
def no_leakage(cv_folds: pd.DataFrame, labels: pd.DataFrame) -> dg.AssetCheckResult:
    t1 = _t1(labels)
    problems = []
    for scheme, frame in cv_folds.groupby("scheme"):
        matrix = role_matrix_of(frame, labels)
        problems += [f"{scheme}: {p}" for p in
                     leakage_violations(t1, matrix, int(frame["embargo"].iloc[0]))]
        if scheme == "cpcv":
            problems += [f"cpcv: {p}" for p in _stored_path_violations(frame, matrix)]
    return dg.AssetCheckResult(passed=not problems, metadata={
        "violations": len(problems), "first": "; ".join(problems[:5]) or "none",
        "schemes": ", ".join(sorted(cv_folds["scheme"].unique())),
    })


def role_matrix_of(frame: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """The (splits × samples) role codes of one scheme's stored rows (-1: not used)."""
    position = pd.Series(np.arange(len(labels)), index=pd.to_datetime(labels["t0"], utc=True))
    matrix = np.full((int(frame["split"].max()) + 1, len(labels)), -1, dtype=np.int8)
    columns = position.reindex(pd.to_datetime(frame["t0"], utc=True)).to_numpy()
    codes = frame["role"].map({role: i for i, role in enumerate(ROLES)}).to_numpy()
    matrix[frame["split"].to_numpy(), columns] = codes
    return matrix


def _stored_path_violations(frame: pd.DataFrame, matrix: np.ndarray) -> list[str]:
    n_folds, k = int(frame["folds"].iloc[0]), int(frame["test_folds"].iloc[0])
    problems = []
    if matrix.shape[0] != comb(n_folds, k):
        problems.append(f"{matrix.shape[0]} splits, expected C({n_folds}, {k})")
    tested = (matrix == TEST).sum(axis=0)
    if (tested != comb(n_folds - 1, k - 1)).any():
        problems.append(f"samples tested {sorted(set(tested.tolist()))} times, "
                        f"expected {comb(n_folds - 1, k - 1)}")
    test_rows = frame[frame["role"] == "test"]
    n = matrix.shape[1]
    for path, rows in test_rows.groupby("path"):
        if len(rows) != n or rows["t0"].nunique() != n:
            problems.append(f"path {path} does not cover every sample exactly once")
    return problems


class LeakageConfig(dg.Config):
    n_splits: int = 5
    max_samples: int = 25_000  # every k-th event beyond this, to keep the forests quick
    seed: int = 0


@dg.asset(
    key=["ml", "leakage_proof"], partitions_def=SYMBOLS, metadata={"partition_expr": "symbol"},
    ins={"features": dg.AssetIn(FEATURES), "labels": dg.AssetIn(LABELS)},
    kinds={"duckdb", "scikitlearn"}, group_name="labels", code_version="1",
    description="What purging is worth: random-forest AUC under shuffled vs purged K-fold, and "
                "the purged AUC and strategy Sharpe on permuted labels (bot4_dagster.ml.leakage).",
)
def leakage_report(context: dg.AssetExecutionContext, config: LeakageConfig,
                   features: pd.DataFrame, labels: pd.DataFrame) -> dg.MaterializeResult:
    symbol = context.partition_key
    events = labels.set_index(pd.DatetimeIndex(labels["t0"]))[["t1", "label", "ret"]]
    stride = max(1, -(-len(events) // config.max_samples))
    report = leakage_proof(features.set_index("ts").drop(columns=["symbol"]), events,
                           n_splits=config.n_splits, stride=stride, seed=config.seed)
    table = report.table()
    return dg.MaterializeResult(value=table.assign(symbol=symbol)[["symbol", "measure", "value", "note"]],
                                metadata={
        "results": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4f")),
        "auc_shuffled": report.auc_shuffled, "auc_purged": report.auc_purged,
        "inflation": report.inflation, "auc_permuted": report.auc_permuted,
        "sharpe_permuted": report.sharpe_permuted,
        "samples": f"{report.n_samples:,} events (every {stride}), {report.n_features} features, "
                   f"{report.n_splits} folds, embargo {report.embargo}",
    })
