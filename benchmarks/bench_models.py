"""Model benchmarks on the FTX BTC-PERP month (45,031 one-minute bars, quick profile): training
time of one fold per learner, batch-1 ``predict_proba`` latency of each trained object (torch eager
on one thread, scikit-learn), the figures the serving path is to beat, and the purged K-fold
out-of-fold generation for the month end to end."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from bot4_dagster.features.table import feature_table
from bot4_dagster.ml.dataset import learning_samples
from bot4_dagster.ml.folds import fold_splitters, folds_table
from bot4_dagster.ml.labels import label_table
from bot4_dagster.ml.learners import LEARNERS, PROFILES
from bot4_dagster.ml.oof import fold_splits, learner_inputs, train_fold
from bot4_dagster.ml.volatility import estimate_volatility
from bot4_dagster.perf import Report

from ._data import FTX_BARS

GROUP = "models"
SYMBOL = "BTC-PERP"
SETTINGS = PROFILES["quick"]


@cache
def _month():
    raw = pd.read_csv(FTX_BARS)
    bars = raw[["open", "high", "low", "close", "volume"]].copy()
    bars.insert(0, "ts", pd.to_datetime(raw["timestamp"], utc=True))
    features, _ = feature_table(bars, symbol=SYMBOL, volume_unit="quote")
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table(SYMBOL)
    labels = label_table(bars, volatility, symbol=SYMBOL, upper=2.0, lower=2.0, horizon=10)
    folds = folds_table(labels, fold_splitters(labels, symbol=SYMBOL), symbol=SYMBOL)
    samples = learning_samples(bars, features, labels, symbol=SYMBOL)
    return samples, folds


def _bench_learner(report: Report, learner: str) -> None:
    samples, folds = _month()
    train, test = fold_splits(folds, samples, "walk_forward")[-1]
    trained: list = []

    def fit():
        trained[:] = [train_fold(samples, train, test, learner, SETTINGS, scheme="walk_forward")]

    report.measure(f"train_fold/{learner}", fit, group=GROUP, unit=f"{len(train):,} samples",
                   items=len(train), warmup=0, repeat=1,
                   notes=f"last walk-forward split of the FTX month, profile quick "
                         f"({SETTINGS.describe()}), one thread")
    fold = trained[0]
    row = learner_inputs(samples, fold.inputs, test[:1], learner, SETTINGS)
    report.measure(f"predict_one/{learner}", lambda: fold.model.predict_proba(row),
                   group=GROUP, unit="1 sample", items=1,
                   notes="batch-1 predict_proba of the trained object (torch eager with one "
                         "thread for the LSTM): the reference the serving path is to beat")


def _bench_oof(report: Report) -> None:
    samples, folds = _month()
    splits = fold_splits(folds, samples, "purged_kfold")

    def generate():
        out = np.full((len(samples), len(LEARNERS)), np.nan)
        for k, learner in enumerate(LEARNERS):
            for train, test in splits:
                out[test, k] = train_fold(samples, train, test, learner, SETTINGS).proba
        return out

    report.measure("oof/ftx_month", generate, group=GROUP, unit=f"{len(samples):,} samples",
                   items=len(samples), warmup=0, repeat=1,
                   notes=f"{len(LEARNERS)} learners x {len(splits)} purged K-fold splits in one "
                         "process (the Dagster fan-out runs them as parallel steps)")


def run(report: Report) -> None:
    for learner in LEARNERS:
        if report.wants(f"train_fold/{learner}", GROUP) or report.wants(
                f"predict_one/{learner}", GROUP):
            _bench_learner(report, learner)
    if report.wants("oof/ftx_month", GROUP):
        _bench_oof(report)
