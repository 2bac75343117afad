"""One training step of the fan-out, from the stored tables to a stored model and its predictions,
and the index of the stored models (``ml.base_models``).

A step's result is one frame: its out-of-fold rows (``oof.COLUMNS`` without symbol) with the
model's facts repeated on every row (``MODEL_FACTS``), so a step hands the collector a single
table and the collector splits it into ``ml.base_models`` and ``ml.oof_predictions``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .artifacts import save_fold_model
from .dataset import Samples
from .learners import LSTM, Profile
from .oof import fold_splits, learner_inputs, oof_rows, train_fold

MODEL_FACTS = ("n_train", "n_test", "seconds", "best_epoch", "path", "sha256", "size",
               "history", "attention")
COLUMNS = ("symbol", "learner", "scheme", "split", *MODEL_FACTS)  # ml.base_models


def training_plan(samples: Samples, folds: pd.DataFrame, learners: tuple[str, ...],
                  schemes: tuple[str, ...]) -> list[dict]:
    """One job per (scheme, split, learner) of the stored folds: names, and the split's training
    and test sample positions (so a step needs no fold table)."""
    jobs: list[dict] = []
    for scheme in schemes:
        for split, (train, test) in enumerate(fold_splits(folds, samples, scheme)):
            jobs.extend({"learner": learner, "scheme": scheme, "split": split,
                         "train": train.tolist(), "test": test.tolist()} for learner in learners)
    return jobs


def train_planned(job: dict, samples: Samples, *, symbol: str, settings: Profile,
                  seed: int = 0, progress=None) -> pd.DataFrame:
    """Train ``job`` (from ``training_plan``), store its model, return its rows."""
    train = np.asarray(job["train"], dtype=np.int64)
    test = np.asarray(job["test"], dtype=np.int64)
    fold = train_fold(samples, train, test, job["learner"], settings, scheme=job["scheme"],
                      split=job["split"], seed=seed, progress=progress, symbol=symbol)
    stored = save_fold_model(fold, symbol)
    history = getattr(fold.model, "history_", [])
    rows = oof_rows(samples, fold).assign(
        n_train=fold.n_train, n_test=len(test), seconds=fold.seconds,
        best_epoch=int(getattr(fold.model, "best_epoch_", -1)), path=str(stored.path),
        sha256=stored.sha256, size=stored.size, history=json.dumps(history), attention=None)
    if job["learner"] == LSTM:  # what the heads look at in the split's last test window
        window = learner_inputs(samples, fold.inputs, test[-1:], LSTM, settings)
        rows.loc[0, "attention"] = json.dumps(np.round(fold.model.attention(window)[0], 5)
                                              .tolist())
    return rows


def model_index(rows: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The stored ``ml.base_models``: one row per trained (learner, scheme, split)."""
    first = rows.groupby(["learner", "scheme", "split"], sort=True)[list(MODEL_FACTS)].first()
    frame = first.reset_index()
    frame.insert(0, "symbol", symbol)
    return frame.astype({"symbol": "string", "learner": "string", "scheme": "string",
                         "split": "int64", "n_train": "int64", "n_test": "int64",
                         "best_epoch": "int64", "path": "string", "sha256": "string",
                         "size": "int64", "history": "string", "attention": "string"}
                        )[list(COLUMNS)]


def lstm_diagnostics(models: pd.DataFrame) -> tuple[dict[str, list[dict]], np.ndarray | None]:
    """From ``ml.base_models``: the LSTM's learning curve per (scheme, split), and the attention
    of the last walk-forward split's last test window."""
    lstm = models[models["learner"] == LSTM]
    curves = {f"{r.scheme} split {r.split}": json.loads(r.history) for r in lstm.itertuples()}
    forward = lstm[(lstm["scheme"] == "walk_forward") & lstm["attention"].notna()]
    attention = (np.asarray(json.loads(forward["attention"].iloc[-1]))
                 if len(forward) else None)
    return curves, attention


def training_seconds(models: pd.DataFrame) -> pd.DataFrame:
    """Seconds spent per learner (rows) and scheme (columns), summed over the splits."""
    return models.pivot_table(index="learner", columns="scheme", values="seconds", aggfunc="sum")


def stored_bytes(models: pd.DataFrame) -> int:
    return int(models["size"].sum())
