"""Triple-barrier labels, average uniqueness and meta-labels (bot4_dagster.ml.labels and
bot4_dagster.kernels.labels), against independent transcriptions written here:

- triple barrier (AFML 3.2 on closes): for each event with a full horizon and a usable σ, scan
  the return path c_j / c_i − 1 over the next ``horizon`` bars for the first bar at or beyond a
  horizontal barrier (a return exactly on the barrier counts as touched);
- average uniqueness (AFML 4.1–4.2): concurrency per bar counted label by label over each label's
  return span (bars after t0 up to and including t1), then the mean of 1 / concurrency over the
  span.

Real data: the S&P 500 adjusted closes shipped with ``arch`` and the FTX BTC-PERP 1-minute
closes in ../shared/data, each with a 20-bar rolling standard deviation of returns as σ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4_dagster.kernels import labels as kl
from bot4_dagster.kernels._jit import NUMBA_ENABLED
from bot4_dagster.ml.labels import (
    label_counts,
    label_table,
    meta_labels,
    next_bar_sigma,
    triple_barrier_labels,
)
from bot4_dagster.ml.volatility import estimate_volatility

FTX = Path(__file__).resolve().parents[2] / "shared" / "data" / "ftx_btc-perp_1m_2022-01.csv.gz"
COLUMNS = ["t1", "label", "ret", "barrier", "sigma", "weight", "i0", "i1"]


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def with_sigma(close: pd.Series) -> tuple[pd.Series, pd.Series]:
    return close, close.pct_change().rolling(20).std()


@pytest.fixture(scope="module")
def spx() -> tuple[pd.Series, pd.Series]:
    return with_sigma(sp500.load()["Adj Close"])


@pytest.fixture(scope="module")
def ftx() -> tuple[pd.Series, pd.Series]:
    bars = pd.read_csv(FTX, parse_dates=["timestamp"], index_col="timestamp")
    return with_sigma(bars["close"])


# --------------------------------------------------------------------------------------------
# the independent transcriptions
# --------------------------------------------------------------------------------------------


def reference_labels(close: pd.Series, sigma: pd.Series, upper: float, lower: float,
                     horizon: int) -> pd.DataFrame:
    """Loop over events, scan each path. Events: a full horizon ahead and σ finite and > 0."""
    prices, widths, times = close.to_numpy(), sigma.to_numpy(), close.index
    starts, ends, labels, rets, barriers = [], [], [], [], []
    for i in range(len(prices) - horizon):
        width = widths[i]
        if not (np.isfinite(width) and width > 0):
            continue
        path = prices[i + 1:i + horizon + 1] / prices[i] - 1.0
        ups = np.flatnonzero(path >= upper * width) if upper > 0 else []
        downs = np.flatnonzero(path <= -lower * width) if lower > 0 else []
        first_up = ups[0] if len(ups) else horizon
        first_down = downs[0] if len(downs) else horizon
        if first_up < first_down:
            step, label, barrier = first_up, 1, "upper"
        elif first_down < first_up:
            step, label, barrier = first_down, -1, "lower"
        else:  # neither within the horizon (they cannot tie: +barrier > 0 > −barrier)
            step, label, barrier = horizon - 1, 0, "vertical"
        starts.append(i)
        ends.append(i + 1 + int(step))
        labels.append(label)
        rets.append(path[step])
        barriers.append(barrier)
    starts, ends = np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)
    return pd.DataFrame({"t1": times[ends], "label": labels, "ret": np.array(rets, float),
                         "barrier": barriers, "sigma": widths[starts], "i0": starts,
                         "i1": ends}, index=times[starts])


def afml_average_uniqueness(bars: pd.Index, t1: pd.Series) -> pd.Series:
    """AFML 4.1 (mpNumCoEvents) and 4.2 (mpSampleTW), label by label. A label's return span is
    the bars strictly after t0 up to and including t1."""
    first = bars.get_indexer(t1.index) + 1
    last = bars.get_indexer(t1.to_numpy())
    assert (first > 0).all() and (last >= first).all()
    concurrency = np.zeros(len(bars))
    for a, b in zip(first, last, strict=True):  # 4.1: count.loc[tIn:tOut] += 1
        concurrency[a:b + 1] += 1
    concurrency = pd.Series(concurrency, index=bars)
    inverse = (1.0 / concurrency).to_numpy()  # inf where no label: never inside a span
    # 4.2: (1 / c[tIn:tOut])
    weights = [inverse[a:b + 1].mean() for a, b in zip(first, last, strict=True)]
    return pd.Series(weights, index=t1.index)


def assert_matches_reference(events: pd.DataFrame, close, sigma, upper, lower, horizon) -> None:
    expected = reference_labels(close, sigma, upper, lower, horizon)
    assert list(events.columns) == COLUMNS
    assert events.index.name == "t0"
    pd.testing.assert_index_equal(events.index, expected.index, check_names=False)
    np.testing.assert_array_equal(events["t1"].to_numpy(), expected["t1"].to_numpy())
    np.testing.assert_array_equal(events["label"].to_numpy(), expected["label"].to_numpy())
    np.testing.assert_array_equal(events["barrier"].astype(str).to_numpy(),
                                  expected["barrier"].to_numpy())
    np.testing.assert_array_equal(events["ret"].to_numpy(), expected["ret"].to_numpy())  # exact
    np.testing.assert_array_equal(events["sigma"].to_numpy(), expected["sigma"].to_numpy())
    np.testing.assert_array_equal(events["i0"].to_numpy(), expected["i0"].to_numpy())
    np.testing.assert_array_equal(events["i1"].to_numpy(), expected["i1"].to_numpy())
    assert events["label"].dtype == np.int8
    assert list(events["barrier"].cat.categories) == ["upper", "lower", "vertical"]
    # a touched barrier really is at or beyond the barrier; the vertical one is inside both
    ret, width, label = events["ret"], events["sigma"], events["label"]
    assert (ret[label == 1] >= upper * width[label == 1]).all()
    assert (ret[label == -1] <= -lower * width[label == -1]).all()
    if upper == 0:
        assert (label != 1).all()
    if lower == 0:
        assert (label != -1).all()
    vertical = label == 0
    assert ((events["i1"] - events["i0"])[vertical] == horizon).all()
    assert (events["i1"] - events["i0"]).between(1, horizon).all()


# --------------------------------------------------------------------------------------------
# triple barrier on real data
# --------------------------------------------------------------------------------------------

CONFIGS = [  # (upper, lower, horizon): symmetric, asymmetric both ways, one barrier switched off
    (2.0, 2.0, 10), (1.0, 3.0, 20), (2.5, 0.5, 15), (0.0, 1.5, 15), (2.0, 0.0, 5), (1.0, 1.0, 1),
]


@pytest.mark.parametrize("upper,lower,horizon", CONFIGS)
def test_triple_barrier_matches_reference_sp500(spx, upper, lower, horizon) -> None:
    close, sigma = spx
    events = triple_barrier_labels(close, sigma, upper=upper, lower=lower, horizon=horizon)
    assert_matches_reference(events, close, sigma, upper, lower, horizon)
    # events start where σ is first finite (20 returns) and stop a full horizon before the end
    assert events["i0"].iloc[0] == 20 and events["i0"].iloc[-1] == len(close) - 1 - horizon
    assert len(events) == len(close) - 20 - horizon
    expected_weight = afml_average_uniqueness(close.index, events["t1"])
    np.testing.assert_allclose(events["weight"].to_numpy(), expected_weight.to_numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("upper,lower,horizon",
                         [(2.0, 2.0, 30), (0.5, 2.0, 60), (3.0, 0.0, 20), (0.0, 1.0, 10)])
def test_triple_barrier_matches_reference_ftx(ftx, upper, lower, horizon) -> None:
    close, sigma = ftx
    events = triple_barrier_labels(close, sigma, upper=upper, lower=lower, horizon=horizon)
    assert_matches_reference(events, close, sigma, upper, lower, horizon)
    assert len(events) == len(close) - 20 - horizon  # σ is never 0 on this data
    expected_weight = afml_average_uniqueness(close.index, events["t1"])
    np.testing.assert_allclose(events["weight"].to_numpy(), expected_weight.to_numpy(),
                               rtol=1e-10, atol=1e-12)


def test_events_need_full_horizon_and_usable_sigma(spx) -> None:
    close, sigma = spx
    sigma = sigma.copy()
    holes = [100, 101, 2500, 4000]
    sigma.iloc[holes[0]] = np.nan
    sigma.iloc[holes[1]] = np.inf
    sigma.iloc[holes[2]] = 0.0  # a zero width is no usable forecast either
    sigma.iloc[holes[3]] = -0.01
    horizon = 12
    events = triple_barrier_labels(close, sigma, upper=1.5, lower=1.5, horizon=horizon)
    usable = np.isfinite(sigma.to_numpy()) & (sigma.to_numpy() > 0)
    usable[len(close) - horizon:] = False  # no full horizon
    np.testing.assert_array_equal(events["i0"].to_numpy(), np.flatnonzero(usable))
    assert_matches_reference(events, close, sigma, 1.5, 1.5, horizon)
    # paths still run through the bars whose own σ is missing
    assert ((events["i0"] < 100) & (events["i1"] > 101)).any()
    # no event at all when the horizon is the whole series
    empty = triple_barrier_labels(close.iloc[:30], sigma.iloc[:30], horizon=30)
    assert len(empty) == 0 and list(empty.columns) == COLUMNS


def test_switching_a_barrier_off_only_removes_its_touches(ftx) -> None:
    close, sigma = ftx
    both = triple_barrier_labels(close, sigma, upper=2.0, lower=2.0, horizon=30)
    no_upper = triple_barrier_labels(close, sigma, upper=0.0, lower=2.0, horizon=30)
    no_lower = triple_barrier_labels(close, sigma, upper=2.0, lower=0.0, horizon=30)
    # where the lower barrier came first it still comes first without the upper one
    lower_first = both["label"] == -1
    pd.testing.assert_frame_equal(no_upper[lower_first], both[lower_first].assign(
        weight=no_upper["weight"][lower_first]))
    upper_first = both["label"] == 1
    pd.testing.assert_frame_equal(no_lower[upper_first], both[upper_first].assign(
        weight=no_lower["weight"][upper_first]))
    # labels whose barrier is switched off end elsewhere, never earlier
    assert (no_upper["label"][upper_first] != 1).all()
    assert (no_upper["i1"][upper_first] >= both["i1"][upper_first]).all()
    assert (no_lower["label"][lower_first] != -1).all()
    assert (no_lower["i1"][lower_first] >= both["i1"][lower_first]).all()


def test_a_return_exactly_on_the_barrier_counts_as_touched() -> None:
    """Exact binary fractions: 80 / 64 − 1 = 0.25 = 2 · 0.125, 48 / 64 − 1 = −0.25."""
    times = pd.date_range("2024-01-01", periods=4, freq="D")
    sigma = pd.Series(0.125, index=times)
    cases = {  # closes -> label, t1 position of the event at bar 0 (horizon 3)
        (64.0, 70.0, 80.0, 64.0): (1, 2),
        (64.0, 60.0, 48.0, 64.0): (-1, 2),
        (64.0, 79.99, 48.01, 64.0): (0, 3),  # just inside both barriers
        (64.0, 64.0, 64.0, 80.0): (1, 3),  # a touch on the vertical bar is a touch
    }
    for prices, (label, end) in cases.items():
        close = pd.Series(prices, index=times)
        events = triple_barrier_labels(close, sigma, upper=2.0, lower=2.0, horizon=3)
        assert len(events) == 1
        assert (events["label"].iloc[0], events["i1"].iloc[0]) == (label, end)
        assert events["t1"].iloc[0] == times[end]
        assert_matches_reference(events, close, sigma, 2.0, 2.0, 3)
    # asymmetric: 0.25 is exactly 1 · 0.25 too
    close = pd.Series([64.0, 48.0, 80.0, 64.0], index=times)
    events = triple_barrier_labels(close, sigma * 2, upper=1.0, lower=3.0, horizon=3)
    assert (events["label"].iloc[0], events["i1"].iloc[0]) == (1, 2)


def test_ties_on_real_prices(ftx) -> None:
    """σ_i = |c_{i+3} / c_i − 1| / 2 with factors 2: both barriers sit exactly on the 3-bar
    return, so every event whose path does not cross a barrier earlier ends exactly on bar i+3
    with ret == ±barrier."""
    close, _ = ftx
    close = close.iloc[:6000]
    prices = close.to_numpy()
    r3 = np.full(len(prices), np.nan)
    r3[:-3] = prices[3:] / prices[:-3] - 1.0
    sigma = pd.Series(np.abs(r3) / 2.0, index=close.index)
    sigma[sigma == 0] = np.nan
    events = triple_barrier_labels(close, sigma, upper=2.0, lower=2.0, horizon=10)
    assert_matches_reference(events, close, sigma, 2.0, 2.0, 10)
    on_barrier = events["ret"].abs() == 2.0 * events["sigma"]
    assert on_barrier.sum() > 1000
    assert (events["label"][on_barrier] != 0).all()
    assert ((events["i1"] - events["i0"]) <= 3).all()  # nothing goes past the tied bar


# --------------------------------------------------------------------------------------------
# average uniqueness
# --------------------------------------------------------------------------------------------


def uniqueness(start, end, n_bars) -> tuple[np.ndarray, np.ndarray]:
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    compiled, twin = np.empty(len(start)), np.empty(len(start))
    kl.average_uniqueness(start, end, n_bars, compiled)
    kl.average_uniqueness_python(start, end, n_bars, twin)
    np.testing.assert_array_equal(compiled, twin)
    bars = pd.RangeIndex(n_bars)
    afml = afml_average_uniqueness(bars, pd.Series(end, index=start))
    np.testing.assert_allclose(compiled, afml.to_numpy(), rtol=1e-12)  # prefix-sum rounding
    return compiled, afml.to_numpy()


def test_uniqueness_sanity_facts() -> None:
    # non-overlapping return spans (1..3, 4..7, 8..9: touching t1 = next t0 is no overlap)
    weight, _ = uniqueness([0, 3, 7], [3, 7, 9], 10)
    np.testing.assert_array_equal(weight, [1.0, 1.0, 1.0])
    # c identical labels share weight 1/c
    for c in (2, 3, 4, 7):
        weight, _ = uniqueness([2] * c, [6] * c, 10)
        np.testing.assert_allclose(weight, 1.0 / c, rtol=1e-15)
    weight, _ = uniqueness([0, 0, 0, 10], [4, 4, 4, 12], 13)
    np.testing.assert_allclose(weight, [1 / 3, 1 / 3, 1 / 3, 1.0], rtol=1e-15)
    # partial overlap by hand: spans 1..2 and 2..3, concurrency 1, 2, 1
    weight, _ = uniqueness([0, 1], [2, 3], 4)
    np.testing.assert_allclose(weight, [0.75, 0.75], rtol=1e-15)
    # nested: span 1..4 holds span 2..2 -> concurrency 1, 2, 1, 1
    weight, _ = uniqueness([0, 1], [4, 2], 5)
    np.testing.assert_allclose(weight, [3.5 / 4, 0.5], rtol=1e-15)


def test_one_bar_labels_are_fully_unique(spx) -> None:
    close, sigma = spx
    events = triple_barrier_labels(close, sigma, upper=1.0, lower=1.0, horizon=1)
    assert (events["weight"] == 1.0).all()
    events = triple_barrier_labels(close, sigma, upper=1.0, lower=1.0, horizon=20)
    # at most 20 labels share a bar; prefix sums leave ~1e-13 of rounding either way
    assert events["weight"].between(1 / 20 - 1e-12, 1.0 + 1e-12).all()
    assert events["weight"].lt(1.0).any()


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_bars=st.integers(2, 200),
       n_labels=st.integers(1, 60), max_len=st.integers(1, 40))
def test_uniqueness_random_labels(seed, n_bars, n_labels, max_len) -> None:
    rng = np.random.default_rng(seed)
    start = np.sort(rng.integers(0, n_bars - 1, n_labels))
    end = np.minimum(start + rng.integers(1, max_len + 1, n_labels), n_bars - 1)
    weight, _ = uniqueness(start, end, n_bars)
    assert ((weight > 0) & (weight <= 1.0 + 1e-12)).all()  # prefix sums: ~1e-13 over 1


# --------------------------------------------------------------------------------------------
# meta-labels
# --------------------------------------------------------------------------------------------


def test_meta_labels(spx) -> None:
    close, sigma = spx
    events = triple_barrier_labels(close, sigma, upper=1.0, lower=2.0, horizon=10)
    rng = np.random.default_rng(3)
    side = pd.Series(rng.choice([-1.0, 1.0], len(events)), index=events.index)
    meta = meta_labels(events, side)
    assert isinstance(meta, pd.Series) and meta.dtype == np.int8
    pd.testing.assert_index_equal(meta.index, events.index)
    for t0, value in meta.sample(300, random_state=1).items():
        ret = events.at[t0, "ret"]
        assert value == (1 if side[t0] * ret > 0 else 0)
    # long-only side: meta-label 1 exactly where the first barrier paid (ret > 0)
    ones = pd.Series(1, index=events.index)
    np.testing.assert_array_equal(meta_labels(events, ones), (events["ret"] > 0).astype(int))
    np.testing.assert_array_equal(meta_labels(events, -ones), (events["ret"] < 0).astype(int))
    # side is aligned by time, extra entries ignored, order irrelevant
    wide = pd.concat([side, pd.Series([1.0], index=[pd.Timestamp("1990-01-01")])])
    pd.testing.assert_series_equal(meta_labels(events, wide.sample(frac=1, random_state=0)), meta)
    # a zero return pays neither side
    flat = events.iloc[:3].assign(ret=0.0)
    assert (meta_labels(flat, side) == 0).all() and (meta_labels(flat, -side) == 0).all()
    with pytest.raises(ValueError, match="no value"):
        meta_labels(events, side.iloc[1:])


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------


def test_bad_inputs_are_rejected(spx) -> None:
    close, sigma = spx
    close, sigma = close.iloc[:200], sigma.iloc[:200]
    with pytest.raises(ValueError, match="same index"):
        triple_barrier_labels(close, sigma.iloc[1:])
    with pytest.raises(ValueError, match="same index"):
        triple_barrier_labels(close, sigma.set_axis(sigma.index + pd.Timedelta("1h")))
    with pytest.raises(ValueError, match="sorted"):
        triple_barrier_labels(close.iloc[::-1], sigma.iloc[::-1])
    for horizon in (0, -3):
        with pytest.raises(ValueError, match="horizon"):
            triple_barrier_labels(close, sigma, horizon=horizon)
    with pytest.raises(ValueError, match="not both 0"):
        triple_barrier_labels(close, sigma, upper=0.0, lower=0.0)
    for upper, lower in ((-1.0, 2.0), (2.0, -0.5)):
        with pytest.raises(ValueError, match=">= 0"):
            triple_barrier_labels(close, sigma, upper=upper, lower=lower)
    for bad in (0.0, -5.0, np.nan, np.inf):
        broken = close.copy()
        broken.iloc[50] = bad
        with pytest.raises(ValueError, match="finite and positive"):
            triple_barrier_labels(broken, sigma)


# --------------------------------------------------------------------------------------------
# compiled kernels against their Python twins
# --------------------------------------------------------------------------------------------


def run_barrier(fn, close: np.ndarray, width: np.ndarray, upper, lower, horizon):
    end = np.full(len(close), -7, dtype=np.int64)
    touched = np.full(len(close), 9, dtype=np.int8)
    fn(close, width, upper, lower, horizon, end, touched)
    return end, touched


def assert_twins_agree(close: np.ndarray, width: np.ndarray, upper, lower, horizon) -> None:
    end, touched = run_barrier(kl.triple_barrier, close, width, upper, lower, horizon)
    end_py, touched_py = run_barrier(kl.triple_barrier_python, close, width, upper, lower,
                                     horizon)
    np.testing.assert_array_equal(end, end_py)
    np.testing.assert_array_equal(touched, touched_py)
    events = np.flatnonzero(end >= 0)
    assert (touched[end < 0] == kl.VERTICAL).all()
    weight, weight_py = np.empty(len(events)), np.empty(len(events))
    kl.average_uniqueness(events, end[events], len(close), weight)
    kl.average_uniqueness_python(events, end[events], len(close), weight_py)
    np.testing.assert_array_equal(weight, weight_py)


def test_kernels_are_compiled_twins() -> None:
    assert NUMBA_ENABLED  # as in test_kernels: this suite runs with numba on
    assert kl.triple_barrier is not kl.triple_barrier_python
    assert kl.triple_barrier.py_func is kl.triple_barrier_python
    assert kl.average_uniqueness.py_func is kl.average_uniqueness_python


@pytest.mark.parametrize("upper,lower,horizon", [(2.0, 2.0, 10), (0.0, 1.0, 25), (3.0, 0.0, 7)])
def test_kernels_match_twins_on_real_data(spx, ftx, upper, lower, horizon) -> None:
    for close, sigma in (spx, ftx):
        close, sigma = close.iloc[:8000], sigma.iloc[:8000]
        assert_twins_agree(close.to_numpy(np.float64), sigma.to_numpy(np.float64), upper,
                           lower, horizon)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120), horizon=st.integers(1, 30),
       upper=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7]),
       lower=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7]),
       holes=st.sampled_from([0.0, 0.1, 0.5]))
def test_kernels_and_labels_on_random_paths(seed, n, horizon, upper, lower, holes) -> None:
    if upper == lower == 0.0:
        lower = 1.0
    rng = np.random.default_rng(seed)
    # prices on a coarse grid, so paths revisit levels and returns often repeat exactly
    close = 100.0 + np.cumsum(rng.choice([-1.0, 0.0, 1.0], n))
    close = close - min(close.min(), 1.0) + 1.0
    width = rng.choice([0.005, 0.01, 0.02, 0.04], n)
    mask = rng.random(n) < holes
    width[mask] = rng.choice([np.nan, 0.0, np.inf, -0.01], mask.sum())
    assert_twins_agree(close, width, upper, lower, horizon)
    times = pd.date_range("2024-01-01", periods=n, freq="min")
    close_s, sigma_s = pd.Series(close, index=times), pd.Series(width, index=times)
    events = triple_barrier_labels(close_s, sigma_s, upper=upper, lower=lower, horizon=horizon)
    assert_matches_reference(events, close_s, sigma_s, upper, lower, horizon)
    if len(events):
        expected = afml_average_uniqueness(times, events["t1"])
        np.testing.assert_allclose(events["weight"].to_numpy(), expected.to_numpy(), rtol=1e-13)


# --------------------------------------------------------------------------- the stored stage


def garch_frame(close: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars and the stored ml.garch_volatility frame of ``close`` (UTC times)."""
    close = close.copy()
    close.index = pd.DatetimeIndex(pd.to_datetime(close.index, utc=True)).rename("ts")
    bars = close.rename("close").reset_index()
    return bars, estimate_volatility(close).table("X")


def test_next_bar_sigma_is_the_next_bars_forecast_as_a_decimal_return(ftx):
    bars, volatility = garch_frame(ftx[0].iloc[:3000])
    sigma = next_bar_sigma(pd.Index(bars["ts"]), volatility)
    assert sigma.index.equals(pd.Index(bars["ts"]))
    scale = volatility["scale"].iloc[0]
    decimal = (volatility["sigma"] / scale).to_numpy()
    np.testing.assert_array_equal(sigma.to_numpy()[:-1], decimal[1:])
    assert np.isnan(sigma.iloc[-1])  # the last bar has no next bar
    assert 1e-4 < sigma.median() < 1e-2  # one-minute BTC: a few basis points


def test_label_table_is_the_triple_barrier_events(ftx):
    bars, volatility = garch_frame(ftx[0].iloc[:3000])
    stored = label_table(bars, volatility, symbol="BTC-PERP", upper=2.0, lower=1.5, horizon=10)
    close = bars.set_index("ts")["close"]
    events = triple_barrier_labels(close, next_bar_sigma(close.index, volatility), upper=2.0,
                                   lower=1.5, horizon=10)
    assert list(stored.columns) == ["symbol", "t0", "t1", "label", "ret", "barrier", "sigma",
                                    "weight"]
    assert len(stored) == len(events) == 3000 - 10
    assert (stored["t0"].to_numpy() == events.index.to_numpy()).all()
    for column in ("t1", "label", "ret", "sigma", "weight"):
        np.testing.assert_array_equal(stored[column].to_numpy(), events[column].to_numpy())
    assert (stored["barrier"].to_numpy() == events["barrier"].astype(str).to_numpy()).all()
    assert stored["barrier"].dtype == "string" and stored["label"].dtype == np.int8
    counts = label_counts(stored)
    assert list(counts["label"]) == ["-1 (lower)", "0 (vertical)", "+1 (upper)"]
    assert counts["events"].tolist() == [int((stored["label"] == v).sum()) for v in (-1, 0, 1)]
