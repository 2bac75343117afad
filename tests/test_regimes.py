"""Volatility regimes (``ml/regimes.py``) and the volatility pipeline (``ml/volatility.py``):
scaled returns, ``estimate_volatility``, ``diagnose`` and the ``compare_with_arch`` guard."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500
from conftest import FTX, TRADES

from bot4_dagster.ml.diagnostics import arch_lm, ljung_box
from bot4_dagster.ml.garch import fit_garch
from bot4_dagster.ml.regimes import REGIMES, VolatilityRegimes
from bot4_dagster.ml.volatility import (
    LL_RTOL,
    PARAM_TOL,
    compare_with_arch,
    diagnose,
    estimate_volatility,
    scaled_returns,
)


@cache
def sp500_close() -> pd.Series:
    return sp500.load()["Adj Close"]


@cache
def ftx_close() -> pd.Series:
    bars = pd.read_csv(FTX, usecols=["timestamp", "close"])
    return pd.Series(bars["close"].to_numpy(), index=pd.to_datetime(bars["timestamp"]),
                     name="close")


@cache
def sp500_fit():
    return fit_garch(100 * sp500_close().pct_change().dropna(), dist="normal")


# ------------------------------------------------------------------ regimes


def test_thresholds_are_numpy_quantiles_of_the_finite_values():
    sigma = np.random.default_rng(0).lognormal(0.0, 0.5, 1000)
    with_gaps = np.r_[np.nan, sigma, np.inf, -np.inf, np.nan]
    regimes = VolatilityRegimes.fit(with_gaps)
    assert (regimes.low, regimes.high, regimes.crisis) == tuple(
        np.quantile(sigma, [0.25, 0.75, 0.95]))
    assert regimes.quantiles == (0.25, 0.75, 0.95)
    custom = VolatilityRegimes.fit(pd.Series(sigma), quantiles=(0.1, 0.5, 0.99))
    assert (custom.low, custom.high, custom.crisis) == tuple(np.quantile(sigma, [0.1, 0.5, 0.99]))
    assert custom.quantiles == (0.1, 0.5, 0.99)


def test_labels_boundaries_and_undefined():
    """Each regime includes its upper edge (low ≤ q25 < normal ≤ q75 < high ≤ q95 < crisis);
    NaN and ±inf volatility are undefined (code −1, a missing label)."""
    regimes = VolatilityRegimes(low=1.0, high=2.0, crisis=3.0)
    sigma = np.array([0.0, 0.5, 1.0, np.nextafter(1.0, 2.0), 2.0, 2.5, 3.0,
                      np.nextafter(3.0, 4.0), 10.0, np.nan, np.inf])
    codes = regimes.codes(sigma)
    assert codes.dtype == np.int8
    np.testing.assert_array_equal(codes, [0, 0, 0, 1, 1, 2, 2, 3, 3, -1, -1])
    labels = regimes.label(sigma)
    assert isinstance(labels, pd.Categorical) and list(labels.categories) == list(REGIMES)
    assert list(labels[:9]) == ["low", "low", "low", "normal", "normal", "high", "high",
                                "crisis", "crisis"]
    assert pd.isna(labels[9]) and pd.isna(labels[10])
    table = regimes.table()
    assert list(table["regime"]) == list(REGIMES)
    assert list(table["volatility from"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(table["volatility to"]) == [1.0, 2.0, 3.0, np.inf]
    assert table["rule"].iloc[0] == "<= q25%" and table["rule"].iloc[3].startswith("> q95%")


def test_crisis_share_on_sp500_garch_volatility():
    sigma = sp500_fit().conditional_volatility
    regimes = VolatilityRegimes.fit(sigma)
    shares = np.bincount(regimes.codes(sigma), minlength=4) / len(sigma)
    n = len(sigma)
    np.testing.assert_allclose(shares, [0.25, 0.50, 0.20, 0.05], atol=2 / n)
    assert np.all(sigma[regimes.codes(sigma) == 3] > regimes.crisis)


def test_thresholds_carried_to_new_data():
    """Bars after the fit window are labelled on the window's scale, not their own."""
    close = sp500_close()
    r = 100 * close.pct_change().dropna()
    fit = fit_garch(r.iloc[:4000], dist="normal")
    regimes = VolatilityRegimes.fit(fit.conditional_volatility)
    new_sigma = np.sqrt(fit.filter(r.iloc[4000:]))
    codes = regimes.codes(new_sigma)
    expected = np.searchsorted([regimes.low, regimes.high, regimes.crisis], new_sigma)
    np.testing.assert_array_equal(codes, expected)
    # 2015-2018 was calmer than 1999-2014: on the old scale far fewer than 5% are crises,
    # while thresholds refitted on the new bars would call exactly 5% crises
    own = VolatilityRegimes.fit(new_sigma)
    assert own.crisis < regimes.crisis
    assert np.mean(codes == 3) < 0.05 <= np.mean(own.codes(new_sigma) == 3) + 1 / len(new_sigma)


@pytest.mark.parametrize("quantiles", [(0.75, 0.25, 0.95), (0.0, 0.5, 0.9), (0.25, 0.75, 1.0),
                                       (0.25, 0.25, 0.95), (-0.1, 0.5, 0.9)])
def test_invalid_quantiles_rejected(quantiles):
    with pytest.raises(ValueError, match="quantiles must increase inside"):
        VolatilityRegimes.fit(np.linspace(1, 2, 100), quantiles=quantiles)


def test_no_finite_volatility_rejected():
    with pytest.raises(ValueError, match="no finite volatility"):
        VolatilityRegimes.fit([np.nan, np.inf])
    with pytest.raises(ValueError, match="no finite volatility"):
        VolatilityRegimes.fit([])


# ------------------------------------------------------------------ scaled returns


def test_scaled_returns_percent_for_daily_closes():
    close = sp500_close()
    returns, scale = scaled_returns(close)
    assert scale == 100.0
    expected = 100 * close.pct_change().dropna()
    np.testing.assert_array_equal(returns.to_numpy(), expected.to_numpy())
    assert returns.index.equals(close.index[1:])


def test_scaled_returns_ftx_minutes_times_1000():
    close = ftx_close()
    returns, scale = scaled_returns(close)
    assert scale == 1000.0
    decimal = close.pct_change().dropna()
    np.testing.assert_allclose(returns.to_numpy(), 1000 * decimal.to_numpy(), rtol=1e-9,
                               atol=1e-12)
    assert 0.1 <= np.var(returns) < 10  # percent returns (variance ~0.01) were too small
    assert returns.index.equals(close.index[1:])


def test_scaled_returns_constant_close_keeps_percent():
    returns, scale = scaled_returns(pd.Series(np.full(50, 7.0)))
    assert scale == 100.0 and np.all(returns == 0)


# ------------------------------------------------------------------ end to end


def test_estimate_volatility_sp500():
    est = estimate_volatility(sp500_close())
    r = 100 * sp500_close().pct_change().dropna()
    assert est.scale == 100.0
    reference = fit_garch(r)  # t errors, constant mean, bfgs: the defaults
    np.testing.assert_array_equal(est.fit.theta, reference.theta)
    assert est.fit.setup.dist == "t"
    assert est.regimes == VolatilityRegimes.fit(reference.conditional_volatility)
    pd.testing.assert_frame_equal(est.diagnostics, diagnose(reference))
    frame = est.frame()
    assert list(frame.columns) == ["ret", "sigma", "std_resid", "regime"]
    assert frame.index.equals(sp500_close().index[1:])
    np.testing.assert_array_equal(frame["sigma"], reference.conditional_volatility)
    np.testing.assert_array_equal(frame["std_resid"], reference.std_resid)
    assert frame["regime"].notna().all()
    assert frame["regime"].value_counts()["crisis"] == (frame["sigma"] > est.regimes.crisis).sum()


def test_estimate_volatility_ftx_minutes_with_l2():
    est = estimate_volatility(ftx_close(), dist="normal", l2=1e-3, prior=(0.05, 0.9))
    assert est.scale == 1000.0
    assert (est.fit.setup.dist, est.fit.l2, est.fit.prior) == ("normal", 1e-3, (0.05, 0.9))
    assert est.fit.nobs == len(ftx_close()) - 1
    assert 0.9 < est.fit.persistence < 1.0
    assert list(est.diagnostics["test"]) == ["Ljung-Box(10) on z", "Ljung-Box(10) on z²",
                                             "ARCH-LM(5) on z"]


@pytest.mark.parametrize(("lags", "arch_lags"), [(10, 5), (3, 12)])
def test_diagnose_equals_ljung_box_and_arch_lm(lags, arch_lags):
    fit = sp500_fit()
    z = fit.std_resid
    table = diagnose(fit, lags=lags, arch_lags=arch_lags)
    expected = [ljung_box(z, lags), ljung_box(z * z, lags), arch_lm(z, arch_lags)]
    assert list(table.columns) == ["test", "statistic", "p_value"]
    assert list(table["test"]) == [f"Ljung-Box({lags}) on z", f"Ljung-Box({lags}) on z²",
                                   f"ARCH-LM({arch_lags}) on z"]
    for row, (stat, p) in zip(table.itertuples(), expected, strict=True):
        assert row.statistic == stat and row.p_value == p


def test_diagnose_sp500_measured():
    """numerics.md §2: GARCH-Normal standardised residuals of sp500 (printed precision)."""
    table = diagnose(fit_garch(100 * sp500_close().pct_change().dropna(), dist="normal",
                               optimizer="slsqp")).set_index("test")
    assert table.loc["Ljung-Box(10) on z", "statistic"] == pytest.approx(24.443, abs=5e-4)
    assert table.loc["Ljung-Box(10) on z", "p_value"] == pytest.approx(0.0065, abs=5e-5)
    assert table.loc["Ljung-Box(10) on z²", "statistic"] == pytest.approx(14.503, abs=5e-4)
    assert table.loc["ARCH-LM(5) on z", "statistic"] == pytest.approx(6.584, abs=5e-4)


@pytest.mark.parametrize("dist", ["normal", "t"])
def test_compare_with_arch_passes_on_sp500(dist):
    r = 100 * sp500_close().pct_change().dropna()
    fit = fit_garch(r, dist=dist)
    result = compare_with_arch(fit, r)
    assert result.passed and result.reason == "agrees with arch"
    assert result.loglik >= result.arch_loglik - LL_RTOL * abs(result.arch_loglik)
    assert result.max_param_diff <= PARAM_TOL
    assert list(result.params.index) == list(fit.setup.names)
    assert list(result.params.columns) == ["ours", "arch", "difference", "arch_std_error",
                                           "allowed"]
    exact = compare_with_arch(fit_garch(r, dist=dist, optimizer="slsqp"), r)
    assert exact.passed and exact.max_param_diff == 0 and exact.loglik == exact.arch_loglik


def test_compare_with_arch_fails_on_a_perturbed_fit():
    r = 100 * sp500_close().pct_change().dropna()
    fit = fit_garch(r, dist="t")
    theta = fit.theta.copy()
    theta[2] += 0.01  # alpha
    bad = compare_with_arch(dataclasses.replace(fit, theta=theta), r)
    assert not bad.passed
    assert bad.loglik < bad.arch_loglik
    assert bad.max_param_diff == pytest.approx(0.01, rel=1e-3)
    assert "log-likelihood" in bad.reason and "parameters differ by up to 1.00e-02" in bad.reason
    assert bad.excess > 1
    # a parameter off by more than the tolerance fails even where the likelihood barely moves
    theta = fit.theta.copy()
    theta[-1] += 0.01  # nu: 1.5e-3 relative
    nu_off = compare_with_arch(dataclasses.replace(fit, theta=theta), r)
    assert not nu_off.passed and "parameters differ" in nu_off.reason
    # the allowance is the larger of 1e-4 and 1% of arch's standard error, never below 1e-4
    assert (nu_off.params["allowed"] >= PARAM_TOL).all()


def test_compare_with_arch_on_a_short_flat_likelihood():
    """126 one-minute bars of the real Binance trades: BFGS ends higher than arch's SLSQP, 2.4e-4
    apart in β, a thousandth of β's standard error: agreement, not a failure."""
    trades = pd.read_csv(TRADES)
    minute = pd.to_datetime(trades["timestamp"], unit="us", utc=True).dt.floor("1min")
    close = trades.groupby(minute)["price"].last()
    estimate = estimate_volatility(close)
    result = compare_with_arch(estimate.fit, estimate.returns)
    assert result.loglik >= result.arch_loglik
    assert result.max_param_diff > PARAM_TOL  # stricter than the old 1e-4 rule allowed
    assert result.passed and result.excess < 0.2, result.reason


def test_the_zero_mean_model_is_compared_with_arch_zero_mean():
    r = 100 * sp500_close().pct_change().dropna()
    zero = fit_garch(r, dist="normal", mean="zero")
    assert compare_with_arch(zero, r).passed


# ------------------------------------------------------------------ the stored frame


def test_stored_volatility_frame_is_the_estimate_per_bar():
    close = ftx_close().iloc[:5000]
    close.index = pd.to_datetime(close.index, utc=True)
    est = estimate_volatility(close, symbol="BTC-PERP")
    stored = est.table("BTC-PERP")
    assert list(stored.columns) == ["symbol", "ts", "ret", "sigma", "std_resid", "regime", "scale"]
    assert len(stored) == len(close) and (stored["ts"].to_numpy() == close.index.to_numpy()).all()
    assert stored.iloc[0, 2:6].isna().all()  # the first bar has no return
    frame = est.frame()
    np.testing.assert_array_equal(stored["ret"].iloc[1:], frame["ret"])
    np.testing.assert_array_equal(stored["sigma"].iloc[1:], est.fit.conditional_volatility)
    np.testing.assert_array_equal(stored["std_resid"].iloc[1:], est.fit.std_resid)
    assert (stored["regime"].iloc[1:].to_numpy() == frame["regime"].astype(str).to_numpy()).all()
    assert (stored["scale"] == est.scale).all() and est.scale == 1000.0
    assert stored["regime"].dtype == "string" and (stored["symbol"] == "BTC-PERP").all()


def test_regime_table_counts_every_bar_with_a_return():
    est = estimate_volatility(sp500_close())
    table = est.regime_table()
    assert list(table["regime"]) == list(REGIMES) and table["bars"].sum() == len(est.returns)
    codes = est.regimes.codes(est.fit.conditional_volatility)
    assert list(table["bars"]) == np.bincount(codes, minlength=4).tolist()
    assert table["bars"].iloc[3] == pytest.approx(0.05 * len(est.returns), abs=2)
