"""Calibration per volatility regime: the maps, the fallback, the nested ensemble probability and
the cross-fitted evaluation, which must never score a row a calibrator was fitted on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_tables import SYMBOL, ftx_tables
from sklearn.base import clone

from bot4_dagster.ml.calibration import IsotonicCalibrator
from bot4_dagster.ml.calibration_report import COLUMNS, calibration_report
from bot4_dagster.ml.dataset import learning_samples
from bot4_dagster.ml.ensemble import StackingEnsemble
from bot4_dagster.ml.learners import PROFILES
from bot4_dagster.ml.oof import oof_table, probability_matrix
from bot4_dagster.ml.regime_calibration import (
    GLOBAL,
    METHODS,
    RegimeCalibrator,
    brier_improvement,
    cross_fitted_calibration,
    nested_ensemble_oof,
    split_positions,
)
from bot4_dagster.ml.training import train_planned, training_plan


def _problem(n=4000, seed=3):
    """Scores whose miscalibration differs by regime: over-confident in crisis."""
    rng = np.random.default_rng(seed)
    regime = rng.choice([0, 1, 2, 3, -1], size=n, p=[0.25, 0.45, 0.2, 0.08, 0.02]).astype(np.int8)
    p = rng.uniform(0.05, 0.95, n)
    truth = np.where(regime == 3, 0.5 + 0.3 * (p - 0.5), p)
    y = (rng.uniform(size=n) < truth).astype(np.float64)
    return p, y, regime, rng.uniform(0.2, 1.0, n)


def test_each_regime_with_enough_rows_gets_its_own_isotonic_map():
    p, y, regime, w = _problem()
    fitted = RegimeCalibrator(min_count=200, bounds=(0.0, 1.0)).fit(p, y, regime, w)
    assert set(fitted.maps_) == {0, 1, 2, 3}
    for code, calibrator in fitted.maps_.items():
        rows = regime == code
        alone = IsotonicCalibrator(y_min=0.0, y_max=1.0).fit(p[rows], y[rows], w[rows])
        np.testing.assert_array_equal(calibrator.X_thresholds_, alone.X_thresholds_)
        np.testing.assert_array_equal(calibrator.y_thresholds_, alone.y_thresholds_)
    out, source = fitted.predict_with_source(p, regime)
    np.testing.assert_array_equal(source, regime)  # undefined (-1) is served by the global map
    undefined = regime == -1
    np.testing.assert_array_equal(out[undefined], fitted.global_.predict(p[undefined]))
    crisis = regime == 3
    np.testing.assert_array_equal(out[crisis], fitted.maps_[3].predict(p[crisis]))
    # the crisis map pulls over-confident scores back towards 1/2
    assert fitted.maps_[3].predict([0.9])[0] < fitted.maps_[1].predict([0.9])[0]


def test_a_regime_below_the_minimum_or_with_one_class_falls_back_to_the_global_map():
    p, y, regime, w = _problem()
    y = y.copy()
    y[regime == 2] = 1.0  # one class only
    crisis_rows = int((regime == 3).sum())
    fitted = RegimeCalibrator(min_count=crisis_rows + 1).fit(p, y, regime, w)
    assert set(fitted.maps_) == {0, 1}
    out, source = fitted.predict_with_source(p, regime)
    fallback = np.isin(regime, [-1, 2, 3])
    assert (source[fallback] == -1).all()
    np.testing.assert_array_equal(out[fallback], fitted.global_.predict(p[fallback]))
    table = fitted.table().set_index("regime")
    assert table.loc["crisis", "served by"] == GLOBAL and table.loc["low", "served by"] == "low"
    assert table.loc["crisis", "fit rows"] == crisis_rows


def test_outputs_stay_inside_the_bounds_and_one_prediction_equals_the_batch():
    p, y, regime, w = _problem()
    fitted = RegimeCalibrator().fit(p, y, regime, w)
    out, source = fitted.predict_with_source(p, regime)
    assert out.min() >= 0.01 and out.max() <= 0.99
    for i in range(0, len(p), 97):
        value, name = fitted.predict_one(p[i], int(regime[i]))
        assert value == out[i]
        assert name == (GLOBAL if source[i] == -1 else
                        ["low", "normal", "high", "crisis"][source[i]])
    assert clone(fitted).get_params() == {"min_count": 200, "bounds": (0.01, 0.99)}


@pytest.mark.parametrize("regime, match", [
    (np.zeros(10, dtype=np.float64), "integer codes"), (np.full(10, 4), "codes must lie"),
    (np.zeros(9, dtype=np.int8), "10 integer codes")])
def test_bad_regime_codes_are_refused(regime, match):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        RegimeCalibrator().fit(rng.uniform(size=10), rng.integers(0, 2, 10), regime)


def test_brier_improvement_on_a_hand_computed_case():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    before = np.array([0.6, 0.6, 0.6, 0.6])  # Brier (0.16 + 0.36) / 2 = 0.26
    after = np.array([0.9, 0.1, 0.6, 0.6])  # Brier (0.01 + 0.01 + 0.16 + 0.36) / 4 = 0.135
    gain, se = brier_improvement(y, before, after, np.ones(4))
    assert gain == pytest.approx(1 - 0.135 / 0.26, abs=1e-15)
    # ψ = (a − R b) / B with R = 0.135/0.26: by hand, SE = √(4/3 · Σψ²) / 4
    a, b = (after - y) ** 2, (before - y) ** 2
    psi = (a - 0.135 / 0.26 * b) / 0.26
    assert se == pytest.approx(np.sqrt(4 / 3 * (psi**2).sum()) / 4, rel=1e-12)
    assert brier_improvement(y, before, before, np.ones(4)) == (0.0, 0.0)


@pytest.fixture(scope="module")
def oof(tmp_path_factory):
    """Out-of-fold predictions of the three tabular learners on 8,000 real FTX minutes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOT4_HOME", str(tmp_path_factory.mktemp("home")))
        bars, features, labels, folds = ftx_tables(8000)
        samples = learning_samples(bars, features, labels, symbol=SYMBOL)
        jobs = training_plan(samples, folds, ("hist_gradient_boosting", "logistic",
                                              "extra_trees"), ("purged_kfold",))
        rows = pd.concat([train_planned(job, samples, symbol=SYMBOL, settings=PROFILES["quick"])
                          for job in jobs], ignore_index=True)
    return oof_table(rows, SYMBOL), folds


def _inputs(oof):
    table, folds = oof
    kfold = probability_matrix(table, "purged_kfold")
    learners = sorted(table["learner"].unique())
    return (kfold, kfold[learners].to_numpy(), kfold["y"].to_numpy(np.float64),
            kfold["weight"].to_numpy(), kfold["regime"].to_numpy(np.int8),
            split_positions(kfold.index, folds))


def test_the_stored_splits_test_every_sample_once_and_never_train_on_it(oof):
    kfold, *_, splits = _inputs(oof)
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested) == list(range(len(kfold)))
    for train, test in splits:
        assert not np.intersect1d(train, test).size


def test_the_nested_ensemble_probability_of_a_split_ignores_that_split_s_labels(oof):
    _, P, y, w, _, splits = _inputs(oof)
    q = nested_ensemble_oof(P, y, w, splits, "weighted")
    train, test = splits[2]
    np.testing.assert_allclose(
        q[test], StackingEnsemble(mode="weighted").fit(P[train], y[train], sample_weight=w[train])
        .predict_proba(P[test])[:, 1], rtol=0, atol=0)
    poisoned = y.copy()
    poisoned[test] = 1.0 - poisoned[test]
    np.testing.assert_array_equal(nested_ensemble_oof(P, poisoned, w, splits, "weighted")[test],
                                  q[test])
    np.testing.assert_allclose(nested_ensemble_oof(P, y, w, splits, "mean"), P.mean(axis=1),
                               atol=1e-15)


def test_cross_fitted_calibration_never_scores_a_row_it_was_fitted_on(oof):
    _, P, y, w, regime, splits = _inputs(oof)
    q = nested_ensemble_oof(P, y, w, splits, "mean")
    fitted = cross_fitted_calibration(q, y, w, regime, splits, min_count=100)
    assert fitted.rows.size == len(q)
    _, test = splits[1]
    poisoned = y.copy()
    poisoned[test] = 1.0 - poisoned[test]  # the test rows' labels reversed ...
    again = cross_fitted_calibration(q, poisoned, w, regime, splits, min_count=100)
    at = np.isin(fitted.rows, test)
    for method in METHODS:  # ... leave their calibrated probabilities unchanged
        np.testing.assert_array_equal(again.probability[method][at],
                                      fitted.probability[method][at])
    np.testing.assert_array_equal(again.source[at], fitted.source[at])
    others = ~np.isin(fitted.rows, test)  # while the other splits' maps did learn from them
    assert not np.array_equal(again.probability["global isotonic"][others],
                              fitted.probability["global isotonic"][others])


def test_the_report_scores_every_sample_out_of_fold_per_scope_and_method(oof):
    table, folds = oof
    report = calibration_report(table, folds, symbol=SYMBOL, min_count=100)
    samples = probability_matrix(table, "purged_kfold")
    everything = report.metrics[report.metrics.scope == "all"]
    assert list(everything.method) == list(METHODS)
    assert (everything.n == len(samples)).all()
    by_regime = report.metrics[report.metrics.scope != "all"]
    assert by_regime.groupby("method").n.sum().max() <= len(samples)
    assert list(report.stored.columns) == list(COLUMNS)
    metric = report.metrics.drop(columns=["scope", "method", "n", "brier_improvement",
                                          "brier_improvement_se"])
    assert np.isfinite(metric.to_numpy(np.float64)).all()
    gain, se = report.improvement()
    assert np.isfinite(gain) and se > 0
    # the shipped calibrator is fitted on every sample's nested OOF ensemble probability
    assert sum(report.calibrator.counts_.values()) == np.isfinite(report.ensemble).sum()


def test_old_predictions_without_regimes_are_refused_with_the_fix(oof):
    table, folds = oof
    with pytest.raises(ValueError, match="rematerialize ml/base_models"):
        calibration_report(table.drop(columns=["regime"]), folds, symbol=SYMBOL)
