"""Learning samples and fold-local fitting on the real FTX 1-minute bars: the inputs at t0, and
proof that nothing fitted for a fold sees that fold's test rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from model_tables import SYMBOL, ftx_tables

from bot4_dagster.features.table import feature_table
from bot4_dagster.ml.dataset import FoldInputs, fold_garch, learning_samples
from bot4_dagster.ml.garch import fit_garch
from bot4_dagster.ml.learners import PROFILES
from bot4_dagster.ml.oof import fold_splits, train_fold


@pytest.fixture(scope="module")
def tables():
    return ftx_tables(6000)


@pytest.fixture(scope="module")
def samples(tables):
    bars, features, labels, _ = tables
    return learning_samples(bars, features, labels, symbol=SYMBOL)


@pytest.fixture(scope="module")
def split(tables, samples):
    """A purged K-fold split with training rows on both sides of its test block."""
    return fold_splits(tables[3], samples, "purged_kfold")[2]


def test_samples_are_the_labels_with_what_is_known_at_t0(tables, samples):
    bars, _, labels, _ = tables
    assert len(samples) == len(labels)
    np.testing.assert_array_equal(samples.y, (labels["label"].to_numpy() > 0).astype(np.int8))
    np.testing.assert_array_equal(samples.weight, labels["weight"].to_numpy())
    assert (bars["ts"].to_numpy()[samples.bar] == labels["t0"].to_numpy()).all()
    log_close = np.log(bars["close"].to_numpy())
    for n in (1, 5, 20):
        expected = pd.Series(log_close).diff(n).to_numpy()
        np.testing.assert_allclose(samples.per_bar[f"return_{n}"].to_numpy(), expected,
                                   rtol=1e-9, atol=1e-15, equal_nan=True)


def test_the_fold_garch_is_fitted_on_training_bars_only(samples, split):
    train, _ = split
    garch = fold_garch(samples, train)
    first, last = garch.fit_bars
    covered = np.zeros(len(samples.close), dtype=bool)
    for a, b in zip(samples.bar[train], samples.end_bar[train], strict=True):
        covered[a:b + 1] = True
    assert covered[first:last + 1].all()
    closes = samples.close.to_numpy()[first:last + 1]
    direct = fit_garch(np.diff(closes) / closes[:-1] * garch.scale, dist="t")
    assert garch.params == dict(direct.params)
    sigma, z = garch.volatility(samples.close)
    assert np.isnan(sigma[0]) and np.isfinite(sigma[1:]).all() and (sigma[1:] > 0).all()
    # the recursion reproduces the fit's own variances inside the window, once its start is
    # forgotten (β^k of the initial gap)
    inside = sigma[first + 1:last + 1] * garch.scale
    np.testing.assert_allclose(inside[-100:], direct.conditional_volatility[-100:], rtol=1e-6)
    assert np.isfinite(z[1:]).all()


def _inside(samples, test) -> np.ndarray:
    """Bars inside a test label's span [t0, t1]."""
    inside = np.zeros(len(samples.close), dtype=bool)
    for a, b in zip(samples.bar[test], samples.end_bar[test], strict=True):
        inside[a:b + 1] = True
    return inside


def _poisoned(samples, test):
    """The samples with every test row's label, weight and inputs (every bar inside a test
    label's span) replaced by nonsense."""
    inside = _inside(samples, test)
    per_bar = samples.per_bar.copy()
    per_bar.loc[inside] = per_bar.loc[inside] * 1e6 + 3
    y, weight = samples.y.copy(), samples.weight.copy()
    y[test] = 1 - y[test]
    weight[test] = 1e9
    return dataclasses.replace(samples, per_bar=per_bar, y=y, weight=weight)


def test_poisoned_test_prices_never_reach_the_garch_fit(samples, split):
    """Prices inside the test spans are the causal past of the training rows after the block
    (the embargo's business), but the fold's GARCH parameters never see them."""
    train, test = split
    inside = _inside(samples, test)
    close = samples.close.copy()
    close[inside] = close[inside] * np.random.default_rng(7).uniform(0.5, 2.0, inside.sum())
    poisoned = dataclasses.replace(samples, close=close)
    assert fold_garch(samples, train) == fold_garch(poisoned, train)


def test_poisoning_the_test_rows_changes_nothing_fitted(samples, split):
    train, test = split
    clean = FoldInputs.fit(samples, train)
    poisoned_samples = _poisoned(samples, test)
    poisoned = FoldInputs.fit(poisoned_samples, train)

    assert clean.garch == poisoned.garch
    assert clean.regimes == poisoned.regimes
    assert clean.columns == poisoned.columns
    for name in ("median", "mean", "std"):
        np.testing.assert_array_equal(getattr(clean, name), getattr(poisoned, name))
    np.testing.assert_array_equal(clean.tabular(samples, train),
                                  poisoned.tabular(poisoned_samples, train))
    settings = PROFILES["quick"]
    for learner in ("logistic", "hist_gradient_boosting", "extra_trees"):
        a = train_fold(samples, train, test, learner, settings)
        b = train_fold(poisoned_samples, train, test, learner, settings)
        x = a.inputs.tabular(samples, test)
        np.testing.assert_array_equal(a.model.predict_proba(x), b.model.predict_proba(x))


def test_empty_feature_columns_are_dropped_and_gaps_take_the_training_median(samples, split):
    train, _ = split
    assert samples.per_bar["effective_spread"].isna().all() if (
        "effective_spread" in samples.per_bar) else True
    inputs = FoldInputs.fit(samples, train)
    empty = [c for c in samples.per_bar.columns
             if not samples.per_bar[c].iloc[samples.bar[train]].notna().any()]
    assert empty and not set(empty) & set(inputs.columns)
    assert np.isfinite(inputs.matrix).all()
    rows = inputs.tabular(samples, train)
    np.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-9)
    column = inputs.columns.index("return_20")
    raw = samples.per_bar["return_20"].to_numpy()
    gaps = ~np.isfinite(raw)
    median = np.nanmedian(raw[samples.bar[train]])
    expected = (median - inputs.mean[column]) / inputs.std[column]
    np.testing.assert_allclose(inputs.matrix[gaps, column], expected)


def test_windows_end_at_t0_and_ignore_later_bars(samples, split):
    train, _ = split
    inputs = FoldInputs.fit(samples, train)
    rows = np.array([0, 1, len(samples) // 2, len(samples) - 1])
    windows = inputs.windows(samples, rows, 16)
    assert windows.shape == (4, 16, len(inputs.columns)) and windows.dtype == np.float32
    for w, bar in zip(windows, samples.bar[rows], strict=True):
        np.testing.assert_array_equal(w[-1], inputs.matrix[bar].astype(np.float32))
        start = bar - 15
        if start >= 0:
            np.testing.assert_array_equal(w, inputs.matrix[start:bar + 1].astype(np.float32))
        else:
            assert (w[:-start] == 0).all()
    later = dataclasses.replace(inputs, matrix=inputs.matrix.copy())
    later.matrix[samples.bar[rows[2]] + 1:] = 99.0
    np.testing.assert_array_equal(later.windows(samples, rows[:3], 16), windows[:3])


def test_transform_reproduces_the_fitted_matrix(samples, split):
    inputs = FoldInputs.fit(samples, split[0])
    np.testing.assert_array_equal(inputs.transform(samples), inputs.matrix)


def test_predictions_at_t_ignore_every_bar_after_t(tables, samples, split):
    """Causality end to end: bars after t (prices, volumes, hence features and returns) changed,
    the features recomputed from them, and the fitted inputs and models applied as fitted: every
    prediction at or before t is unchanged, for the tabular learners and the LSTM's windows."""
    bars, _, labels, _ = tables
    train, test = split
    cut = samples.bar[test[len(test) // 2]]
    later = bars.copy()
    rng = np.random.default_rng(3)
    scale = rng.uniform(0.8, 1.25, len(bars) - cut - 1)
    for column in ("open", "high", "low", "close"):
        later.loc[later.index[cut + 1:], column] *= scale
    later.loc[later.index[cut + 1:], "volume"] *= rng.uniform(0.1, 10, len(bars) - cut - 1)
    changed_features, _ = feature_table(later, symbol=SYMBOL, volume_unit="quote")
    changed = learning_samples(later, changed_features, labels, symbol=SYMBOL)
    settings = PROFILES["quick"]
    before = test[samples.bar[test] <= cut]
    for learner in ("logistic", "attention_lstm"):
        fold = train_fold(samples, train, test, learner, dataclasses.replace(settings, epochs=2))
        moved = dataclasses.replace(fold.inputs, matrix=fold.inputs.transform(changed))
        assert not np.allclose(moved.matrix[cut + 1:], fold.inputs.matrix[cut + 1:])
        np.testing.assert_allclose(moved.matrix[:cut + 1], fold.inputs.matrix[:cut + 1],
                                   rtol=1e-12, atol=1e-12)
        if learner == "attention_lstm":
            x, y = (i.windows(s, before, settings.window)
                    for i, s in ((fold.inputs, samples), (moved, changed)))
        else:
            x, y = fold.inputs.tabular(samples, before), moved.tabular(changed, before)
        np.testing.assert_allclose(fold.model.predict_proba(y), fold.model.predict_proba(x),
                                   rtol=1e-9, atol=1e-12)
