"""The calibration stage of one symbol, from the stored out-of-fold predictions and folds: the
nested out-of-fold ensemble probability, its cross-fitted calibration (global and per regime)
scored out of fold, and the per-regime calibrator fitted on every sample for the candidate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .calibration import ReliabilityTable
from .insufficient import InsufficientData
from .oof import probability_matrix
from .regime_calibration import (
    METRIC_COLUMNS,
    MIN_COUNT,
    CrossFitted,
    RegimeCalibrator,
    calibration_metrics,
    cross_fitted_calibration,
    nested_ensemble_oof,
    reliability_curves,
    split_positions,
)
from .regimes import REGIMES

#: the blend a candidate ships: simplex weights minimising the out-of-fold log-loss
DEFAULT_BLEND = "weighted"
COLUMNS = ("symbol", "blend", *METRIC_COLUMNS)  # ml.calibrator
STAGE = "calibration"


@dataclass(frozen=True)
class CalibrationReport:
    blend: str
    learners: list[str]
    t0: pd.DatetimeIndex  # the samples, in the order of ``ensemble``
    ensemble: np.ndarray  # nested out-of-fold ensemble probability per sample
    fitted: CrossFitted  # cross-fitted calibration of ``ensemble``
    metrics: pd.DataFrame  # METRIC_COLUMNS
    calibrator: RegimeCalibrator  # fitted on every sample's ``ensemble`` (the candidate's)
    stored: pd.DataFrame  # COLUMNS

    def tables(self) -> dict[str, pd.DataFrame]:
        """What a user reads: the scores on all rows, Murphy's decomposition per scope and
        method, the scores per regime, and which map serves each regime."""
        m = self.metrics
        return {
            "overall": m[m.scope == "all"][["method", "n", "brier", "brier_se", "log_loss", "ece",
                                            "ece_quantile", "brier_improvement",
                                            "brier_improvement_se"]],
            "brier_decomposition": m[["scope", "method", "brier", "reliability", "resolution",
                                      "uncertainty"]],
            "per_regime": m[m.scope != "all"],
            "maps": self.calibrator.table(),
        }

    def curves(self) -> dict[str, dict[str, ReliabilityTable]]:
        """Reliability diagram points per scope (all rows, then each regime scored) and method."""
        present = [r for r in REGIMES if (self.metrics.scope == r).any()]
        return {scope: reliability_curves(self.fitted, scope) for scope in ["all", *present]}

    def improvement(self, method: str = "per regime isotonic") -> tuple[float, float]:
        """The Brier improvement over the uncalibrated ensemble on all rows, and its SE."""
        row = self.metrics[(self.metrics.scope == "all") & (self.metrics.method == method)]
        return float(row.brier_improvement.iloc[0]), float(row.brier_improvement_se.iloc[0])


def calibration_report(oof: pd.DataFrame, folds: pd.DataFrame, *, symbol: str,
                       blend: str = DEFAULT_BLEND, min_count: int = MIN_COUNT
                       ) -> CalibrationReport:
    """Everything the calibration stage reports and the calibrator it ships."""
    kfold = probability_matrix(oof, "purged_kfold")
    learners = sorted(oof["learner"].unique())
    if "regime" not in kfold:
        raise ValueError("the out-of-fold predictions have no regime column (written by an "
                         "older version): rematerialize ml/base_models")
    need = 2 * min_count
    if len(kfold) < need:
        raise InsufficientData(STAGE, symbol, need, len(kfold),
                               "samples with an out-of-fold probability from every learner",
                               f"twice the minimum of {min_count} rows per calibration map")
    P, y = kfold[learners].to_numpy(), kfold["y"].to_numpy(np.float64)
    w, regime = kfold["weight"].to_numpy(np.float64), kfold["regime"].to_numpy(np.int8)
    splits = split_positions(kfold.index, folds)
    q = nested_ensemble_oof(P, y, w, splits, blend)
    fitted = cross_fitted_calibration(q, y, w, regime, splits, min_count)
    metrics = calibration_metrics(fitted)
    known = np.isfinite(q)
    calibrator = RegimeCalibrator(min_count).fit(q[known], y[known], regime[known], w[known])
    stored = metrics.assign(symbol=symbol, blend=blend)[list(COLUMNS)].astype(
        {"symbol": "string", "blend": "string", "scope": "string", "method": "string",
         "n": "int64"})
    return CalibrationReport(blend, learners, pd.DatetimeIndex(kfold.index), q, fitted, metrics,
                             calibrator, stored)
