"""Plots stay small and honest: every PNG well under 100 KB on 20 years of daily bars and on the
45,000 FTX one-minute bars, the min/max envelope keeps every bucket's extremes, and the markdown
embeds the bytes unchanged."""

from __future__ import annotations

import base64
import itertools
import struct

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500
from synthetic_microstructure import load_binance_trades, load_ftx_bars

from bot4_dagster.features.table import feature_table
from bot4_dagster.kernels.bars import trades_to_bars
from bot4_dagster.ml.folds import fold_splitters, role_matrices
from bot4_dagster.ml.labels import label_table
from bot4_dagster.ml.volatility import estimate_volatility
from bot4_dagster.report import (
    DPI,
    MAX_POINTS,
    WIDTH,
    envelope,
    markdown_image,
    microstructure_columns,
    plot_folds,
    plot_microstructure,
    plot_volatility,
)

LIMIT = 60_000  # bytes: "well under 100 KB"


def sp500_bars() -> pd.DataFrame:
    raw = sp500.load()  # 5,031 daily bars, 1999-01-04 .. 2018-12-31
    return pd.DataFrame({"ts": pd.DatetimeIndex(raw.index).tz_localize("UTC"),
                         "open": raw["Open"].to_numpy(), "high": raw["High"].to_numpy(),
                         "low": raw["Low"].to_numpy(), "close": raw["Close"].to_numpy(),
                         "volume": raw["Volume"].to_numpy(np.float64)})


@pytest.fixture(scope="module", params=["sp500_20y_daily", "ftx_45k_minutes"])
def plots(request) -> dict[str, bytes]:
    bars, unit = ((sp500_bars(), "base") if request.param == "sp500_20y_daily" else
                  (load_ftx_bars(), "quote"))
    assert len(bars) in (5031, 45031)
    features, _ = feature_table(bars, symbol="X", volume_unit=unit)
    estimate = estimate_volatility(bars.set_index("ts")["close"])
    frame = estimate.frame()
    labels = label_table(bars, estimate.table("X"), symbol="X", upper=2.0, lower=2.0, horizon=10)
    return {
        "features": plot_microstructure(features["ts"], features, "X"),
        "volatility": plot_volatility(frame.index.to_series(), frame["ret"], frame["sigma"],
                                      frame["regime"], "X: GARCH"),
        "folds": plot_folds(list(role_matrices(fold_splitters(labels)).items()), "X: folds"),
    }


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("name", ["features", "volatility", "folds"])
def test_plots_are_small(plots, name):
    png = plots[name]
    assert 5_000 < len(png) < LIMIT  # a real picture, yet far from 100 KB
    width, _ = png_size(png)
    assert width == round(WIDTH * DPI)


def test_markdown_image_round_trips():
    png = plot_folds([("cpcv", np.array([[0, 1, 2, 3], [1, 0, 0, 3]]))], "tiny")
    text = markdown_image(png, "folds")
    assert text.startswith("![folds](data:image/png;base64,") and text.endswith(")")
    assert base64.b64decode(text[len("![folds](data:image/png;base64,"):-1]) == png


def test_envelope_keeps_every_buckets_extremes():
    close = load_ftx_bars()["close"].to_numpy()
    returns = np.diff(close) / close[:-1]
    x = np.arange(len(returns))
    tx, ty = envelope(x, returns)
    assert len(ty) <= MAX_POINTS and (np.diff(tx) > 0).all()
    assert ty.max() == returns.max() and ty.min() == returns.min()
    edges = np.linspace(0, len(returns), MAX_POINTS // 2 + 1).astype(int)
    for lo, hi in itertools.pairwise(edges):
        inside = (tx >= lo) & (tx < hi)
        assert ty[inside].max() == returns[lo:hi].max() and ty[inside].min() == returns[lo:hi].min()
    np.testing.assert_array_equal(ty, returns[tx])  # points are taken, never invented


def test_envelope_keeps_a_single_spike_and_gaps():
    y = np.zeros(100_000)
    y[54_321] = 7.0
    y[10_000:10_500] = np.nan
    tx, ty = envelope(np.arange(len(y)), y, max_points=500)
    assert len(ty) <= 500 and 54_321 in tx and np.nanmax(ty) == 7.0
    assert np.isnan(ty).any()  # an all-NaN stretch stays a gap in the line
    short = np.arange(10.0)
    for got, want in zip(envelope(short, short), (short, short), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="max_points must be at least 2"):
        envelope(short, short, max_points=1)


def test_the_features_plot_prefers_the_exact_measures():
    ftx, _ = feature_table(load_ftx_bars().iloc[:3000], symbol="BTC-PERP", volume_unit="quote")
    assert microstructure_columns(ftx) == ("vpin_bvc", "kyle_lambda_bar")  # bars only
    trades = load_binance_trades()
    b = trades_to_bars(pd.DatetimeIndex(trades["ts"]).asi8, trades["price"].to_numpy(),
                       trades["amount"].to_numpy(), trades["side"].to_numpy(), 60_000_000_000)
    bars = pd.DataFrame({"ts": pd.to_datetime(b["ts"], unit="ns", utc=True), "open": b["open"],
                         "high": b["high"], "low": b["low"], "close": b["close"],
                         "volume": b["volume"]})
    exact, _ = feature_table(bars, trades, symbol="BTCUSDT", vpin_volume_window=20)
    assert exact["vpin"].notna().any()
    assert microstructure_columns(exact) == ("vpin", "kyle_lambda")
