"""Isotonic calibration against scikit-learn, scipy and hand-worked metrics.

``IsotonicCalibrator`` against ``sklearn.isotonic.IsotonicRegression`` to 1e-12 (predictions
and learned attributes) on synthetic cases and a real S&P 500 calibration problem; the kernels
against their Python twins, scipy's PAVA, scikit-learn's ``_make_unique`` and ``np.interp``; the
metrics against small cases worked by hand and scikit-learn's brier_score_loss, log_loss and
calibration_curve.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from arch.data import sp500
from scipy.optimize import isotonic_regression
from sklearn._isotonic import _make_unique
from sklearn.base import clone
from sklearn.calibration import calibration_curve
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sklearn_log_loss
from sklearn.utils._param_validation import InvalidParameterError

from bot4_dagster.kernels import (
    interp,
    interp_one,
    interp_one_python,
    interp_python,
    make_unique,
    make_unique_python,
    pava,
    pava_python,
    sort_by_key,
    sort_by_key_python,
    trim_thresholds,
    trim_thresholds_python,
)
from bot4_dagster.ml.calibration import (
    IsotonicCalibrator,
    brier_decomposition,
    brier_score,
    expected_calibration_error,
    log_loss,
    reliability_table,
)
from bot4_dagster.ml.calibration import _sorted_rows as sorted_rows

TOL = 1e-12
SEED = 20200222


def _rng(offset: int = 0) -> np.random.Generator:
    return np.random.default_rng(SEED + offset)


def _sp500_problem() -> tuple[np.ndarray, np.ndarray]:
    """x = the mean of the last 5 daily returns (%), rounded to 0.1 (real ties); y = 1 if the
    next day closes up. 5,025 rows of real data."""
    close = sp500.load()["Adj Close"].to_numpy(np.float64)
    r = 100 * np.diff(close) / close[:-1]
    signal = np.convolve(r, np.ones(5) / 5, mode="valid")[:-1]  # mean of r[t-4..t]
    return np.round(signal, 1), (r[5:] > 0).astype(np.float64)


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    rng = _rng()
    x = rng.normal(size=400)
    p = rng.uniform(size=600)
    ties = rng.integers(0, 15, 300).astype(np.float64)
    near = np.array([0.0, 4e-16, 9e-16, 1.1e-15, 2e-15, 3.5e-15, 1.0, 1.0 + 2e-16, 2.0])
    sp_x, sp_y = _sp500_problem()
    return {
        "random": (x, x + rng.normal(size=x.size), None),
        "binary_probabilities": (p, (rng.uniform(size=p.size) < p**1.5).astype(float), None),
        "exact_ties": (ties, ties % 4 + rng.normal(size=ties.size), None),
        "ties_fractional_weights": (ties, rng.normal(size=ties.size),
                                    rng.uniform(0.1, 3.0, ties.size)),
        "zero_weights": (x, np.sin(x) + rng.normal(size=x.size),
                         np.where(rng.uniform(size=x.size) < 0.3, 0.0, 1.0)),
        "near_ties_1e-15": (near, rng.normal(size=near.size), rng.uniform(0.5, 2, near.size)),
        "decreasing_relation": (x, -2 * x + rng.normal(size=x.size), None),
        "constant_x": (np.full(7, 3.0), rng.normal(size=7), None),
        "constant_y": (x[:50], np.full(50, 0.25), None),
        "two_points": (np.array([1.0, 2.0]), np.array([5.0, 3.0]), None),
        "one_point": (np.array([0.5]), np.array([0.3]), None),
        "one_column_2d": (x.reshape(-1, 1), x**3 + rng.normal(size=x.size), None),
        "sp500_next_day_up": (sp_x, sp_y, None),
        "sp500_weighted_by_volatility": (sp_x, sp_y, 1.0 + np.abs(sp_x)),
    }


CASES = _cases()


def _queries(x: np.ndarray) -> np.ndarray:
    flat = np.ravel(x)
    lo, hi = flat.min(), flat.max()
    pad = max(hi - lo, 1.0)
    grid = np.linspace(lo - 0.2 * pad, hi + 0.2 * pad, 257)
    return np.concatenate([grid, flat, [lo, hi]])


def _fit_both(x, y, w, **params):
    """Both estimators fitted, with the warnings each raised (category, message)."""
    fitted = []
    for estimator in (IsotonicCalibrator(**params), IsotonicRegression(**params)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimator.fit(x, y, sample_weight=w)
        fitted.append((estimator, sorted((w.category.__name__, str(w.message)) for w in caught)))
    return fitted


def _assert_same_fit(ours, ref) -> None:
    assert ours.X_thresholds_.shape == ref.X_thresholds_.shape
    np.testing.assert_allclose(ours.X_thresholds_, ref.X_thresholds_, rtol=0, atol=TOL)
    np.testing.assert_allclose(ours.y_thresholds_, ref.y_thresholds_, rtol=0, atol=TOL)
    assert ours.X_min_ == ref.X_min_ and ours.X_max_ == ref.X_max_
    assert ours.increasing_ == ref.increasing_


@pytest.mark.parametrize("bounds", [(None, None), (-0.4, 0.6)], ids=["unbounded", "y_bounds"])
@pytest.mark.parametrize("out_of_bounds", ["clip", "nan"])
@pytest.mark.parametrize("increasing", [True, False, "auto"], ids=str)
@pytest.mark.parametrize("case", CASES)
def test_matches_sklearn_isotonic_regression(case, increasing, out_of_bounds, bounds):
    x, y, w = CASES[case]
    params = dict(increasing=increasing, out_of_bounds=out_of_bounds, y_min=bounds[0],
                  y_max=bounds[1])
    (ours, our_warnings), (ref, ref_warnings) = _fit_both(x, y, w, **params)
    _assert_same_fit(ours, ref)
    assert our_warnings == ref_warnings
    q = _queries(x)
    expected = ref.predict(q)
    got = ours.predict(q)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(ours.transform(q), got)


def test_auto_on_a_constant_input_warns_and_decides_like_sklearn():
    (ours, ours_warned), (ref, ref_warned) = _fit_both(np.arange(6.0), np.ones(6), None,
                                                       increasing="auto")
    assert ours.increasing_ is False and ref.increasing_ == ours.increasing_
    assert ours_warned == ref_warned
    assert any("spans zero" in message for _, message in ours_warned)


@pytest.mark.parametrize("case", ["random", "exact_ties", "two_points", "sp500_next_day_up"])
def test_out_of_bounds_raise_predicts_inside_and_raises_outside_like_sklearn(case):
    x, y, w = CASES[case]
    (ours, _), (ref, _) = _fit_both(x, y, w, out_of_bounds="raise")
    inside = np.ravel(x)
    np.testing.assert_allclose(ours.predict(inside), ref.predict(inside), rtol=0, atol=TOL)
    for outside in ([ref.X_min_ - 1.0, 0.0], [ref.X_max_ + 1.0]):
        with pytest.raises(ValueError) as expected:
            ref.predict(outside)
        with pytest.raises(ValueError) as got:
            ours.predict(outside)
        assert str(got.value) == str(expected.value)
        with pytest.raises(ValueError, match="interpolation range"):
            ours.predict_one(outside[0])


def test_one_threshold_is_constant_even_out_of_bounds_like_sklearn():
    x, y = np.full(4, 2.0), np.array([1.0, 2.0, 3.0, 6.0])
    for mode in ("clip", "nan", "raise"):
        (ours, _), (ref, _) = _fit_both(x, y, None, out_of_bounds=mode)
        q = np.array([-5.0, 2.0, 9.0])
        np.testing.assert_array_equal(ours.predict(q), ref.predict(q))
        assert ours.predict_one(-5.0) == 3.0


@pytest.mark.parametrize("out_of_bounds", ["clip", "nan"])
@pytest.mark.parametrize("case", ["random", "exact_ties", "one_point", "sp500_next_day_up"])
def test_predict_one_equals_predict(case, out_of_bounds):
    x, y, w = CASES[case]
    model = IsotonicCalibrator(out_of_bounds=out_of_bounds).fit(x, y, sample_weight=w)
    q = _queries(x)
    batch = model.predict(q)
    single = np.array([model.predict_one(v) for v in q])
    np.testing.assert_array_equal(single, batch)
    assert isinstance(model.predict_one(q[0]), float)


def test_predict_one_refuses_non_finite_scores():
    model = IsotonicCalibrator().fit([0.0, 1.0], [0.0, 1.0])
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            model.predict_one(bad)


@pytest.mark.parametrize("increasing", [True, False])
def test_output_is_monotone_and_within_the_range_of_y(increasing):
    rng = _rng(1)
    x = rng.normal(size=2000)
    y = rng.uniform(size=x.size) < 1 / (1 + np.exp(-x if increasing else x))
    model = IsotonicCalibrator(increasing=increasing).fit(x, y)
    fitted = model.predict(np.linspace(-5, 5, 1001))
    steps = np.diff(fitted)
    assert np.all(steps >= 0) if increasing else np.all(steps <= 0)
    assert steps.any()
    assert fitted.min() >= 0.0 and fitted.max() <= 1.0


def test_y_bounds_clip_the_fitted_values():
    x = np.arange(10.0)
    model = IsotonicCalibrator(y_min=2.0, y_max=6.0).fit(x, x)
    assert model.y_thresholds_.min() == 2.0 and model.y_thresholds_.max() == 6.0


# --- the scikit-learn estimator contract -----------------------------------------------------


def test_get_params_and_clone_keep_the_parameters_verbatim():
    model = IsotonicCalibrator(increasing="auto", out_of_bounds="nan", y_min=0.1, y_max=0.9)
    expected = dict(increasing="auto", out_of_bounds="nan", y_min=0.1, y_max=0.9)
    assert model.get_params() == expected
    twin = clone(model)
    assert twin is not model and twin.get_params() == expected
    assert IsotonicCalibrator().get_params() == dict(increasing=True, out_of_bounds="clip",
                                                     y_min=None, y_max=None)
    fitted = IsotonicCalibrator().fit([0.0, 1.0], [0.0, 1.0])
    assert not hasattr(clone(fitted), "X_thresholds_")


def test_fit_returns_self_and_learned_attributes_end_with_an_underscore():
    model = IsotonicCalibrator()
    before = set(vars(model))
    assert model.fit([0.0, 1.0, 2.0], [0.0, 2.0, 1.0]) is model
    learned = set(vars(model)) - before
    assert learned == {"X_thresholds_", "y_thresholds_", "X_min_", "X_max_", "increasing_"}
    assert all(name.endswith("_") for name in learned)


@pytest.mark.parametrize("method", ["predict", "transform", "predict_one"])
def test_predicting_before_fit_raises_not_fitted(method):
    with pytest.raises(NotFittedError):
        getattr(IsotonicCalibrator(), method)(0.5 if method == "predict_one" else [0.5])


@pytest.mark.parametrize("params", [
    dict(increasing="yes"), dict(increasing=None), dict(out_of_bounds="extrapolate"),
    dict(y_min="low"), dict(y_max=[1.0]),
], ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_bad_parameters_raise_like_sklearn(params):
    with pytest.raises(InvalidParameterError) as expected:
        IsotonicRegression(**params).fit([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(InvalidParameterError) as got:
        IsotonicCalibrator(**params).fit([0.0, 1.0], [0.0, 1.0])
    assert str(got.value) == str(expected.value).replace("IsotonicRegression",
                                                         "IsotonicCalibrator")


@pytest.mark.parametrize("bad", [
    dict(X=np.ones((3, 2)), y=np.ones(3)),
    dict(X=np.ones(3), y=np.ones(4)),
    dict(X=[0.0, np.nan, 1.0], y=np.ones(3)),
    dict(X=np.ones(3), y=np.ones(3), sample_weight=np.zeros(3)),
    dict(X=np.ones(3), y=np.ones(3), sample_weight=-np.ones(3)),
], ids=["two_columns", "lengths", "nan", "zero_weights", "negative_weights"])
def test_bad_inputs_raise_value_error_as_sklearn_does(bad):
    with pytest.raises(ValueError):
        IsotonicRegression().fit(**bad)
    with pytest.raises(ValueError):
        IsotonicCalibrator().fit(**bad)


def test_sklearn_tags_declare_one_dimensional_input():
    ours, ref = IsotonicCalibrator().__sklearn_tags__(), IsotonicRegression().__sklearn_tags__()
    assert ours.input_tags.one_d_array and not ours.input_tags.two_d_array
    assert ours.input_tags == ref.input_tags
    assert ours.estimator_type == "regressor"


# --- kernels ---------------------------------------------------------------------------------


def _weighted_series(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(offset)
    return rng.normal(size=n) + np.linspace(0, 3, n), rng.uniform(0.05, 4.0, n)


@pytest.mark.parametrize("n", [1, 2, 3, 50, 1000, 100_000])
def test_pava_equals_scipy_isotonic_regression(n):
    y, w = _weighted_series(n, n)
    np.testing.assert_allclose(pava(y, w), isotonic_regression(y, weights=w).x, rtol=0,
                               atol=1e-13)
    binary = (y > 1.5).astype(float)
    np.testing.assert_allclose(pava(binary, w), isotonic_regression(binary, weights=w).x,
                               rtol=0, atol=1e-13)


def test_pava_on_a_worked_example():
    # y = 3, 1, 4, 0 with w = 1, 3, 2, 1: 3 > 1 pools to (3·1 + 1·3)/4 = 1.5; 4 follows 1.5
    # in order; 4 > 0 pools to (4·2 + 0·1)/3 = 8/3, still above 1.5, so that is the fit.
    got = pava(np.array([3.0, 1.0, 4.0, 0.0]), np.array([1.0, 3.0, 2.0, 1.0]))
    np.testing.assert_allclose(got, [1.5, 1.5, 8 / 3, 8 / 3], rtol=0, atol=1e-15)


def test_make_unique_is_bit_identical_to_sklearn():
    rng = _rng(3)
    x = np.sort(np.concatenate([rng.integers(0, 30, 500).astype(float),
                                rng.uniform(0, 30, 200), [5.0 + 4e-16, 5.0 + 1.2e-15]]))
    y, w = rng.normal(size=x.size), rng.uniform(0.1, 2.0, x.size)
    for got, expected in zip(make_unique(x, y, w), _make_unique(x, y, w), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_trim_thresholds_keeps_ends_and_breaks():
    x = np.arange(8.0)
    y = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0])
    kept_x, kept_y = trim_thresholds(x, y)
    np.testing.assert_array_equal(kept_x, [0.0, 2.0, 3.0, 4.0, 5.0, 7.0])
    np.testing.assert_array_equal(kept_y, [1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    for n in (1, 2):
        np.testing.assert_array_equal(trim_thresholds(x[:n], y[:n])[0], x[:n])


def test_interp_is_bit_identical_to_np_interp():
    rng = _rng(4)
    xs = np.cumsum(rng.uniform(0.001, 1.0, 300))
    ys = np.cumsum(rng.uniform(0.0, 1.0, 300))
    t = np.concatenate([rng.uniform(xs[0] - 5, xs[-1] + 5, 5000), xs, [xs[0], xs[-1]]])
    np.testing.assert_array_equal(interp(xs, ys, t), np.interp(t, xs, ys))
    np.testing.assert_array_equal([interp_one(xs, ys, v) for v in t[:500]],
                                  np.interp(t[:500], xs, ys))
    crowded = np.concatenate([np.linspace(0.0, 1e-9, 2000), [1.0]])  # one bucket holds most
    t_crowded = np.concatenate([rng.uniform(0, 1e-9, 3000), rng.uniform(0, 1, 100)])
    heights = np.linspace(0.0, 1.0, crowded.size)
    np.testing.assert_array_equal(interp(crowded, heights, t_crowded),
                                  np.interp(t_crowded, crowded, heights))


def test_interp_with_one_threshold_is_constant_and_nan_stays_nan():
    one = np.array([2.0])
    np.testing.assert_array_equal(interp(one, np.array([0.7]), np.array([-1.0, 2.0, 5.0])),
                                  [0.7, 0.7, 0.7])
    xs, ys = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    assert np.isnan(interp(xs, ys, np.array([np.nan]))[0])
    assert math.isnan(interp_one(xs, ys, math.nan))


def test_sort_by_key_is_a_stable_sort():
    rng = _rng(5)
    for key in (rng.normal(size=20_000) * 1e300, rng.integers(-5, 5, 5000).astype(float),
                np.array([0.0, -0.0, -1.0, np.inf, -np.inf, 5e-324, -5e-324, 0.0]),
                np.array([]), np.array([1.5])):
        a, b = rng.normal(size=key.size), np.arange(key.size, dtype=float)
        order = np.argsort(key, kind="stable")
        for got, expected in zip(sort_by_key(key, a, b), (key[order], a[order], b[order]),
                                 strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case", ["random", "exact_ties", "ties_fractional_weights",
                                  "sp500_next_day_up"])
def test_rows_are_sorted_in_sklearns_lexsort_order(case):
    x, y, w = CASES[case]
    x = np.ravel(x)
    w = np.round(_rng(13).uniform(0.5, 2.0, x.size), 1) if w is None else w
    order = np.lexsort((y, x))
    for got, expected in zip(sorted_rows(x, y, w), (x[order], y[order], w[order]), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_kernels_equal_their_python_twins():
    y, w = _weighted_series(300, 6)
    x = np.sort(np.round(_rng(7).uniform(0, 10, 300), 1))
    np.testing.assert_array_equal(pava_python(y, w), pava(y, w))
    for got, expected in zip(make_unique_python(x, y, w), make_unique(x, y, w), strict=True):
        np.testing.assert_array_equal(got, expected)
    ux, uy, _ = make_unique(x, y, w)
    fitted = pava(uy, np.ones_like(uy))
    for got, expected in zip(trim_thresholds_python(ux, fitted), trim_thresholds(ux, fitted),
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    t = _rng(8).uniform(-1, 11, 500)
    np.testing.assert_array_equal(interp_python(ux, uy, t), interp(ux, uy, t))
    assert [interp_one_python(ux, uy, v) for v in t[:50]] == [interp_one(ux, uy, v)
                                                              for v in t[:50]]
    for got, expected in zip(sort_by_key_python(y, x, w), sort_by_key(y, x, w), strict=True):
        np.testing.assert_array_equal(got, expected)


# --- metrics ---------------------------------------------------------------------------------


def test_brier_score_by_hand_and_against_sklearn():
    y, p = [1, 0, 1, 0], [0.9, 0.2, 0.6, 0.5]
    # squared errors 0.01, 0.04, 0.16, 0.25: mean 0.46 / 4 = 0.115
    assert brier_score(y, p) == pytest.approx(0.115, abs=TOL)
    # weights 1, 2, 1, 0: (0.01 + 0.08 + 0.16) / 4 = 0.0625
    assert brier_score(y, p, sample_weight=[1, 2, 1, 0]) == pytest.approx(0.0625, abs=TOL)
    rng = _rng(9)
    p = rng.uniform(size=1000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    w = rng.uniform(0, 2, p.size)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=TOL)
    assert brier_score(y, p, w) == pytest.approx(brier_score_loss(y, p, sample_weight=w),
                                                 abs=TOL)


def test_log_loss_by_hand_clipping_and_against_sklearn():
    # −(ln 0.8 + ln 0.6) / 2 = (0.2231435513 + 0.5108256238) / 2 = 0.3669845875
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(0.3669845875, abs=1e-10)
    # a certain miss costs −ln(1e-15) = 34.538776, not infinity
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15), abs=TOL)
    assert log_loss([0, 1], [0.0, 1.0]) == pytest.approx(-math.log(1 - 1e-15), abs=TOL)
    rng = _rng(10)
    p = rng.uniform(0.01, 0.99, 1000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    w = rng.uniform(0, 2, p.size)
    assert log_loss(y, p, w) == pytest.approx(sklearn_log_loss(y, p, sample_weight=w), abs=TOL)
    extreme = np.concatenate([p[:10], [0.0, 1.0, 1.0, 0.0]])
    outcomes = np.concatenate([y[:10], [0, 1, 0, 1]])
    machine_eps = float(np.finfo(np.float64).eps)
    assert log_loss(outcomes, extreme, eps=machine_eps) == pytest.approx(
        sklearn_log_loss(outcomes, extreme), abs=TOL)


def test_ece_uniform_and_quantile_by_hand():
    y, p = [0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9]
    # uniform, 2 bins [0, 0.5], (0.5, 1]: {0.1, 0.2, 0.3} mean p 0.2, mean y 1/3 -> gap 2/15;
    # {0.9} mean y 1 -> gap 0.1. ECE = 3/4 · 2/15 + 1/4 · 0.1 = 0.1 + 0.025 = 0.125
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.125, abs=TOL)
    # quantile, 2 bins: edges = percentiles 0, 50, 100 = 0.1, 0.25, 0.9: {0.1, 0.2} mean p 0.15,
    # mean y 0 -> 0.15; {0.3, 0.9} mean p 0.6, mean y 1 -> 0.4. ECE = (0.15 + 0.4) / 2 = 0.275
    assert expected_calibration_error(y, p, n_bins=2, strategy="quantile") == pytest.approx(
        0.275, abs=TOL)
    # weights 2, 1, 1, 0 (uniform): the second bin has no weight and drops out; bin 1 has W = 4,
    # mean p (0.2 + 0.2 + 0.3) / 4 = 0.175, mean y 1/4 -> ECE = 0.075
    assert expected_calibration_error(y, p, n_bins=2, sample_weight=[2, 1, 1, 0]) == (
        pytest.approx(0.075, abs=TOL))


def test_a_forecast_on_an_interior_edge_belongs_to_the_lower_bin():
    table = reliability_table([0, 1, 1], [0.5, 0.5, 1.0], n_bins=2)
    np.testing.assert_array_equal(table.edges, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(table.count, [2, 1])
    np.testing.assert_allclose(table.mean_predicted, [0.5, 1.0], rtol=0, atol=TOL)
    np.testing.assert_allclose(table.mean_observed, [0.5, 1.0], rtol=0, atol=TOL)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_table_equals_sklearn_calibration_curve(strategy):
    rng = _rng(11)
    p = rng.beta(2, 5, 3000)
    y = (rng.uniform(size=p.size) < p**1.2).astype(int)
    table = reliability_table(y, p, n_bins=10, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy=strategy)
    used = table.count > 0
    assert table.count.sum() == p.size and table.edges.size == 11
    np.testing.assert_allclose(table.mean_observed[used], prob_true, rtol=0, atol=TOL)
    np.testing.assert_allclose(table.mean_predicted[used], prob_pred, rtol=0, atol=TOL)
    if strategy == "uniform":
        assert not used.all()  # a Beta(2, 5) leaves the top bins empty: NaN there
        assert np.isnan(table.mean_predicted[~used]).all()
    gaps = np.abs(prob_true - prob_pred) * table.count[used] / p.size
    assert expected_calibration_error(y, p, 10, strategy) == pytest.approx(gaps.sum(), abs=TOL)


def test_brier_decomposition_is_exact_when_p_is_constant_within_bins():
    # bin [0, 0.5]: p = 0.2, y = 0 0 1 0 0 (ȳ 0.2); bin (0.5, 1]: p = 0.7, y = 1 1 0 1 1 (ȳ 0.8)
    # base rate 0.5: REL = ½(0)² + ½(0.1)² = 0.005, RES = ½(0.3)² + ½(0.3)² = 0.09, UNC = 0.25
    # Brier = (4·0.04 + 0.64 + 4·0.09 + 0.49) / 10 = 0.165 = 0.005 − 0.09 + 0.25
    y = [0, 0, 1, 0, 0, 1, 1, 0, 1, 1]
    p = [0.2] * 5 + [0.7] * 5
    d = brier_decomposition(y, p, n_bins=2)
    assert d.reliability == pytest.approx(0.005, abs=TOL)
    assert d.resolution == pytest.approx(0.09, abs=TOL)
    assert d.uncertainty == pytest.approx(0.25, abs=TOL)
    assert d.within_bin == pytest.approx(0.0, abs=TOL)
    assert d.brier == pytest.approx(0.165, abs=TOL)
    assert d.reliability - d.resolution + d.uncertainty == pytest.approx(d.brier, abs=TOL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.brier = 0.0  # type: ignore[misc]


def test_brier_decomposition_returns_the_within_bin_residual():
    # one bin, p = 0.1, 0.3 (p̄ 0.2), y = 0, 1 (ȳ 0.5): REL 0.09, RES 0, UNC 0.25,
    # within = ½[(−0.1)² − 2(−0.1)(−0.5) + 0.1² − 2(0.1)(0.5)] = −0.09; Brier = ½(0.01 + 0.49)
    d = brier_decomposition([0, 1], [0.1, 0.3], n_bins=1)
    assert (d.reliability, d.resolution, d.uncertainty) == pytest.approx((0.09, 0.0, 0.25),
                                                                         abs=TOL)
    assert d.within_bin == pytest.approx(-0.09, abs=TOL)
    assert d.brier == pytest.approx(0.25, abs=TOL)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_brier_decomposition_identity_on_random_weighted_forecasts(strategy):
    rng = _rng(12)
    p = rng.beta(2, 3, 5000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    w = np.where(p > 0.9, 0.0, rng.uniform(0, 2, p.size))  # the top bin may end up weightless
    d = brier_decomposition(y, p, n_bins=10, strategy=strategy, sample_weight=w)
    assert d.brier == pytest.approx(brier_score_loss(y, p, sample_weight=w), abs=TOL)
    total = d.reliability - d.resolution + d.uncertainty + d.within_bin
    assert total == pytest.approx(d.brier, abs=TOL)
    assert d.within_bin != 0.0


@pytest.mark.parametrize("call", [
    lambda: brier_score([0, 2], [0.5, 0.5]),
    lambda: brier_score([0, 1], [0.5, 1.5]),
    lambda: brier_score([0, 1], [0.5]),
    lambda: brier_score([0, 1], [0.5, 0.5], sample_weight=[1.0, -1.0]),
    lambda: log_loss([0, 1], [0.5, 0.5], eps=0.0),
    lambda: expected_calibration_error([0, 1], [0.5, 0.5], n_bins=0),
    lambda: reliability_table([0, 1], [0.5, 0.5], strategy="kmeans"),
], ids=["y_not_binary", "p_above_1", "lengths", "negative_weight", "eps", "n_bins", "strategy"])
def test_metrics_refuse_bad_inputs(call):
    with pytest.raises(ValueError):
        call()
