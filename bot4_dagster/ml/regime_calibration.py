"""Isotonic calibration per volatility regime, and its honest evaluation.

The risk layer sizes bets on p̂, so p̂ must mean what it says in every market state: a model
calibrated on calm months can be over-confident in a crisis. :class:`RegimeCalibrator` keeps one
isotonic map per GARCH volatility regime (low / normal / high / crisis, the thresholds fitted on
each fold's training rows, see :mod:`.regimes`) and a global map for regimes with fewer than
``min_count`` fitting rows (or one class only) and for rows whose regime is undefined; which map
served each prediction is returned with it.

What is calibrated is the ensemble's out-of-fold probability: each sample's blend comes from a
blender fitted on the purged training rows of the split that tests it
(:func:`nested_ensemble_oof`), so no probability was fitted on its own label. The evaluation is
cross-fitted on the same stored purged K-fold splits (:func:`cross_fitted_calibration`): the
calibrators scored on split s are fitted on split s's (purged, embargoed) training rows only.
(Those rows' base-learner probabilities came from models that trained on split s's samples: the
usual second-order overlap of stacking on out-of-fold predictions, the same for every method.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ._inputs import finite_vector, integer
from .calibration import (
    IsotonicCalibrator,
    ReliabilityTable,
    brier_decomposition,
    expected_calibration_error,
    reliability_table,
)
from .ensemble import StackingEnsemble, brier_se, log_loss_se
from .regimes import REGIMES

GLOBAL = "global"
UNDEFINED = -1  # regime code where the volatility is undefined (the GARCH warm-up)
MIN_COUNT = 200
#: calibrated probabilities stay inside these: the Kelly sizing downstream would stake everything
#: on a 0 or a 1, and an isotonic fit gives exactly those at its ends on a few rows of one class
BOUNDS = (0.01, 0.99)
METHODS = ("uncalibrated", "global isotonic", "per regime isotonic")
N_BINS = 10


def map_name(code: int) -> str:
    """The name of a regime code's map: the regime, or ``global``."""
    return REGIMES[code] if 0 <= code < len(REGIMES) else GLOBAL


def _regime_codes(regime: object, n: int) -> np.ndarray:
    codes = np.asarray(regime)
    if codes.shape != (n,) or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"regime must be {n} integer codes (0 low .. 3 crisis, -1 undefined), "
                         f"got shape {codes.shape} and dtype {codes.dtype}")
    if codes.size and (codes.min() < UNDEFINED or codes.max() >= len(REGIMES)):
        raise ValueError(f"regime codes must lie in -1 .. {len(REGIMES) - 1}")
    return codes.astype(np.int8)


def _calibrator(bounds: tuple[float, float] = BOUNDS) -> IsotonicCalibrator:
    low, high = bounds
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"bounds must satisfy 0 <= low < high <= 1, got {bounds!r}")
    return IsotonicCalibrator(increasing=True, out_of_bounds="clip", y_min=low, y_max=high)


class RegimeCalibrator(BaseEstimator):
    """One isotonic map per volatility regime with at least ``min_count`` fitting rows of both
    classes, the global map for the rest; every map's output clipped into ``bounds``.

    Fitted: ``global_`` (an :class:`~.calibration.IsotonicCalibrator` on every row), ``maps_``
    (regime code → its own calibrator), ``counts_`` (fitting rows per regime code, -1 included).
    """

    def __init__(self, min_count: int = MIN_COUNT, bounds: tuple[float, float] = BOUNDS):
        self.min_count = min_count
        self.bounds = bounds

    def fit(self, p: object, y: object, regime: object,
            sample_weight: object = None) -> RegimeCalibrator:
        probs = finite_vector(p, "p", min_size=2)
        outcomes = finite_vector(y, "y")
        if outcomes.shape != probs.shape:
            raise ValueError(f"y has {outcomes.size} values for {probs.size} probabilities")
        codes = _regime_codes(regime, probs.size)
        minimum = integer(self.min_count, "min_count", 1)
        weight = (np.ones_like(probs) if sample_weight is None
                  else finite_vector(sample_weight, "sample_weight"))
        self.global_ = _calibrator(self.bounds).fit(probs, outcomes, weight)
        self.counts_ = {int(c): int(np.count_nonzero(codes == c))
                        for c in range(UNDEFINED, len(REGIMES))}
        self.maps_: dict[int, IsotonicCalibrator] = {}
        for code in range(len(REGIMES)):
            rows = (codes == code) & (weight > 0)
            if rows.sum() >= minimum and np.unique(outcomes[rows]).size == 2:
                self.maps_[code] = _calibrator(self.bounds).fit(probs[rows], outcomes[rows],
                                                                weight[rows])
        return self

    def predict_with_source(self, p: object, regime: object) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities and, per row, the regime code of the map that served it
        (-1: the global map)."""
        probs = finite_vector(p, "p")
        codes = _regime_codes(regime, probs.size)
        out = self.global_.predict(probs)
        source = np.full(probs.size, UNDEFINED, dtype=np.int8)
        for code, calibrator in self.maps_.items():
            rows = codes == code
            if rows.any():
                out[rows] = calibrator.predict(probs[rows])
                source[rows] = code
        return out, source

    def predict(self, p: object, regime: object) -> np.ndarray:
        return self.predict_with_source(p, regime)[0]

    def predict_one(self, p: float, regime: int) -> tuple[float, str]:
        """One live probability and the name of the map that calibrated it."""
        calibrator = self.maps_.get(int(regime))
        if calibrator is None:
            return self.global_.predict_one(p), GLOBAL
        return calibrator.predict_one(p), map_name(int(regime))

    def table(self) -> pd.DataFrame:
        """Per regime: fitting rows, the map that serves it and that map's threshold count."""
        rows = []
        for code in range(UNDEFINED, len(REGIMES)):
            own = self.maps_.get(code)
            served = own if own is not None else self.global_
            rows.append({"regime": "undefined" if code == UNDEFINED else REGIMES[code],
                         "fit rows": self.counts_[code],
                         "served by": map_name(code) if own is not None else GLOBAL,
                         "thresholds": int(served.X_thresholds_.size)})
        return pd.DataFrame(rows)


def split_positions(index: pd.Index, folds: pd.DataFrame, scheme: str = "purged_kfold"
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) positions in ``index`` (sample t0s) of each stored split of ``scheme``;
    samples outside ``index`` (not predicted by every learner) are left out."""
    part = folds[folds["scheme"] == scheme]
    if part.empty:
        raise ValueError(f"the stored folds have no scheme {scheme!r}")
    position = pd.Series(np.arange(len(index)), index=pd.DatetimeIndex(index))
    out = []
    for _, rows in part.groupby("split", sort=True):
        at = position.reindex(pd.DatetimeIndex(rows["t0"])).to_numpy(np.float64)
        role = rows["role"].to_numpy()
        known = np.isfinite(at)
        train = np.sort(at[known & (role == "train")].astype(np.int64))
        test = np.sort(at[known & (role == "test")].astype(np.int64))
        out.append((train, test))
    return out


def nested_ensemble_oof(P: np.ndarray, y: np.ndarray, w: np.ndarray,
                        splits: Sequence[tuple[np.ndarray, np.ndarray]],
                        mode: str) -> np.ndarray:
    """Each sample's blend of the base learners' OOF probabilities ``P``, from a ``mode``
    blender fitted on the purged training rows of the split that tests it (NaN for a sample
    no split tests)."""
    out = np.full(len(y), np.nan)
    for train, test in splits:
        if len(test):
            blender = StackingEnsemble(mode=mode).fit(P[train], y[train], sample_weight=w[train])
            out[test] = blender.predict_proba(P[test])[:, 1]
    return out


@dataclass(frozen=True)
class CrossFitted:
    """Cross-fitted calibration of one ensemble probability per sample (``rows`` in order)."""

    rows: np.ndarray  # sample positions scored (those a split tests)
    y: np.ndarray
    weight: np.ndarray
    regime: np.ndarray
    probability: dict[str, np.ndarray]  # METHODS → probabilities of ``rows``
    source: np.ndarray  # per-regime method: the map that served each row (-1 global)


def cross_fitted_calibration(q: np.ndarray, y: np.ndarray, w: np.ndarray, regime: np.ndarray,
                             splits: Sequence[tuple[np.ndarray, np.ndarray]],
                             min_count: int = MIN_COUNT) -> CrossFitted:
    """Calibrate split s's test rows with maps fitted on split s's training rows only."""
    n = len(q)
    calibrated = {m: np.full(n, np.nan) for m in METHODS}
    source = np.full(n, UNDEFINED, dtype=np.int8)
    tested = np.zeros(n, dtype=bool)
    for train, test in splits:
        train = train[np.isfinite(q[train])]
        test = test[np.isfinite(q[test])]
        if not len(test):
            continue
        calibrated["uncalibrated"][test] = q[test]
        calibrated["global isotonic"][test] = _calibrator().fit(
            q[train], y[train], w[train]).predict(q[test])
        per_regime = RegimeCalibrator(min_count).fit(q[train], y[train], regime[train], w[train])
        calibrated["per regime isotonic"][test], source[test] = per_regime.predict_with_source(
            q[test], regime[test])
        tested[test] = True
    rows = np.flatnonzero(tested)
    return CrossFitted(rows, y[rows], w[rows], regime[rows],
                       {m: p[rows] for m, p in calibrated.items()}, source[rows])


def brier_improvement(y: np.ndarray, before: np.ndarray, after: np.ndarray,
                      w: np.ndarray) -> tuple[float, float]:
    """1 − Brier(after)/Brier(before) and its standard error: the delta method for a ratio of
    weighted means on the same rows, ψᵢ = (aᵢ − R·bᵢ)/B, so the pairing is accounted for."""
    a, b = (after - y) ** 2, (before - y) ** 2
    total = w.sum()
    mean_a, mean_b = (w * a).sum() / total, (w * b).sum() / total
    ratio = mean_a / mean_b
    used = int(np.count_nonzero(w))
    psi = (a - ratio * b) / mean_b
    se = math.sqrt(used / (used - 1) * float((w**2 * psi**2).sum())) / float(total)
    return float(1.0 - ratio), se


METRIC_COLUMNS = ("scope", "method", "n", "brier", "brier_se", "log_loss", "log_loss_se",
                  "ece", "ece_quantile", "reliability", "resolution", "uncertainty",
                  "brier_improvement", "brier_improvement_se")


def calibration_metrics(fitted: CrossFitted) -> pd.DataFrame:
    """Per scope (all rows, then each regime) and method: Brier, log-loss (each with its SE),
    ECE on equal-width and equal-mass bins, Murphy's terms and the Brier improvement over the
    uncalibrated probability with its SE. Every figure is on rows no calibrator fitted on."""
    scopes = [("all", np.ones(fitted.rows.size, dtype=bool))]
    scopes += [(name, fitted.regime == code) for code, name in enumerate(REGIMES)]
    records = []
    for scope, mask in scopes:
        if mask.sum() < 2 or np.unique(fitted.y[mask]).size < 2:
            continue
        y, w = fitted.y[mask], fitted.weight[mask]
        before = fitted.probability["uncalibrated"][mask]
        for method in METHODS:
            p = fitted.probability[method][mask]
            brier, brier_err = brier_se(y, p, w)
            loss, loss_err = log_loss_se(y, p, w)
            murphy = brier_decomposition(y, p, N_BINS, "uniform", w)
            gain, gain_err = ((math.nan, math.nan) if method == "uncalibrated"
                              else brier_improvement(y, before, p, w))
            records.append((scope, method, int(mask.sum()), brier, brier_err, loss, loss_err,
                            expected_calibration_error(y, p, N_BINS, "uniform", w),
                            expected_calibration_error(y, p, N_BINS, "quantile", w),
                            murphy.reliability, murphy.resolution, murphy.uncertainty,
                            gain, gain_err))
    return pd.DataFrame.from_records(records, columns=list(METRIC_COLUMNS))


def reliability_curves(fitted: CrossFitted, scope: str = "all"
                       ) -> dict[str, ReliabilityTable]:
    """Reliability diagram points per method, for all rows or one regime's."""
    mask = (np.ones(fitted.rows.size, dtype=bool) if scope == "all"
            else fitted.regime == REGIMES.index(scope))
    return {m: reliability_table(fitted.y[mask], fitted.probability[m][mask], N_BINS, "uniform",
                                 fitted.weight[mask]) for m in METHODS}
