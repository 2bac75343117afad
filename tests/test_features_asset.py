"""``features/microstructure_features`` in Dagster: real files ingested, then the features per
symbol, with the availability table, summary and plot in the metadata."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import FTX, QUOTES, TRADES
from pipeline import failure_of, materialize, metadata_of

from bot4_dagster.assets.keys import BARS
from bot4_dagster.assets.keys import FEATURES as FEATURE_KEY
from bot4_dagster.assets.keys import QUOTES as QUOTE_KEY
from bot4_dagster.assets.keys import TRADES as TRADE_KEY
from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.features.microstructure import FEATURES, QUOTE_FEATURES
from bot4_dagster.resources import MarketDataResource


def binance_klines_of(trades_file) -> bytes:
    """A Binance 1-minute kline CSV (base volume, taker buy volume, trade count) built from the
    trades of a Tardis file, as Binance itself would aggregate them."""
    raw = pd.read_csv(trades_file, float_precision="round_trip")
    raw["ts"] = pd.to_datetime(raw["timestamp"], unit="us", utc=True)
    raw["buy"] = np.where(raw["side"] == "buy", raw["amount"], 0.0)
    raw["dollars"] = raw["price"] * raw["amount"]
    g = raw.set_index("ts").resample("1min")
    bars = pd.DataFrame({"open": g["price"].first(), "high": g["price"].max(),
                         "low": g["price"].min(), "close": g["price"].last(),
                         "volume": g["amount"].sum(), "quote_volume": g["dollars"].sum(),
                         "count": g["price"].count(), "buy": g["buy"].sum()}).dropna()
    open_ms = bars.index.astype("datetime64[ms, UTC]").astype("int64")
    klines = pd.DataFrame({
        "open_time": open_ms, "open": bars["open"], "high": bars["high"], "low": bars["low"],
        "close": bars["close"], "volume": bars["volume"], "close_time": open_ms + 59_999,
        "quote_volume": bars["quote_volume"], "count": bars["count"].astype("int64"),
        "taker_buy_volume": bars["buy"], "taker_buy_quote_volume": bars["buy"] * bars["close"],
        "ignore": 0})
    return klines.to_csv(header=False, index=False).encode()


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "exports"
    path.mkdir()
    for file in (FTX, TRADES, QUOTES):
        (path / file.name).symlink_to(file)
    (path / "BTCUSDT-1m-2020-02-22.csv").write_bytes(binance_klines_of(TRADES))
    return path


def features_of(folder, tmp_path, instance, symbol):
    source = MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP",
                                volume_unit="quote")
    defs = build_definitions(source, str(tmp_path / "w.duckdb"))
    ingest = [BARS, TRADE_KEY, QUOTE_KEY] if symbol == "BTCUSDT" else [BARS]
    assert materialize(defs, instance, symbol, *ingest).success
    return materialize(defs, instance, symbol, FEATURE_KEY)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SYMBOLS.name, ["BTC-PERP", "BTCUSDT"])
        yield inst


def stored(tmp_path, symbol) -> pd.DataFrame:
    return Warehouse(tmp_path / "w.duckdb").read(
        Slice("features.microstructure_features", {"symbol": [symbol]}))


def test_ftx_bars_give_the_bar_features_and_say_what_is_missing(folder, tmp_path, instance):
    result = features_of(folder, tmp_path, instance, "BTC-PERP")
    assert result.success
    frame = stored(tmp_path, "BTC-PERP")
    assert len(frame) == 45_031
    assert list(frame.columns) == ["symbol", "ts", *FEATURES, *QUOTE_FEATURES]
    metadata = metadata_of(result, FEATURE_KEY)
    assert metadata["volume_unit"].value == "quote"  # read back from the bars' materialization
    assert (metadata["exact"].value, metadata["approximate"].value,
            metadata["unavailable"].value) == (9, 1, 11)
    availability = {r.data["feature"]: r.data for r in metadata["availability"].value.records}
    assert "bulk volume classification" in availability["signed_volume_imbalance"]["reason"]
    assert metadata["plot"].value.startswith("![VPIN and Kyle lambda](data:image/png;base64,")
    summary = {r.data["feature"] for r in metadata["summary"].value.records}
    assert "corwin_schultz_spread" in summary
    assert frame["vpin"].isna().all() and frame["vpin_bvc"].notna().sum() > 40_000


def test_trades_and_quotes_make_every_feature_exact(folder, tmp_path, instance):
    result = features_of(folder, tmp_path, instance, "BTCUSDT")
    assert result.success
    metadata = metadata_of(result, FEATURE_KEY)
    assert (metadata["exact"].value, metadata["approximate"].value,
            metadata["unavailable"].value) == (21, 0, 0)
    assert metadata["volume_unit"].value == "base"
    frame = stored(tmp_path, "BTCUSDT")
    assert len(frame) == 126
    assert frame["kyle_lambda"].notna().sum() > 100
    assert frame["effective_spread"].notna().any()  # quotes cover the first ~4 minutes


def test_a_symbol_without_bars_fails_clearly(folder, tmp_path, instance):
    source = MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP")
    defs = build_definitions(source, str(tmp_path / "w.duckdb"))
    result = materialize(defs, instance, "BTCUSDT", FEATURE_KEY)
    assert not result.success
    assert "no microstructure features for BTCUSDT: 0 bars" in failure_of(result).description
