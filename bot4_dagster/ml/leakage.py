"""The leakage proof: what purging is worth, measured on real data.

A flexible classifier (a random forest) predicts the sign of overlapping triple-barrier labels
from the microstructure features, out of sample, three ways:

1. **shuffled K-fold** (no purge, no embargo): neighbouring labels share most of their future, so
   the test fold's answers leak into training and the AUC is inflated;
2. **purged K-fold** (``PurgedKFold`` with embargo): the honest out-of-sample AUC;
3. **purged K-fold on permuted labels**: no signal at all, so the AUC must sit within 0.5 ± 3
   standard errors, and a strategy trading the predictions must earn a per-period Sharpe ratio
   indistinguishable from zero (|SR| < 0.1, the specification's leakage test).

The gap between 1 and 2 is the inflation that purging removes.

**Minimum events.** The Sharpe ratio of a strategy on noise has standard error 1/√n, so telling
|SR| < 0.1 at the 3 standard errors the AUC is judged by takes n ≥ (3 / 0.1)² = 900 sampled events
with every feature defined (``MIN_EVENTS``); every training set must also hold both classes.
Below that the proof proves nothing and raises ``InsufficientData`` instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from .cv import PurgedKFold
from .ensemble import hanley_mcneil_se as auc_standard_error
from .insufficient import InsufficientData

Z = 3.0  # standard errors within which the permuted-label AUC must sit around 0.5
SHARPE_LIMIT = 0.1  # the specification's leakage test: |SR| of a strategy on permuted labels
MIN_EVENTS = math.ceil((Z / SHARPE_LIMIT) ** 2)  # Z standard errors 1/√n within SHARPE_LIMIT
COLUMNS = ("symbol", "measure", "value", "note")
STAGE = "leakage proof"


@dataclass(frozen=True)
class LeakageReport:
    n_samples: int
    n_features: int
    n_splits: int
    embargo: int
    auc_shuffled: float
    auc_purged: float
    auc_permuted: float
    auc_permuted_se: float
    sharpe_permuted: float
    sharpe_permuted_se: float
    stride: int = 1  # every stride-th event was used

    @property
    def inflation(self) -> float:
        return self.auc_shuffled - self.auc_purged

    @property
    def permuted_auc_ok(self) -> bool:
        return abs(self.auc_permuted - 0.5) <= Z * self.auc_permuted_se

    @property
    def permuted_sharpe_ok(self) -> bool:
        return abs(self.sharpe_permuted) < SHARPE_LIMIT

    def table(self) -> pd.DataFrame:
        rows = [
            ("shuffled K-fold AUC (leaks)", self.auc_shuffled, ""),
            ("purged K-fold AUC", self.auc_purged, ""),
            ("inflation removed by purging", self.inflation, ""),
            ("permuted labels, purged AUC", self.auc_permuted,
             f"± {self.auc_permuted_se:.4f} SE; within 0.5 ± 3 SE: {self.permuted_auc_ok}"),
            ("permuted labels, strategy Sharpe per period", self.sharpe_permuted,
             f"± {self.sharpe_permuted_se:.4f} SE; |SR| < 0.1: {self.permuted_sharpe_ok}"),
        ]
        return pd.DataFrame(rows, columns=["measure", "value", "note"])

    def as_dict(self) -> dict:
        return {**asdict(self), "inflation": self.inflation}

    def stored(self, symbol: str) -> pd.DataFrame:
        """The stored ``ml.leakage_proof`` rows: symbol, measure, value, note."""
        table = self.table()
        table.insert(0, "symbol", pd.array([symbol] * len(table), dtype="string"))
        return table.astype({"measure": "string", "note": "string"})


def event_stride(n_events: int, max_samples: int) -> int:
    """Use every k-th event so that at most ``max_samples`` are left (the forests stay quick)."""
    if max_samples < MIN_EVENTS:
        raise ValueError(f"max_samples must be at least {MIN_EVENTS} (the proof's minimum), "
                         f"got {max_samples}")
    return max(1, -(-n_events // max_samples))


def _model(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=60, min_samples_leaf=5, max_features="sqrt",
                                  max_samples=0.5, n_jobs=-1, random_state=seed)


def _oos(x: np.ndarray, y: np.ndarray, splits, seed: int, what: str,
         symbol: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Pooled out-of-sample probabilities and each test sample's training base rate."""
    proba = np.full(len(y), np.nan)
    base = np.full(len(y), np.nan)
    for split, (train, test) in enumerate(splits):
        counts = np.bincount(y[train], minlength=2)
        if counts.min() == 0:
            missing = "label > 0 (upper barrier)" if counts[1] == 0 else "label <= 0"
            raise InsufficientData(STAGE, symbol, 1, 0,
                                   f"events with {missing} in the training set of split {split}",
                                   f"{what}: a classifier needs both classes to learn from")
        model = _model(seed).fit(x[train], y[train])
        proba[test] = model.predict_proba(x[test])[:, 1]
        base[test] = y[train].mean()
    return proba, base


def leakage_proof(features: pd.DataFrame, events: pd.DataFrame, *, n_splits: int = 5,
                  embargo: int | None = None, stride: int = 1, seed: int = 0,
                  symbol: str | None = None) -> LeakageReport:
    """Run the three experiments on ``features`` (per bar, indexed by time) and triple-barrier
    ``events`` (indexed by t0, with t1, label, ret); every ``stride``-th event with every feature
    defined is used. Raises ``InsufficientData`` below ``MIN_EVENTS`` of them."""
    x_all = features.reindex(events.index)
    x_all = x_all.loc[:, x_all.notna().any()]
    if x_all.shape[1] == 0:
        raise InsufficientData(STAGE, symbol, 1, 0, "features with values at the events")
    keep = x_all.notna().all(axis=1).to_numpy()
    sample = events.loc[keep].iloc[::stride]
    if len(sample) < MIN_EVENTS:
        raise InsufficientData(STAGE, symbol, MIN_EVENTS, len(sample),
                               "events with every feature defined",
                               _shortfall(x_all, int(keep.sum()), stride))
    x = x_all.loc[sample.index].to_numpy(np.float64)
    y = (sample["label"].to_numpy() > 0).astype(np.int8)
    embargo = max(1, len(sample) // 100) if embargo is None else embargo
    t1 = sample["t1"].copy()
    t1.index = sample.index
    purged = PurgedKFold(n_splits, t1, embargo=embargo)
    shuffled = KFold(n_splits, shuffle=True, random_state=seed)

    proba, _ = _oos(x, y, shuffled.split(x), seed, "shuffled K-fold", symbol)
    auc_shuffled = roc_auc_score(y, proba)
    proba, _ = _oos(x, y, purged.split(x), seed, "purged K-fold", symbol)
    auc_purged = roc_auc_score(y, proba)

    permuted = np.random.default_rng(seed).permutation(y)
    proba, base = _oos(x, permuted, purged.split(x), seed, "purged K-fold on permuted labels",
                       symbol)
    auc_permuted = roc_auc_score(permuted, proba)
    n_pos = int(permuted.sum())
    position = np.sign(proba - base)
    pnl = position * sample["ret"].to_numpy()
    sharpe = float(pnl.mean() / pnl.std(ddof=1))
    return LeakageReport(
        len(y), x.shape[1], n_splits, embargo, float(auc_shuffled), float(auc_purged),
        float(auc_permuted), auc_standard_error(auc_permuted, n_pos, len(y) - n_pos), sharpe,
        math.sqrt((1 + sharpe ** 2 / 2) / len(pnl)), stride)


def _shortfall(x: pd.DataFrame, usable: int, stride: int) -> str:
    """Why the events are too few: the feature that is defined last, and the sampling."""
    first = x.notna().idxmax()
    late = first.sort_values().index[-1]
    text = (f"{late} is first defined at {first[late]}; |SR| < {SHARPE_LIMIT:g} on permuted "
            f"labels at {Z:g} standard errors (1/√n) takes {MIN_EVENTS:,}")
    return text + (f"; 1 in {stride} of the {usable:,} such events is used" if stride > 1 else "")


def leakage_proof_of_tables(features: pd.DataFrame, labels: pd.DataFrame, *, symbol: str,
                            n_splits: int = 5, max_samples: int = 25_000,
                            seed: int = 0) -> LeakageReport:
    """``leakage_proof`` on the stored tables: ``features.microstructure_features`` (symbol, ts,
    features) and ``ml.labels`` (t0, t1, label, ret), at most ``max_samples`` events."""
    events = labels.set_index(pd.DatetimeIndex(labels["t0"]))[["t1", "label", "ret"]]
    return leakage_proof(features.set_index("ts").drop(columns=["symbol"]), events,
                         n_splits=n_splits, stride=event_stride(len(events), max_samples),
                         seed=seed, symbol=symbol)
