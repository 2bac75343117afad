"""The stored tables a model stage starts from, built by the stages' own functions on the first
``n`` real FTX BTC-PERP 1-minute bars: bars, features, labels and folds."""

from __future__ import annotations

from functools import cache

from synthetic_microstructure import load_ftx_bars

from bot4_dagster.features.table import feature_table
from bot4_dagster.ml.folds import fold_splitters, folds_table
from bot4_dagster.ml.labels import label_table
from bot4_dagster.ml.volatility import estimate_volatility

SYMBOL = "BTC-PERP"


@cache
def ftx_tables(n: int):
    bars = load_ftx_bars().iloc[:n].assign(symbol=SYMBOL)
    features, _ = feature_table(bars, symbol=SYMBOL, volume_unit="quote")
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table(SYMBOL)
    labels = label_table(bars, volatility, symbol=SYMBOL, upper=2.0, lower=2.0, horizon=10)
    folds = folds_table(labels, fold_splitters(labels, symbol=SYMBOL), symbol=SYMBOL)
    return bars, features, labels, folds


@cache
def ftx_candidate(n: int):
    """The four learners' purged K-fold out-of-fold predictions on the first ``n`` FTX minutes,
    and the model candidate built from them, stored in a temporary BOT4_HOME (the fold models
    and the bundle): a dict of samples, oof, folds, candidate, stored (the ``StoredBundle``)."""
    import os
    import tempfile
    from pathlib import Path

    import pandas as pd

    from bot4_dagster.ml.candidate import build_candidate
    from bot4_dagster.ml.dataset import learning_samples
    from bot4_dagster.ml.learners import LEARNERS, PROFILES
    from bot4_dagster.ml.oof import oof_table
    from bot4_dagster.ml.training import train_planned, training_plan

    home = Path(tempfile.mkdtemp(prefix="bot4-candidate-"))
    before = os.environ.get("BOT4_HOME")
    os.environ["BOT4_HOME"] = str(home)
    try:
        bars, features, labels, folds = ftx_tables(n)
        samples = learning_samples(bars, features, labels, symbol=SYMBOL)
        quick = PROFILES["quick"]
        jobs = training_plan(samples, folds, LEARNERS, ("purged_kfold",))
        oof = oof_table(pd.concat([train_planned(job, samples, symbol=SYMBOL, settings=quick)
                                   for job in jobs], ignore_index=True), SYMBOL)
        candidate = build_candidate(samples, oof, folds, symbol=SYMBOL, settings=quick,
                                    run_id="run-1", data_versions={"ml/labels": "abc"})
        stored = candidate.write(home / "candidates")
    finally:
        if before is None:
            os.environ.pop("BOT4_HOME", None)
        else:
            os.environ["BOT4_HOME"] = before
    return dict(samples=samples, oof=oof, folds=folds, candidate=candidate, stored=stored)
