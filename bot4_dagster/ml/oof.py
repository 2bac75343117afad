"""Training the base learners fold by fold, and the out-of-fold predictions that everything after
them (blending, calibration, every reported figure) is computed on.

One step is one (learner, scheme, split): its inputs are fitted on the split's training rows
(``FoldInputs``), the learner is trained on them and predicts the split's test rows, which it
has never seen. Over purged K-fold every sample is tested once, which gives each sample one
out-of-fold probability per learner; over purged walk-forward the learner only ever trains on the
past, which is the headline evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .dataset import FoldInputs, Samples
from .insufficient import InsufficientData
from .learners import LSTM, Profile, fit_weighted, make_learner

SCHEMES = ("purged_kfold", "walk_forward")  # OOF for blending; walk-forward for evaluation
COLUMNS = ("symbol", "scheme", "split", "t0", "learner", "proba", "y", "weight", "ret", "regime")
STAGE = "base models"


def fold_splits(folds: pd.DataFrame, samples: Samples, scheme: str
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) sample positions of every split of one scheme of the stored folds."""
    part = folds[folds["scheme"] == scheme]
    if part.empty:
        raise ValueError(f"the stored folds have no scheme {scheme!r}")
    position = pd.Series(np.arange(len(samples)), index=samples.t0)
    out = []
    for _, rows in part.groupby("split", sort=True):
        at = position.reindex(pd.DatetimeIndex(rows["t0"])).to_numpy()
        if np.isnan(at.astype(np.float64)).any():
            raise ValueError(f"the stored {scheme} folds name label start times that are not "
                             "samples (folds and labels come from different runs?)")
        at = at.astype(np.int64)
        role = rows["role"].to_numpy()
        out.append((np.sort(at[role == "train"]), np.sort(at[role == "test"])))
    return out


@dataclass
class FoldModel:
    """One learner trained on one split: the model, what its inputs were fitted to, and its
    predictions for the split's test rows."""

    learner: str
    scheme: str
    split: int
    model: BaseEstimator
    inputs: FoldInputs
    test: np.ndarray  # sample positions
    proba: np.ndarray  # P(upper barrier first) for each test sample
    n_train: int
    seconds: float


def learner_inputs(samples: Samples, inputs: FoldInputs, rows: np.ndarray, learner: str,
                   settings: Profile) -> np.ndarray:
    """What ``learner`` sees of the samples at ``rows``: windows for the LSTM, else the t0 row."""
    if learner == LSTM:
        return inputs.windows(samples, rows, settings.window)
    return inputs.tabular(samples, rows)


def train_fold(samples: Samples, train: np.ndarray, test: np.ndarray, learner: str,
               settings: Profile, *, scheme: str = "", split: int = 0, seed: int = 0,
               progress=None, symbol: str | None = None,
               inputs: FoldInputs | None = None) -> FoldModel:
    """Fit the inputs (unless given, already fitted on ``train``) and ``learner`` on ``train``
    and predict ``test``."""
    counts = np.bincount(samples.y[train], minlength=2)
    if counts.min() == 0:
        missing = "label > 0 (upper barrier)" if counts[1] == 0 else "label <= 0"
        raise InsufficientData(STAGE, symbol, 1, 0,
                               f"events with {missing} in the training set of {scheme} split "
                               f"{split}", "a classifier needs both classes to learn from")
    started = time.perf_counter()
    if inputs is None:
        inputs = FoldInputs.fit(samples, train, symbol=symbol)
    x_train = learner_inputs(samples, inputs, train, learner, settings)
    extra = {}
    if learner == LSTM:  # its early-stopping split is purged by the label spans
        extra = {"t0": samples.t0[train].as_unit("ns").asi8,
                 "t1": pd.DatetimeIndex(samples.t1.iloc[train]).as_unit("ns").asi8}
    model = make_learner(learner, settings, seed=seed, progress=progress)
    fit_weighted(model, x_train, samples.y[train], samples.weight[train], **extra)
    proba = model.predict_proba(learner_inputs(samples, inputs, test, learner, settings))[:, 1]
    return FoldModel(learner, scheme, split, model, inputs, test, proba.astype(np.float64),
                     len(train), time.perf_counter() - started)


def oof_rows(samples: Samples, fold: FoldModel) -> pd.DataFrame:
    """One fold model's predictions: one row per test sample (``COLUMNS`` without symbol)."""
    return pd.DataFrame({
        "scheme": fold.scheme, "split": fold.split, "t0": samples.t0[fold.test],
        "learner": fold.learner, "proba": fold.proba, "y": samples.y[fold.test],
        "weight": samples.weight[fold.test], "ret": samples.ret[fold.test],
        "regime": fold.inputs.regime_codes(samples, fold.test)})


def oof_table(rows: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The stored ``ml.oof_predictions`` from the rows of every fold model: one row per (scheme,
    split, test sample, learner)."""
    frame = rows[[c for c in COLUMNS if c != "symbol"]].copy()
    frame.insert(0, "symbol", symbol)
    frame = frame.sort_values(["scheme", "learner", "t0"], ignore_index=True)
    frame["t0"] = pd.to_datetime(frame["t0"], utc=True)
    return frame.astype({"symbol": "string", "scheme": "string", "learner": "string",
                         "split": "int64", "y": "int8", "regime": "int8"})


def probability_matrix(oof: pd.DataFrame, scheme: str) -> pd.DataFrame:
    """One scheme's predictions wide: rows = samples (t0), columns = learners, plus y, weight,
    ret, split and regime. Only samples every learner predicted are kept."""
    part = oof[oof["scheme"] == scheme]
    wide = part.pivot_table(index="t0", columns="learner", values="proba", aggfunc="first")
    extra = [c for c in ("y", "weight", "ret", "split", "regime") if c in part]
    meta = part.groupby("t0")[extra].first()
    wide = wide.dropna()
    return wide.join(meta, how="inner").sort_index()


def sample_count(oof: pd.DataFrame) -> int:
    """Samples with an out-of-fold prediction (each is tested once over purged K-fold)."""
    return int(oof.loc[oof["scheme"] == "purged_kfold", "t0"].nunique())
