"""The headline evaluation: purged walk-forward, where every model only ever trains on the past.

Base learners are trained on each walk-forward split's past and predict its test block (``oof``).
A blend has parameters too (weights, a meta-learner), so the blend for split s is fitted on the
walk-forward predictions of splits before s and applied to s; split 0 has no past predictions,
so every figure here is computed on the test rows of splits 1 and later, the rows every learner
and every blend predicts out of sample. The base rate predicts, for each split, the weighted share
of upper-barrier labels among the samples whose labels ended before the split's first t0.

Each figure carries its standard error (``ensemble.auc_se``, ``log_loss_se``, ``brier_se``).
Every configuration tried (four learners, five blend modes) also trades its predictions: long
when its probability is above the base rate, short below, earning the event's return. The
probability of backtest overfitting (CSCV) is computed over those strategies, and the deflated
Sharpe ratio of the one with the best Sharpe ratio, deflated for the number tried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .ensemble import BLEND_MODES, StackingEnsemble, auc_se, brier_se, log_loss_se
from .stats import deflated_sharpe_ratio, probability_of_backtest_overfitting

METRIC_COLUMNS = ("model", "kind", "n", "auc", "auc_se", "log_loss", "log_loss_se", "brier",
                  "brier_se")


@dataclass(frozen=True)
class WalkForwardReport:
    metrics: pd.DataFrame  # METRIC_COLUMNS, one row per learner, blend mode and the base rate
    probabilities: pd.DataFrame  # per evaluated sample: one column per model, y, weight, ret
    pbo: float
    pbo_blocks: int
    selected: str  # the configuration with the best walk-forward Sharpe ratio
    selected_sharpe: float
    deflated_sharpe: float
    n_trials: int


def base_rate(labels: pd.DataFrame, split_of: pd.Series) -> pd.Series:
    """Per evaluated sample (``split_of``: its split, indexed by t0): the weighted share of
    upper-barrier labels among ``labels`` (t1, label, weight) that ended before its split."""
    t1 = pd.DatetimeIndex(labels["t1"])
    y = (labels["label"].to_numpy() > 0).astype(np.float64)
    weight = labels["weight"].to_numpy(np.float64)
    first = pd.Series(split_of.index, index=split_of.index).groupby(split_of.to_numpy()).min()
    rates = {}
    for split, start in first.items():
        past = np.asarray(t1 < start)
        rates[split] = float(np.sum(weight[past] * y[past]) / np.sum(weight[past])
                             ) if past.any() else 0.5
    return split_of.map(rates).astype(np.float64)


def blended_forward(wide: pd.DataFrame, learners: list[str], mode: str, C: float = 1.0
                    ) -> pd.Series:
    """Blend ``mode`` for each split s >= 1, fitted on the splits before s."""
    out = pd.Series(np.nan, index=wide.index)
    splits = np.sort(wide["split"].unique())
    for split in splits[1:]:
        past, now = wide["split"] < split, wide["split"] == split
        blender = StackingEnsemble(mode=mode, C=C).fit(
            wide.loc[past, learners].to_numpy(), wide.loc[past, "y"].to_numpy(),
            sample_weight=wide.loc[past, "weight"].to_numpy())
        out[now] = blender.blend(wide.loc[now, learners].to_numpy())
    return out


def metrics_row(model: str, kind: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict:
    auc, auc_err = auc_se(y, p)
    ll, ll_err = log_loss_se(y, p, w)
    brier, brier_err = brier_se(y, p, w)
    return {"model": model, "kind": kind, "n": len(y), "auc": auc, "auc_se": auc_err,
            "log_loss": ll, "log_loss_se": ll_err, "brier": brier, "brier_se": brier_err}


def walk_forward_report(wide: pd.DataFrame, labels: pd.DataFrame, learners: list[str]
                        ) -> WalkForwardReport:
    """``wide``: the walk-forward predictions from ``oof.probability_matrix``; ``labels``: the
    stored ``ml.labels`` (for the base rate)."""
    evaluated = wide[wide["split"] > wide["split"].min()]
    probabilities = evaluated[learners].copy()
    for mode in BLEND_MODES:
        probabilities[mode] = blended_forward(wide, learners, mode).loc[evaluated.index]
    probabilities["base_rate"] = base_rate(labels, evaluated["split"])
    y, w = evaluated["y"].to_numpy(), evaluated["weight"].to_numpy()
    rows = [metrics_row(m, "learner" if m in learners else "blend" if m in BLEND_MODES
                        else "reference", y, probabilities[m].to_numpy(), w)
            for m in probabilities.columns]
    metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    configs = [*learners, *BLEND_MODES]
    side = np.sign(probabilities[configs].to_numpy() - probabilities[["base_rate"]].to_numpy())
    returns = side * evaluated["ret"].to_numpy()[:, None]
    blocks = _blocks(len(returns))
    pbo = probability_of_backtest_overfitting(returns, n_blocks=blocks).pbo if blocks else math.nan
    sharpes = returns.mean(axis=0) / returns.std(axis=0, ddof=1)
    best = int(np.nanargmax(sharpes))
    chosen = returns[:, best]
    dsr = deflated_sharpe_ratio(
        float(sharpes[best]), n_obs=len(chosen), n_trials=len(configs),
        sr_variance=float(np.nanvar(sharpes, ddof=1)), skew=float(scipy_stats.skew(chosen)),
        kurtosis=float(scipy_stats.kurtosis(chosen, fisher=False)))
    probabilities = probabilities.join(evaluated[["y", "weight", "ret", "split"]])
    return WalkForwardReport(metrics, probabilities, float(pbo), blocks, configs[best],
                             float(sharpes[best]), float(dsr), len(configs))


def _blocks(n_rows: int) -> int:
    """CSCV blocks: 16 (AFML) when each block keeps at least 10 rows, else the most even number
    that does; 0 when even 2 blocks cannot."""
    for blocks in (16, 14, 12, 10, 8, 6, 4, 2):
        if n_rows // blocks >= 10:
            return blocks
    return 0
