"""Probability calibration: an isotonic map from scores to probabilities, and how to score it.

:class:`IsotonicCalibrator` is scikit-learn's ``IsotonicRegression`` (same parameters, same
learned attributes, predictions equal to 1e-12) with its loops in numba kernels
(:mod:`bot4_dagster.kernels.isotonic`): fitting a million rows costs one sort plus linear passes,
and :meth:`~IsotonicCalibrator.predict_one` maps a single live score in about a microsecond
without numpy or scipy call overhead.

The metrics say whether calibrated probabilities can be sized on (the risk layer bets on p̂):

- :func:`brier_score` and :func:`log_loss`: proper scoring rules, one number each.
- :func:`reliability_table` and :func:`expected_calibration_error`: per bin of p, does the
  observed frequency match the mean forecast (the reliability diagram and its weighted gap)?
- :func:`brier_decomposition`: Murphy's (1973) split of the Brier score into reliability
  (miscalibration, lower is better), resolution (how much forecasts separate outcomes, higher is
  better) and uncertainty (the base rate's variance, fixed by the data).

Bins (both strategies, the rule of ``sklearn.calibration.calibration_curve``): edges e_0 < … <
e_B; bin 0 is [e_0, e_1], bin k > 0 is (e_k, e_{k+1}] (a forecast on an interior edge belongs to
the bin below it). ``"uniform"``: e_k = k/B. ``"quantile"``: e_k is the (100·k/B)-th percentile
of p (numpy's linear method, unweighted — sample weights change the bin averages, not the
edges), so bins hold equal numbers of forecasts and ties may leave some bins empty.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Real
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import check_array, check_consistent_length
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ..kernels.isotonic import (
    interp,
    interp_one,
    make_unique,
    pava,
    sort_by_key,
    trim_thresholds,
)
from ._inputs import finite_vector, integer

__all__ = [
    "BrierDecomposition",
    "IsotonicCalibrator",
    "ReliabilityTable",
    "brier_decomposition",
    "brier_score",
    "expected_calibration_error",
    "log_loss",
    "reliability_table",
]

Strategy = Literal["uniform", "quantile"]
_SHAPE_ERROR = "Isotonic regression input X should be a 1d array or 2d array with 1 feature"
_SPANS_ZERO = ("Confidence interval of the Spearman correlation coefficient spans zero. "
               "Determination of ``increasing`` may be suspect.")


def _as_column(X: np.ndarray) -> np.ndarray:
    """X as a 1-D view; scikit-learn's isotonic input rule (1-D, or 2-D with one column)."""
    if not (X.ndim == 1 or (X.ndim == 2 and X.shape[1] == 1)):
        raise ValueError(_SHAPE_ERROR)
    return X.reshape(-1)


def _spearman_increasing(x: np.ndarray, y: np.ndarray) -> bool:
    """The sign of Spearman's ρ, warning when its 95 % Fisher-z interval spans zero.

    scikit-learn's ``check_increasing``, including its corner cases: a constant input gives
    ρ = NaN, hence "decreasing" and the warning.
    """
    rho = float(spearmanr(x, y).statistic)
    if abs(rho) != 1.0 and len(x) > 3:
        z = 0.5 * math.log((1.0 + rho) / (1.0 - rho))  # NaN stays NaN, and so warns
        standard_error = 1.0 / math.sqrt(len(x) - 3)
        low, high = math.tanh(z - 1.96 * standard_error), math.tanh(z + 1.96 * standard_error)
        if np.sign(low) != np.sign(high):
            warnings.warn(_SPANS_ZERO, UserWarning, stacklevel=3)
    return rho >= 0


def _sorted_rows(x: np.ndarray, y: np.ndarray,
                 weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows in ``np.lexsort((y, x))`` order: by x, ties by y, then by position.

    Both sorts are stable, so sorting by y and then by x is lexsort's permutation; without
    ties in x one sort by x already is, which is the common case for continuous scores.
    """
    xs, ys, ws = sort_by_key(x, y, weight)
    if np.any(xs[1:] == xs[:-1]):
        by_y, x_by_y, w_by_y = sort_by_key(y, x, weight)
        xs, ys, ws = sort_by_key(x_by_y, by_y, w_by_y)
    return xs, ys, ws


def _isotonic_fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray,
                  increasing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unique sorted x and the isotonic fit at each: drop weight ≤ 0, sort, pool ties, PAVA."""
    positive = weight > 0
    if not positive.any():
        raise ValueError("sample_weight has no positive weight: nothing to fit")
    if not positive.all():
        x, y, weight = x[positive], y[positive], weight[positive]
    unique_x, unique_y, unique_w = make_unique(*_sorted_rows(x, y, weight))
    if increasing:
        return unique_x, pava(unique_y, unique_w)
    return unique_x, pava(unique_y[::-1].copy(), unique_w[::-1].copy())[::-1].copy()


class IsotonicCalibrator(RegressorMixin, BaseEstimator):
    """Monotone piecewise-linear map from a score x to a calibrated value (e.g. a probability).

    Same parameters, fitted attributes and predictions as ``sklearn.isotonic.IsotonicRegression``
    except the default ``out_of_bounds="clip"`` (a live score beyond the training range gets the
    nearest end's probability, never NaN). Fit, in scikit-learn's order: rows with weight ≤ 0 are
    dropped; rows are sorted by (x, y); x values closer than 1e-15 are pooled (weighted mean y,
    summed weight); PAVA fits the non-decreasing (or, reversed, non-increasing) least-squares
    sequence; values are clipped into [y_min, y_max]; points on flat runs are trimmed. Prediction
    interpolates linearly between the thresholds. Computation is in float64 (scikit-learn keeps
    float32 input in float32).

    Parameters: ``increasing`` (True, False or "auto": the sign of Spearman's ρ),
    ``out_of_bounds`` ("clip", "nan" or "raise": ValueError for x outside [X_min_, X_max_]),
    ``y_min``/``y_max`` (bounds on the fitted values, None for none).

    Fitted: ``X_thresholds_``, ``y_thresholds_`` (the interpolation knots), ``X_min_``, ``X_max_``,
    ``increasing_``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "increasing": ["boolean", StrOptions({"auto"})],
        "out_of_bounds": [StrOptions({"nan", "clip", "raise"})],
        "y_min": [Interval(Real, None, None, closed="both"), None],
        "y_max": [Interval(Real, None, None, closed="both"), None],
    }

    def __init__(self, increasing: bool | str = True, out_of_bounds: str = "clip",
                 y_min: float | None = None, y_max: float | None = None):
        self.increasing = increasing
        self.out_of_bounds = out_of_bounds
        self.y_min = y_min
        self.y_max = y_max

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: object, y: object, sample_weight: object = None) -> IsotonicCalibrator:
        """Fit on scores X (n,) or (n, 1) and targets y (n,); weights default to 1."""
        checked = dict(dtype=np.float64, accept_sparse=False, ensure_2d=False)
        scores = check_array(X, input_name="X", **checked)
        targets = check_array(y, input_name="y", **checked)
        check_consistent_length(scores, targets, sample_weight)
        scores = _as_column(scores)
        if targets.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {targets.shape}")
        increasing = (_spearman_increasing(scores, targets) if self.increasing == "auto"
                      else bool(self.increasing))
        weight = _check_sample_weight(sample_weight, scores, dtype=np.float64)
        unique_x, fitted = _isotonic_fit(scores, targets, weight, increasing)
        if self.y_min is not None or self.y_max is not None:
            low = -np.inf if self.y_min is None else self.y_min
            high = np.inf if self.y_max is None else self.y_max
            np.clip(fitted, low, high, out=fitted)
        self.increasing_ = increasing
        self.X_min_, self.X_max_ = np.min(unique_x), np.max(unique_x)
        self.X_thresholds_, self.y_thresholds_ = trim_thresholds(unique_x, fitted)
        return self

    def predict(self, X: object) -> np.ndarray:
        """Calibrated values for scores X (n,) or (n, 1), by the numba interpolation kernel.

        The kernel holds the end values beyond the thresholds, which is exactly what clipping
        x into [X_min_, X_max_] first gives; "nan" and "raise" are applied around it.
        """
        check_is_fitted(self)
        t = np.ascontiguousarray(_as_column(check_array(X, dtype=np.float64, ensure_2d=False)))
        xs, ys = self.X_thresholds_, self.y_thresholds_
        if xs.shape[0] == 1:  # one threshold: a constant, whatever out_of_bounds says
            return np.full(t.shape[0], ys[0])
        if self.out_of_bounds == "raise":
            self._raise_out_of_bounds(t)
        out: np.ndarray = interp(xs, ys, t)
        if self.out_of_bounds == "nan":
            out[(t < xs[0]) | (t > xs[-1])] = np.nan
        return out

    def transform(self, X: object) -> np.ndarray:
        """Same as :meth:`predict` (scikit-learn's isotonic regression is also a transformer)."""
        return self.predict(X)

    def predict_one(self, x: float) -> float:
        """The calibrated value of one score: :meth:`predict` for ``[x]`` without array checks.

        For the live path, where array validation would cost more than the interpolation.
        """
        try:
            xs, ys = self.X_thresholds_, self.y_thresholds_
        except AttributeError:
            check_is_fitted(self)
            raise
        t = float(x)
        if not math.isfinite(t):
            raise ValueError(f"x must be finite, got {x!r}")
        if self.out_of_bounds != "clip" and xs.shape[0] > 1 and not xs[0] <= t <= xs[-1]:
            if self.out_of_bounds == "nan":
                return math.nan
            self._raise_out_of_bounds(np.array([t]))
        return float(interp_one(xs, ys, t))

    def _raise_out_of_bounds(self, t: np.ndarray) -> None:
        """scipy ``interp1d(bounds_error=True)``'s error for the first value below, then above."""
        low, high = self.X_thresholds_[0], self.X_thresholds_[-1]
        below, above = t < low, t > high
        if below.any():
            raise ValueError(f"A value ({t[np.argmax(below)]}) in x_new is below the "
                             f"interpolation range's minimum value ({low}).")
        if above.any():
            raise ValueError(f"A value ({t[np.argmax(above)]}) in x_new is above the "
                             f"interpolation range's maximum value ({high}).")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        return tags


# --- metrics ---------------------------------------------------------------------------------


def _forecasts(y: object, p: object,
               sample_weight: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes in {0, 1}, probabilities in [0, 1] and weights ≥ 0 (not all 0), one per row."""
    outcomes = finite_vector(y, "y", min_size=1)
    probs = finite_vector(p, "p", min_size=1)
    if outcomes.shape != probs.shape:
        raise ValueError(f"y and p differ in length: {outcomes.size} vs {probs.size}")
    if not np.all((outcomes == 0.0) | (outcomes == 1.0)):
        raise ValueError("y must hold binary outcomes 0 or 1")
    if probs.min() < 0.0 or probs.max() > 1.0:
        raise ValueError(f"p must be probabilities in [0, 1], got [{probs.min()}, {probs.max()}]")
    if sample_weight is None:
        return outcomes, probs, np.ones_like(probs)
    weight = finite_vector(sample_weight, "sample_weight")
    if weight.shape != probs.shape:
        raise ValueError(f"sample_weight has {weight.size} values for {probs.size} forecasts")
    if weight.min() < 0.0 or not weight.sum() > 0.0:
        raise ValueError("sample_weight must be non-negative with a positive sum")
    return outcomes, probs, weight


def brier_score(y: object, p: object, sample_weight: object = None) -> float:
    """Σ w (p − y)² / Σ w: the mean squared error of probability forecasts of binary outcomes
    (0 is perfect, 0.25 is a constant 1/2); ``sklearn.metrics.brier_score_loss``."""
    outcomes, probs, weight = _forecasts(y, p, sample_weight)
    return float(np.sum(weight * (probs - outcomes) ** 2) / np.sum(weight))


def log_loss(y: object, p: object, sample_weight: object = None, eps: float = 1e-15) -> float:
    """−Σ w [y log p + (1 − y) log(1 − p)] / Σ w, the mean negative log-likelihood.

    p and 1 − p are each clipped into [eps, 1 − eps] first, so a confident miss costs
    −log(eps) (34.5 at the default) instead of infinity. ``sklearn.metrics.log_loss`` clips the
    same way at the float64 machine epsilon (2.2e-16): the two agree whenever p lies in
    [1e-15, 1 − 1e-15], and everywhere with ``eps=np.finfo(float).eps``.
    """
    outcomes, probs, weight = _forecasts(y, p, sample_weight)
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
    log_p = np.log(np.clip(probs, eps, 1.0 - eps))
    log_q = np.log(np.clip(1.0 - probs, eps, 1.0 - eps))
    loss = -(outcomes * log_p + (1.0 - outcomes) * log_q)
    return float(np.sum(weight * loss) / np.sum(weight))


@dataclass(frozen=True)
class ReliabilityTable:
    """Per bin of p: the reliability diagram's points (``mean_predicted``, ``mean_observed``).

    ``edges`` has n_bins + 1 values; ``count`` is forecasts per bin, ``weight`` their summed
    weight; means are weighted and NaN in a bin without weight.
    """

    edges: np.ndarray
    count: np.ndarray
    weight: np.ndarray
    mean_predicted: np.ndarray
    mean_observed: np.ndarray


def _bin_edges(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "quantile":
        return np.asarray(np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100))
    raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def _binned(y: object, p: object, n_bins: int, strategy: str,
            sample_weight: object) -> tuple[ReliabilityTable, np.ndarray, tuple[np.ndarray, ...]]:
    """The table, each forecast's bin and the validated (y, p, w)."""
    outcomes, probs, weight = _forecasts(y, p, sample_weight)
    n_bins = integer(n_bins, "n_bins", 1)
    edges = _bin_edges(probs, n_bins, strategy)
    bins = np.searchsorted(edges[1:-1], probs)
    count = np.bincount(bins, minlength=n_bins)
    total = np.bincount(bins, weights=weight, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=weight * probs, minlength=n_bins) / total
        mean_y = np.bincount(bins, weights=weight * outcomes, minlength=n_bins) / total
    empty = total == 0
    mean_p[empty] = mean_y[empty] = np.nan
    table = ReliabilityTable(edges, count, total, mean_p, mean_y)
    return table, bins, (outcomes, probs, weight)


def reliability_table(y: object, p: object, n_bins: int = 10, strategy: Strategy = "uniform",
                      sample_weight: object = None) -> ReliabilityTable:
    """Bin the forecasts (module docstring for the edges) and average p and y in each bin.

    With unit weights, the non-empty bins' (mean_observed, mean_predicted) are exactly
    ``sklearn.calibration.calibration_curve(y, p, n_bins=n_bins, strategy=strategy)``.
    """
    return _binned(y, p, n_bins, strategy, sample_weight)[0]


def expected_calibration_error(y: object, p: object, n_bins: int = 10,
                               strategy: Strategy = "uniform",
                               sample_weight: object = None) -> float:
    """Σ_k (W_k / W) |ȳ_k − p̄_k|: the reliability diagram's gaps, weighted by bin weight.

    A direct reading of "when we say 70 %, does it happen 70 % of the time"; bin-dependent, so
    compare models only at the same ``n_bins`` and ``strategy``.
    """
    table = reliability_table(y, p, n_bins, strategy, sample_weight)
    used = table.weight > 0
    gaps = np.abs(table.mean_observed[used] - table.mean_predicted[used])
    return float(np.sum(table.weight[used] * gaps) / np.sum(table.weight[used]))


@dataclass(frozen=True)
class BrierDecomposition:
    """Murphy (1973): brier = reliability − resolution + uncertainty + within_bin.

    With bin weights f_k = W_k/W, bin means p̄_k, ȳ_k and base rate ȳ: reliability =
    Σ f_k (p̄_k − ȳ_k)², resolution = Σ f_k (ȳ_k − ȳ)², uncertainty = ȳ(1 − ȳ). ``within_bin``
    = (1/W) Σ_i w_i [(p_i − p̄_k)² − 2 (p_i − p̄_k)(y_i − ȳ_k)], the within-bin variance of p
    less twice its within-bin covariance with y (Stephenson et al. 2008): zero when p is constant
    within each bin, which is when Murphy's identity is exact.
    """

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin: float


def brier_decomposition(y: object, p: object, n_bins: int = 10, strategy: Strategy = "uniform",
                        sample_weight: object = None) -> BrierDecomposition:
    """Split the Brier score into what calibration can fix (reliability), what the forecasts
    know (resolution) and what the outcomes' base rate imposes (uncertainty); see
    :class:`BrierDecomposition` for the exact terms."""
    table, bins, (outcomes, probs, weight) = _binned(y, p, n_bins, strategy, sample_weight)
    total = np.sum(weight)
    used = table.weight > 0
    share = table.weight[used] / total
    mean_p, mean_y = table.mean_predicted[used], table.mean_observed[used]
    base_rate = float(np.sum(weight * outcomes) / total)
    rows = weight > 0  # rows of weightless bins (NaN means) contribute nothing
    p_dev = probs[rows] - table.mean_predicted[bins[rows]]
    y_dev = outcomes[rows] - table.mean_observed[bins[rows]]
    return BrierDecomposition(
        brier=brier_score(outcomes, probs, weight),
        reliability=float(np.sum(share * (mean_p - mean_y) ** 2)),
        resolution=float(np.sum(share * (mean_y - base_rate) ** 2)),
        uncertainty=base_rate * (1.0 - base_rate),
        within_bin=float(np.sum(weight[rows] * (p_dev**2 - 2.0 * p_dev * y_dev)) / total),
    )
