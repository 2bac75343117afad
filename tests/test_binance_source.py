"""The ``binance`` source end to end: Dagster runs that download from a loopback copy of Binance's
archive (zips built from ../shared/data), verify checksums, validate and store - or refuse."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from archive_builders import build_tree, ftx_bars, tardis_trades
from archive_server import ArchiveServer
from pipeline import failure_of, materialize

from bot4_dagster.assets.keys import INGEST
from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ArchiveServer(build_tree(tmp_path_factory.mktemp("archive"))) as served:
        yield served


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SYMBOLS.name, ["BTCUSDT"])
        yield inst


def ingest(server, tmp_path, instance, table, window=None, **config):
    """Ingest ``table`` for BTCUSDT: the window (start, end) or, by default, all the source
    holds."""
    source = MarketDataResource(source="binance", symbols=["BTCUSDT"], base_url=server.url,
                                **config)
    defs = build_definitions(source, str(tmp_path / "w.duckdb"))
    ops = {f"market__{table}": dict(zip(("start", "end"), window, strict=True))} if window else None
    return materialize(defs, instance, "BTCUSDT", INGEST[table], ops=ops)


def stored(tmp_path, table) -> pd.DataFrame:
    return Warehouse(tmp_path / "w.duckdb").read(Slice(f"market.{table}", {"symbol": ["BTCUSDT"]}))


def test_klines_for_two_months_are_downloaded_verified_and_stored(server, tmp_path, instance):
    result = ingest(server, tmp_path, instance, "bars", start="2022-01-01", end="2022-02-02")
    assert result.success
    bars = stored(tmp_path, "bars")
    expected = ftx_bars()
    expected = expected[expected["ts"] >= pd.Timestamp("2022-01-01", tz="UTC")]
    assert len(bars) == len(expected) == 44_972  # the monthly zip's Dec 31 rows are not January's
    assert (bars["close"].to_numpy() == expected["close"].to_numpy()).all()
    assert bars["buy_volume"].notna().all() and bars["trade_count"].notna().all()
    served = {r.path.rsplit("/", 1)[-1] for r in server.requests}
    assert {"BTCUSDT-1m-2022-01.zip", "BTCUSDT-1m-2022-02-01.zip"} <= served


def test_aggtrades_day_becomes_trades(server, tmp_path, instance):
    result = ingest(server, tmp_path, instance, "trades", start="2020-02-22", end="2020-02-23",
                    market="um", trades=True)
    assert result.success
    trades = stored(tmp_path, "trades")
    raw = tardis_trades()
    assert len(trades) == len(raw) == 9_999
    assert (trades["side"].to_numpy() == raw["side"].map({"buy": 1, "sell": -1}).to_numpy()).all()


@pytest.mark.parametrize(("day", "rule"), [("2022-01-16", "zip_integrity"),
                                           ("2022-01-17", "checksum")])
def test_a_bad_archive_file_fails_the_run_and_writes_nothing(server, tmp_path, instance, day, rule):
    good = ingest(server, tmp_path, instance, "bars", start="2022-01-15", end="2022-01-16")
    assert good.success
    before = stored(tmp_path, "bars")
    assert len(before) == 1_440  # the µs-stamped daily file of 2022-01-15

    end = (pd.Timestamp(day) + pd.Timedelta(days=1)).date().isoformat()
    bad = ingest(server, tmp_path, instance, "bars", (day, end), start="2022-01-15", end=end)

    assert not bad.success
    failure = failure_of(bad)
    assert failure.metadata["rule"].value == rule
    assert f"BTCUSDT-1m-{day}.zip" in failure.description
    pd.testing.assert_frame_equal(stored(tmp_path, "bars"), before)
