"""Calibration benchmarks: isotonic fit + predict on a million forecasts, one live prediction,
and the Brier score, each against scikit-learn in the same process."""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss

from bot4_dagster.ml.calibration import IsotonicCalibrator, brier_score
from bot4_dagster.perf import Report

from ._data import SEED

GROUP = "calibration"
N_ROWS = 1_000_000
N_SINGLE_QUERIES = 1024


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores p ~ U(0, 1), outcomes y ~ Bernoulli(p^1.5) (p overconfident), queries U(0, 1)."""
    rng = np.random.default_rng(SEED)
    p = rng.uniform(0.0, 1.0, N_ROWS)
    y = (rng.uniform(0.0, 1.0, N_ROWS) < p**1.5).astype(np.float64)
    return p, y, rng.uniform(0.0, 1.0, N_ROWS)


def _bench_fit_predict(report: Report, p: np.ndarray, y: np.ndarray, q: np.ndarray) -> None:
    def ours() -> np.ndarray:
        return IsotonicCalibrator().fit(p, y).predict(q)

    def reference() -> np.ndarray:
        return IsotonicRegression(out_of_bounds="clip").fit(p, y).predict(q)

    fitted = IsotonicCalibrator().fit(p, y)
    ref = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    gap = float(np.max(np.abs(ours() - reference())))
    knot_gap = float(np.max(np.abs(fitted.y_thresholds_ - ref.y_thresholds_)))
    report.compare(
        "isotonic_fit_predict", ours, reference,
        reference_name='sklearn IsotonicRegression(out_of_bounds="clip")', group=GROUP,
        items=N_ROWS, unit=f"{N_ROWS:,} forecasts", goal=">= 2x", warmup=1, repeat=7,
        notes=f"fit on p~U(0,1), y~Bernoulli(p^1.5), then predict {N_ROWS:,} U(0,1) queries; "
              f"{fitted.X_thresholds_.size} thresholds; max |Δ| vs sklearn: predictions "
              f"{gap:.1e}, y_thresholds_ {knot_gap:.1e}; radix sort + PAVA + guided interp",
    )


def _bench_predict_one(report: Report, p: np.ndarray, y: np.ndarray) -> None:
    ours_model = IsotonicCalibrator().fit(p, y)
    ref_model = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    values = [float(v) for v in np.random.default_rng(SEED + 1).uniform(0, 1, N_SINGLE_QUERIES)]
    gap = max(abs(ours_model.predict_one(v) - float(ref_model.predict([v])[0])) for v in values)
    ours_queries, ref_queries = itertools.cycle(values), itertools.cycle(values)
    report.compare(
        "isotonic_predict_one", lambda: ours_model.predict_one(next(ours_queries)),
        lambda: ref_model.predict([next(ref_queries)]),
        reference_name="sklearn IsotonicRegression.predict([x])", group=GROUP, items=1,
        unit="prediction", goal="p99 <= 2 µs",
        notes=f"one score in, one probability out, cycling {N_SINGLE_QUERIES} U(0,1) scores; "
              f"max |Δ| vs sklearn {gap:.1e}; numba bisection behind one Python call",
    )


def _bench_brier(report: Report, p: np.ndarray, y: np.ndarray) -> None:
    gap = abs(brier_score(y, p) - brier_score_loss(y, p))
    report.compare(
        "brier_score", lambda: brier_score(y, p), lambda: brier_score_loss(y, p),
        reference_name="sklearn brier_score_loss", group=GROUP, items=N_ROWS,
        unit=f"{N_ROWS:,} forecasts", goal=">= 1x", warmup=1,
        notes=f"Brier score of the raw scores p; max |Δ| vs sklearn {gap:.1e}",
    )


def run(report: Report) -> None:
    names = ("isotonic_fit_predict", "isotonic_predict_one", "brier_score")
    if not any(report.wants(name, GROUP) for name in names):
        return
    p, y, q = _problem()
    if report.wants("isotonic_fit_predict", GROUP):
        _bench_fit_predict(report, p, y, q)
    if report.wants("isotonic_predict_one", GROUP):
        _bench_predict_one(report, p, y)
    if report.wants("brier_score", GROUP):
        _bench_brier(report, p, y)
