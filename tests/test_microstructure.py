"""The fast microstructure features against the independent pandas reference, on real data.

Both implement docs/microstructure.md. Every feature is compared on each input kind (bars only, bars
+ trades, bars with buy_volume and trade_count, bars with gaps, 10-second bars with quotes), and the
availability table, causality, the incremental state and synthetic recovery are checked.

Tolerance: ``rtol=1e-9`` plus ``atol = 1e-9 × the feature's median |value|`` on that input. The atol
covers values near zero of signed or centred features (imbalances, correlations, VWAP deviation,
λ's, c/a), whose cancellation leaves an absolute, not a relative, rounding error of the order of the
feature's scale times machine epsilon; the two sides sum in different orders. NaN positions must
be identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from synthetic_microstructure import (
    huang_stoll_model,
    kyle_model,
    load_binance_quotes,
    load_binance_trades,
    load_ftx_bars,
    roll_model,
    trades_to_minute_bars,
)

from benchmarks.reference.microstructure_pandas import (
    QUOTE_FEATURES,
    reference_features,
)
from bot4_dagster.features.microstructure import (
    FEATURES,
    MicrostructureState,
    microstructure_availability,
    microstructure_features,
)
from bot4_dagster.features.table import COLUMNS, availability_counts, feature_table

EXPECTED_FEATURES = (
    "signed_volume_imbalance", "trade_count_imbalance", "kyle_lambda", "amihud_lambda",
    "hasbrouck_lambda", "vpin", "huang_stoll_spread", "huang_stoll_adverse_share",
    "roll_spread_tick", "trade_intensity", "mean_trade_size", "vwap_deviation", "sign_autocorr",
    "roll_measure", "roll_impact", "corwin_schultz_spread", "becker_parkinson_vol",
    "kyle_lambda_bar", "amihud_illiquidity", "vpin_bvc", "parkinson_vol",
)
MINUTE = pd.Timedelta("1min")
# The Binance tape is ~2 hours, so the 24 h VPIN/BVC defaults would leave VPIN all NaN there.
SMALL_VPIN = dict(vpin_volume_window=30, bvc_sigma_window=30, vpin_buckets=10)
# ~4 minutes of quotes: 10-second bars and windows short enough to give values there.
QUOTE_WINDOWS = dict(interval="10s", trade_window=3, regression_window=6, bar_window=5,
                     kyle_min_trades=5, vpin_volume_window=6, bvc_sigma_window=6, vpin_buckets=3)
STATE_FTX_BARS = 6000
RECOVERY_RTOL = 0.02


# --------------------------------------------------------------------------- inputs

@pytest.fixture(scope="module")
def ftx() -> pd.DataFrame:
    return load_ftx_bars()


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    return load_binance_trades()


@pytest.fixture(scope="module")
def bars(trades) -> pd.DataFrame:
    return trades_to_minute_bars(trades)


def _with_buy_volume(ftx: pd.DataFrame) -> pd.DataFrame:
    """FTX bars with a synthetic taker-buy share and trade count (seeded)."""
    rng = np.random.default_rng(11)
    return ftx.assign(buy_volume=ftx["volume"] * rng.uniform(0.0, 1.0, len(ftx)),
                      trade_count=rng.integers(1, 400, len(ftx)))


def _with_gaps(bars: pd.DataFrame) -> pd.DataFrame:
    """Binance bars missing the first minute and minutes 40–44: their trades fall in no bar."""
    return bars.drop(index=[0, 40, 41, 42, 43, 44]).reset_index(drop=True)


def _quote_overlap(trades: pd.DataFrame, quotes: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Trades up to the last quote, their 10-second bars, and the quotes."""
    inside = trades[trades["ts"] <= quotes["ts"].iloc[-1]].reset_index(drop=True)
    return trades_to_minute_bars(inside, "10s"), inside, quotes


CASES = ("ftx_bars", "binance_trades", "ftx_buy_volume", "binance_gaps", "binance_quotes")


@pytest.fixture(scope="module", params=CASES)
def case(request, ftx, bars, trades) -> dict:
    """One input kind with our frame and the reference frame, each computed once per module."""
    name = request.param
    quotes, kwargs = None, {}
    if name == "ftx_bars":
        inputs, kwargs = (ftx, None), dict(volume_unit="quote")
    elif name == "binance_trades":
        inputs, kwargs = (bars, trades), SMALL_VPIN
    elif name == "ftx_buy_volume":
        inputs, kwargs = (_with_buy_volume(ftx), None), dict(volume_unit="quote")
    elif name == "binance_gaps":
        inputs, kwargs = (_with_gaps(bars), trades), SMALL_VPIN
    else:
        q_bars, q_trades, quotes = _quote_overlap(trades, load_binance_quotes())
        inputs, kwargs = (q_bars, q_trades), QUOTE_WINDOWS
    ours = microstructure_features(*inputs, quotes, **kwargs)
    ref = reference_features(*inputs, quotes, **kwargs)
    return dict(name=name, bars=inputs[0], ours=ours, ref=ref)


def assert_feature_close(ours, ref, name: str) -> None:
    """rtol 1e-9, atol 1e-9 × median |ref| (see the module docstring), same NaN positions."""
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{name}: NaN positions")
    nonzero = np.abs(ref[np.isfinite(ref) & (ref != 0)])
    atol = 1e-9 * float(np.median(nonzero)) if len(nonzero) else 0.0
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=atol, err_msg=name)


# --------------------------------------------------------------------------- against the reference

def test_features_tuple_is_exact():
    assert isinstance(FEATURES, tuple) and FEATURES == EXPECTED_FEATURES
    assert callable(microstructure_availability)


@pytest.mark.parametrize("feature", EXPECTED_FEATURES)
def test_feature_matches_reference(case, feature):
    assert_feature_close(case["ours"][feature], case["ref"][feature], f"{case['name']}:{feature}")


def test_frame_shape_matches_reference(case):
    assert list(case["ours"].columns) == list(case["ref"].columns)
    assert case["ours"].index.equals(case["bars"].index)


@pytest.fixture(scope="module")
def quote_frames(trades) -> tuple[pd.DataFrame, pd.DataFrame]:
    q_bars, q_trades, quotes = _quote_overlap(trades, load_binance_quotes())
    return (microstructure_features(q_bars, q_trades, quotes, **QUOTE_WINDOWS),
            reference_features(q_bars, q_trades, quotes, **QUOTE_WINDOWS))


@pytest.mark.parametrize("col", QUOTE_FEATURES)
def test_quote_spreads_match_reference(quote_frames, col):
    """ES, RS and PI on the ~4 minutes where trades and quotes overlap (10-second bars)."""
    ours, ref = quote_frames
    assert ref[col].notna().sum() >= 15
    assert_feature_close(ours[col], ref[col], col)


# --------------------------------------------------------------------------- availability

def _expected_status(kind: str, volume_unit: str, trade_count: bool) -> dict[str, str]:
    """The page's availability table for one input kind."""
    if kind == "trades":
        return dict.fromkeys(EXPECTED_FEATURES, "exact")
    dv = "exact" if volume_unit == "quote" else "approximate"
    status = dict.fromkeys(EXPECTED_FEATURES, "exact")
    for name in ("trade_count_imbalance", "kyle_lambda", "hasbrouck_lambda", "huang_stoll_spread",
                 "huang_stoll_adverse_share", "roll_spread_tick", "vwap_deviation",
                 "sign_autocorr"):
        status[name] = "unavailable"
    for name in ("amihud_lambda", "roll_impact", "amihud_illiquidity"):
        status[name] = dv
    for name in ("trade_intensity", "mean_trade_size"):
        status[name] = "exact" if trade_count else "unavailable"
    status["signed_volume_imbalance"] = "exact" if kind == "buy_volume" else "approximate"
    status["vpin"] = "approximate" if kind == "buy_volume" else "unavailable"
    return status


@pytest.mark.parametrize("kind, volume_unit, trade_count", [
    ("trades", "base", True),
    ("buy_volume", "quote", True),
    ("buy_volume", "base", False),
    ("bars", "quote", False),
    ("bars", "base", True),
])
def test_availability_table(kind, volume_unit, trade_count, ftx, bars, trades):
    if kind == "trades":
        frame = microstructure_features(bars, trades, volume_unit=volume_unit, **SMALL_VPIN)
    else:
        sample = _with_buy_volume(ftx.iloc[:300])
        keep = ["ts", "open", "high", "low", "close", "volume"]
        keep += ["buy_volume"] if kind == "buy_volume" else []
        keep += ["trade_count"] if trade_count else []
        frame = microstructure_features(sample[keep], volume_unit=volume_unit)
    table = frame.attrs["availability"]
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["feature", "status", "reason"]
    assert table["feature"].is_unique
    status = table.set_index("feature").loc[list(EXPECTED_FEATURES), "status"].to_dict()
    assert status == _expected_status(kind, volume_unit, trade_count)
    reasons = table["reason"]
    assert reasons.map(lambda r: isinstance(r, str) and r.strip() != "").all()
    for name, st in status.items():
        if st == "unavailable":
            assert frame[name].isna().all(), name


# --------------------------------------------------------------------------- causality

def _first_k(bars, trades, k):
    """The first k bars and the trades before the k-th bar's close."""
    head = bars.iloc[:k]
    if trades is None:
        return head, None
    return head, trades[trades["ts"] < head["ts"].iloc[-1] + MINUTE]


@pytest.mark.parametrize("source, ks", [
    ("ftx", (100, 1500, 3000, 20_000)),
    ("binance", (20, 61, 100)),
])
def test_causal_prefixes_are_bit_identical(source, ks, ftx, bars, trades):
    if source == "ftx":
        full_bars, full_trades, kwargs = ftx, None, dict(volume_unit="quote")
    else:
        full_bars, full_trades, kwargs = bars, trades, SMALL_VPIN
    full = microstructure_features(full_bars, full_trades, **kwargs)
    for k in ks:
        part = microstructure_features(*_first_k(full_bars, full_trades, k), **kwargs)
        for name in EXPECTED_FEATURES:
            assert np.array_equal(part[name].to_numpy(), full[name].to_numpy()[:k],
                                  equal_nan=True), (k, name)


# --------------------------------------------------------------------------- incremental state

def _stream(state: MicrostructureState, bars: pd.DataFrame, trades: pd.DataFrame | None):
    """Feed the bars one by one (with each bar's trades) and collect the returned features."""
    rows = []
    if trades is not None:
        bar_ns = pd.DatetimeIndex(bars["ts"]).as_unit("ns").asi8
        t_ns = pd.DatetimeIndex(trades["ts"]).as_unit("ns").asi8
        lo = np.searchsorted(t_ns, bar_ns, side="left")
        hi = np.searchsorted(t_ns, bar_ns + MINUTE.value, side="left")
    for i, bar in enumerate(bars.to_dict("records")):
        bar_trades = None if trades is None else trades.iloc[lo[i]:hi[i]]
        rows.append(state.update(bar, bar_trades))
    return pd.DataFrame(rows, columns=list(EXPECTED_FEATURES))


def test_state_matches_batch_on_binance_trades(bars, trades):
    state = MicrostructureState(volume_unit="base", interval=MINUTE, has_trades=True,
                                has_buy_volume=True, has_trade_count=True, **SMALL_VPIN)
    streamed = _stream(state, bars, trades)
    batch = microstructure_features(bars, trades, **SMALL_VPIN)
    for name in EXPECTED_FEATURES:
        assert_feature_close(streamed[name], batch[name], name)


def test_state_matches_batch_on_ftx_bars(ftx):
    state = MicrostructureState(volume_unit="quote", interval=MINUTE, has_trades=False,
                                has_buy_volume=False, has_trade_count=False)
    head = ftx.iloc[:STATE_FTX_BARS]
    streamed = _stream(state, head, None)
    batch = microstructure_features(head, volume_unit="quote")
    assert batch["vpin_bvc"].notna().any()  # 6,000 bars reach the 24 h VPIN-BVC windows
    for name in EXPECTED_FEATURES:
        assert_feature_close(streamed[name], batch[name], name)


# --------------------------------------------------------------------------- synthetic recovery

def _whole_sample(model) -> tuple[pd.Series, float]:
    """Our last row with windows covering every bar, and the mean trade price p̄ of that window."""
    bars, trades = model()
    frame = microstructure_features(bars, trades, trade_window=len(bars),
                                    regression_window=len(bars))
    return frame.iloc[-1], trades["price"].mean()


def test_roll_spread_recovered():
    last, pbar = _whole_sample(roll_model)
    assert last["roll_spread_tick"] * pbar == pytest.approx(1.0, rel=RECOVERY_RTOL)


def test_huang_stoll_recovered():
    last, pbar = _whole_sample(huang_stoll_model)
    assert last["huang_stoll_spread"] * pbar == pytest.approx(1.0, rel=RECOVERY_RTOL)
    assert last["huang_stoll_adverse_share"] == pytest.approx(0.4, rel=RECOVERY_RTOL)


def test_kyle_lambda_recovered():
    last, _ = _whole_sample(kyle_model)
    assert last["kyle_lambda"] == pytest.approx(2e-3, rel=RECOVERY_RTOL)
    bars, trades = kyle_model()
    per_window = microstructure_features(bars, trades)["kyle_lambda"]
    assert per_window.median() == pytest.approx(2e-3, rel=RECOVERY_RTOL)


# -------------------------------------------------------------------------- statsmodels, invariants

def test_kyle_lambda_matches_statsmodels_ols(bars, trades):
    """T3 = statsmodels OLS without constant of Δp_t on b_t·v_t over each window's trades."""
    import statsmodels.api as sm

    ours = microstructure_features(bars, trades, **SMALL_VPIN)["kyle_lambda"].to_numpy()
    y_all = trades["price"].diff()
    x_all = trades["side"] * trades["amount"]
    for tau in range(14, len(bars)):
        start = bars["ts"].iloc[tau - 14]
        end = bars["ts"].iloc[tau] + MINUTE
        rows = (trades["ts"] >= start) & (trades["ts"] < end) & y_all.notna()
        fit = sm.OLS(y_all[rows].to_numpy(), x_all[rows].to_numpy()).fit()
        np.testing.assert_allclose(ours[tau], fit.params[0], rtol=1e-9, err_msg=f"bar {tau}")


@pytest.mark.parametrize("source", ["ftx", "binance"])
def test_invariants(source, ftx, bars, trades):
    frame = (microstructure_features(ftx, volume_unit="quote") if source == "ftx"
             else microstructure_features(bars, trades, **SMALL_VPIN))
    for name, lo, hi in (("signed_volume_imbalance", -1, 1), ("trade_count_imbalance", -1, 1),
                         ("vpin", 0, 1), ("vpin_bvc", 0, 1)):
        values = frame[name].dropna()
        assert ((values >= lo) & (values <= hi)).all(), name
    spread = frame["corwin_schultz_spread"].dropna()
    assert len(spread) and ((spread >= 0) & (spread < 2)).all()


def test_flat_bars_have_zero_corwin_schultz_spread(ftx):
    flat = ftx.head(200).assign(high=100.0, low=100.0, open=100.0, close=100.0)
    spread = microstructure_features(flat, volume_unit="quote")["corwin_schultz_spread"]
    assert (spread.dropna() == 0).all() and spread.notna().sum() == 200 - 20


# --------------------------------------------------------------------------- the stored table

def test_feature_table_of_ftx_bars(ftx):
    stored, availability = feature_table(ftx, symbol="BTC-PERP", volume_unit="quote")
    assert list(stored.columns) == list(COLUMNS) == ["symbol", "ts", *FEATURES, *QUOTE_FEATURES]
    assert len(stored) == 45_031 and (stored["ts"].to_numpy() == ftx["ts"].to_numpy()).all()
    assert stored["symbol"].dtype == "string" and (stored["symbol"] == "BTC-PERP").all()
    direct = microstructure_features(ftx, volume_unit="quote")
    pd.testing.assert_frame_equal(stored[list(FEATURES)], direct[list(FEATURES)])
    assert stored[list(QUOTE_FEATURES)].isna().all().all()
    assert availability_counts(availability) == {"exact": 9, "approximate": 1, "unavailable": 11}
    assert stored["vpin"].isna().all() and stored["vpin_bvc"].notna().sum() > 40_000


def test_feature_table_of_trades_and_quotes(bars, trades):
    quotes = load_binance_quotes()
    stored, availability = feature_table(bars, trades, quotes, symbol="BTCUSDT")
    assert len(stored) == 126
    assert availability_counts(availability) == {"exact": 21, "approximate": 0, "unavailable": 0}
    assert stored["kyle_lambda"].notna().sum() > 100
    assert stored["effective_spread"].notna().any()  # quotes cover the first ~4 minutes
    # quotes count only with trades; an empty trade frame is no trades
    bars_only, _ = feature_table(bars, trades.iloc[:0], quotes, symbol="BTCUSDT")
    assert bars_only[list(QUOTE_FEATURES)].isna().all().all()
    assert bars_only["kyle_lambda"].isna().all()
    pd.testing.assert_frame_equal(bars_only, feature_table(bars, symbol="BTCUSDT")[0])


# --------------------------------------------------------------------------- numba vs Python twin

TWIN = """
import sys, numpy as np, pandas as pd
sys.path.insert(0, sys.argv[1])
from synthetic_microstructure import load_binance_trades, load_ftx_bars, trades_to_minute_bars
from bot4_dagster.features.microstructure import microstructure_features
from bot4_dagster.kernels import NUMBA_ENABLED
trades = load_binance_trades()
a = microstructure_features(trades_to_minute_bars(trades), trades, vpin_volume_window=30,
                           bvc_sigma_window=30, vpin_buckets=10)
b = microstructure_features(load_ftx_bars().head(3000), volume_unit="quote")
np.save(sys.argv[2], np.vstack([a.to_numpy(), b.to_numpy()]))
print(NUMBA_ENABLED)
"""


def test_compiled_kernel_equals_its_python_twin(tmp_path):
    """The same script with numba on and with BOT4_DISABLE_NUMBA=1 (the plain-Python twins)."""
    import os
    import subprocess

    results = {}
    for flag in ("0", "1"):
        out = tmp_path / f"twin{flag}.npy"
        env = {**os.environ, "BOT4_DISABLE_NUMBA": flag}
        done = subprocess.run([sys.executable, "-c", TWIN, str(Path(__file__).parent), str(out)],
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == ("False" if flag == "1" else "True")
        results[flag] = np.load(out)
    compiled, python = results["0"], results["1"]
    np.testing.assert_array_equal(np.isnan(compiled), np.isnan(python))
    np.testing.assert_allclose(compiled, python, rtol=1e-12, atol=0)
