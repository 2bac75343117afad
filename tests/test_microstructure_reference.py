"""The pandas reference of docs/microstructure.md on its own, before anything is compared with it.

It has to be right by itself: it recovers known parameters from synthetic tapes, keeps the
invariants on real data, matches statsmodels for Kyle λ and the AFML snippets 19.1/19.2 written
out from the book, and follows the page's NaN rules to the bar.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from synthetic_microstructure import (
    huang_stoll_model,
    kyle_model,
    load_binance_trades,
    load_ftx_bars,
    roll_model,
    trades_to_minute_bars,
)

from benchmarks.reference.microstructure_pandas import (
    FEATURES,
    reference_features,
)

# The Binance tape is ~2 hours, so the 24 h VPIN/BVC defaults would leave VPIN all NaN there.
SMALL_VPIN = dict(vpin_volume_window=30, bvc_sigma_window=30, vpin_buckets=10)
RECOVERY_RTOL = 0.02


@pytest.fixture(scope="module")
def ftx() -> pd.DataFrame:
    return load_ftx_bars()


@pytest.fixture(scope="module")
def ftx_ref(ftx) -> pd.DataFrame:
    return reference_features(ftx, volume_unit="quote")


@pytest.fixture(scope="module")
def ftx_buy_ref(ftx) -> pd.DataFrame:
    """FTX bars with a synthetic taker-buy share, for T1 exact and T6 from buy_volume."""
    share = np.random.default_rng(7).uniform(0.0, 1.0, len(ftx))
    return reference_features(ftx.assign(buy_volume=ftx["volume"] * share), volume_unit="quote")


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    return load_binance_trades()


@pytest.fixture(scope="module")
def bars(trades) -> pd.DataFrame:
    return trades_to_minute_bars(trades)


@pytest.fixture(scope="module")
def binance_ref(bars, trades) -> pd.DataFrame:
    return reference_features(bars, trades, **SMALL_VPIN)


def whole_sample(model) -> tuple[pd.Series, float]:
    """The last row with windows covering every bar, and the mean trade price p̄ of that window."""
    bars, trades = model()
    frame = reference_features(bars, trades, trade_window=len(bars),
                               regression_window=len(bars))
    return frame.iloc[-1], trades["price"].mean()


# --------------------------------------------------------------------------- synthetic recovery

def test_features_are_the_pages_21_in_order():
    assert len(FEATURES) == len(set(FEATURES)) == 21
    assert FEATURES[0] == "signed_volume_imbalance" and FEATURES[12] == "sign_autocorr"
    assert FEATURES[13] == "roll_measure" and FEATURES[-1] == "parkinson_vol"


def test_roll_spread_recovered():
    """T9 × p̄ over one window of all 200k trades is 2√(−cov) = the absolute spread 2c = 1."""
    last, pbar = whole_sample(roll_model)
    assert last["roll_spread_tick"] * pbar == pytest.approx(1.0, rel=RECOVERY_RTOL)


def test_huang_stoll_recovered():
    """T7 × p̄ = 2a = S = 1 and T8 = c/a = λ = 0.4 over one window of all 200k trades."""
    last, pbar = whole_sample(huang_stoll_model)
    assert last["huang_stoll_spread"] * pbar == pytest.approx(1.0, rel=RECOVERY_RTOL)
    assert last["huang_stoll_adverse_share"] == pytest.approx(0.4, rel=RECOVERY_RTOL)


def test_kyle_lambda_recovered():
    """T3 = λ = 2e-3 over all 200k trades, and as the median of the default 15-bar windows."""
    last, _ = whole_sample(kyle_model)
    assert last["kyle_lambda"] == pytest.approx(2e-3, rel=RECOVERY_RTOL)
    bars, trades = kyle_model()
    per_window = reference_features(bars, trades)["kyle_lambda"]
    assert per_window.notna().sum() == len(bars) - 14
    assert per_window.median() == pytest.approx(2e-3, rel=RECOVERY_RTOL)


# --------------------------------------------------------------------------- invariants

def test_imbalances_within_unit_interval(binance_ref, ftx_ref, ftx_buy_ref):
    for frame, cols in ((binance_ref, ["signed_volume_imbalance", "trade_count_imbalance"]),
                        (ftx_ref, ["signed_volume_imbalance"]),
                        (ftx_buy_ref, ["signed_volume_imbalance"])):
        for col in cols:
            values = frame[col].dropna()
            assert len(values) > 100 and values.between(-1.0, 1.0).all(), col


def test_vpin_within_unit_interval(binance_ref, ftx_ref, ftx_buy_ref):
    for frame, col in ((binance_ref, "vpin"), (binance_ref, "vpin_bvc"),
                       (ftx_ref, "vpin_bvc"), (ftx_buy_ref, "vpin")):
        values = frame[col].dropna()
        assert len(values) > 50 and values.between(0.0, 1.0).all(), col


def test_corwin_schultz_within_zero_two(binance_ref, ftx_ref):
    for frame in (binance_ref, ftx_ref):
        cs = frame["corwin_schultz_spread"].dropna()
        assert ((cs >= 0.0) & (cs < 2.0)).all()
        assert (cs > 0).any() and (cs == 0).any()  # both branches of "α < 0 → 0" are exercised


def test_flat_bars_give_zero_corwin_schultz(ftx):
    """H = L in every bar: β = 0, so α = −√(γ/d) ≤ 0 and the spread is 0."""
    flat = ftx.iloc[:2000].assign(high=ftx["close"], low=ftx["close"], open=ftx["close"])
    cs = reference_features(flat, volume_unit="quote")["corwin_schultz_spread"]
    assert cs.isna().sum() == 20 and (cs.dropna() == 0.0).all()


def test_first_values_where_the_windows_fill(binance_ref, ftx_ref):
    """NaN exactly until each window fills: W−1 for windows, W for bar differences, W+1 for B1."""
    trade_w, reg_w, bar_w, sigma_w = 15, 60, 20, 1440
    expected_binance = {
        "signed_volume_imbalance": trade_w - 1, "trade_count_imbalance": trade_w - 1,
        "kyle_lambda": trade_w - 1, "amihud_lambda": reg_w, "hasbrouck_lambda": reg_w,
        "huang_stoll_spread": reg_w - 1, "huang_stoll_adverse_share": reg_w - 1,
        "roll_spread_tick": trade_w - 1, "trade_intensity": 0, "mean_trade_size": trade_w - 1,
        "vwap_deviation": 0, "sign_autocorr": trade_w - 1, "roll_measure": bar_w + 1,
        "roll_impact": bar_w + 1, "corwin_schultz_spread": bar_w, "becker_parkinson_vol": bar_w,
        "kyle_lambda_bar": bar_w, "amihud_illiquidity": reg_w, "parkinson_vol": bar_w - 1,
    }
    expected_ftx = {
        name: expected_binance[name] for name in
        ("amihud_lambda", "roll_measure", "roll_impact", "corwin_schultz_spread",
         "becker_parkinson_vol", "kyle_lambda_bar", "amihud_illiquidity", "parkinson_vol")
    }
    expected_ftx["signed_volume_imbalance"] = sigma_w + trade_w - 1  # BVC needs σ first
    for frame, expected in ((binance_ref, expected_binance), (ftx_ref, expected_ftx)):
        assert {name: frame[name].first_valid_index() for name in expected} == expected


def test_unavailable_features_are_all_nan(ftx_ref, ftx_buy_ref):
    trades_only = ["trade_count_imbalance", "kyle_lambda", "hasbrouck_lambda",
                   "huang_stoll_spread", "huang_stoll_adverse_share", "roll_spread_tick",
                   "vwap_deviation", "sign_autocorr"]
    no_trade_count = ["trade_intensity", "mean_trade_size"]
    assert ftx_ref[trades_only + no_trade_count + ["vpin"]].isna().all().all()
    assert ftx_buy_ref[trades_only + no_trade_count].isna().all().all()
    assert ftx_buy_ref["vpin"].notna().any()


def test_dv_rule_quote_volume_equals_close_times_base_volume(ftx, ftx_ref):
    """Bars in base units give DV = c·V, which is the quote volume again for DV-based features."""
    base = ftx.assign(volume=ftx["volume"] / ftx["close"])
    frame = reference_features(base, volume_unit="base")
    for col in ("amihud_lambda", "roll_impact", "amihud_illiquidity"):
        np.testing.assert_allclose(frame[col], ftx_ref[col], rtol=1e-12, atol=0, err_msg=col)


def test_reference_is_causal(bars, trades, binance_ref):
    """Recomputing on the first k bars (and their trades) reproduces the first k rows bit for
    bit."""
    for k in (30, 61, 100):
        close = bars["ts"].iloc[k - 1] + pd.Timedelta("1min")
        part = reference_features(bars.iloc[:k], trades[trades["ts"] < close], **SMALL_VPIN)
        assert np.array_equal(part.to_numpy(), binance_ref.iloc[:k].to_numpy(), equal_nan=True)


# --------------------------------------------------------------------------- Kyle λ vs statsmodels

def test_kyle_lambda_matches_statsmodels(bars, trades, binance_ref):
    """T3 = statsmodels OLS (no constant) of Δp_t on b_t·v_t over each window's trades."""
    window, min_trades = 15, 20
    y_all = trades["price"].diff()
    x_all = trades["side"] * trades["amount"]
    expected = np.full(len(bars), np.nan)
    for tau in range(window - 1, len(bars)):
        start = bars["ts"].iloc[tau - window + 1]
        end = bars["ts"].iloc[tau] + pd.Timedelta("1min")
        rows = (trades["ts"] >= start) & (trades["ts"] < end) & y_all.notna()
        if rows.sum() >= min_trades:
            expected[tau] = sm.OLS(y_all[rows].to_numpy(), x_all[rows].to_numpy()).fit().params[0]
    assert np.isfinite(expected).sum() == len(bars) - window + 1
    np.testing.assert_allclose(binance_ref["kyle_lambda"], expected, rtol=1e-9, atol=0)


# --------------------------------------------------------------------------- AFML 19.1 / 19.2

def afml_get_beta(series, sl):
    hl = series[["High", "Low"]].values
    hl = np.log(hl[:, 0] / hl[:, 1]) ** 2
    hl = pd.Series(hl, index=series.index)
    beta = hl.rolling(window=2).sum()
    beta = beta.rolling(window=sl).mean()
    return beta.dropna()


def afml_get_gamma(series):
    h2 = series["High"].rolling(window=2).max()
    l2 = series["Low"].rolling(window=2).min()
    gamma = np.log(h2.values / l2.values) ** 2
    gamma = pd.Series(gamma, index=h2.index)
    return gamma.dropna()


def afml_get_alpha(beta, gamma):
    den = 3 - 2 * 2 ** 0.5
    alpha = (2 ** 0.5 - 1) * (beta ** 0.5) / den
    alpha -= (gamma / den) ** 0.5
    alpha[alpha < 0] = 0  # set negative alphas to 0 (see p.727 of paper)
    return alpha.dropna()


def afml_corwin_schultz(series, sl=1):
    beta = afml_get_beta(series, sl)
    gamma = afml_get_gamma(series)
    alpha = afml_get_alpha(beta, gamma)
    spread = 2 * (np.exp(alpha) - 1) / (1 + np.exp(alpha))
    start_time = pd.Series(series.index[0:spread.shape[0]], index=spread.index)
    spread = pd.concat([spread, start_time], axis=1)
    spread.columns = ["Spread", "Start_Time"]  # 1st loc used to compute beta
    return spread


def afml_get_sigma(beta, gamma):
    k2 = (8 / np.pi) ** 0.5
    den = 3 - 2 * 2 ** 0.5
    sigma = (2 ** -0.5 - 1) * beta ** 0.5 / (k2 * den)
    sigma += (gamma / (k2 ** 2 * den)) ** 0.5
    sigma[sigma < 0] = 0
    return sigma


@pytest.mark.parametrize("source", ["ftx", "binance"])
def test_corwin_schultz_and_becker_parkinson_match_afml(source, ftx, ftx_ref, bars, binance_ref):
    frame, ours = (ftx, ftx_ref) if source == "ftx" else (bars, binance_ref)
    series = frame.rename(columns={"high": "High", "low": "Low"})
    sl = 20
    spread = afml_corwin_schultz(series, sl)["Spread"]
    sigma = afml_get_sigma(afml_get_beta(series, sl), afml_get_gamma(series)).dropna()
    assert spread.index[0] == sigma.index[0] == sl
    for col, snippet in (("corwin_schultz_spread", spread), ("becker_parkinson_vol", sigma)):
        assert ours[col].iloc[:sl].isna().all()
        np.testing.assert_allclose(ours[col].iloc[sl:], snippet.reindex(ours.index[sl:]),
                                   rtol=1e-12, atol=1e-15, err_msg=col)
