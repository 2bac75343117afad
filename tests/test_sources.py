"""Sources: the files index notices rewritten files, trades-only sources offer bars built from
their trades (checked against an independent pandas resample of the real Binance trades), and
a user hears when a file contradicts --symbol or its volume unit is guessed."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from archive_builders import build_aggtrades_day
from archive_server import ArchiveServer
from conftest import FTX, TRADES

from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.sources import BinanceSource, FileSource, ingest_window

DAY = pd.Timestamp("2020-02-22", tz="UTC")
NEXT_DAY = DAY + pd.Timedelta(days=1)


def ftx_lines(n: int) -> list[str]:
    return gzip.decompress(FTX.read_bytes()).decode().splitlines()[: n + 1]


# --------------------------------------------------------------------------------------------
# the files index


def test_the_index_notices_a_rewrite_that_keeps_size_and_mtime(tmp_path, monkeypatch):
    rows = ftx_lines(100)
    path = tmp_path / "exports" / "bars.csv"
    path.parent.mkdir()
    path.write_text("\n".join(rows) + "\n")
    stat = path.stat()
    parsed: list[Path] = []
    real_parse = FileSource._parse
    monkeypatch.setattr(FileSource, "_parse",
                        lambda self, p: parsed.append(p) or real_parse(self, p))

    def source() -> FileSource:
        return FileSource(path.parent, symbol="BTC-PERP", volume_unit="quote",
                          index_path=tmp_path / "index.json")

    assert source().extents()[0].end == pd.Timestamp("2022-01-01 00:40", tz="UTC")
    assert len(parsed) == 1
    assert source().extents()[0].end == pd.Timestamp("2022-01-01 00:40", tz="UTC")
    assert len(parsed) == 1  # unchanged: the index answers

    # the last bar moves from 00:40 to 00:49: same length, same size; then the old mtime back
    rows[-1] = rows[-1].replace("2022-01-01 00:40", "2022-01-01 00:49")
    path.write_text("\n".join(rows) + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    assert source().extents()[0].end == pd.Timestamp("2022-01-01 00:49", tz="UTC")
    assert len(parsed) == 2


def test_an_index_of_the_old_format_is_rebuilt(tmp_path):
    index = tmp_path / "index.json"
    index.write_text('{"/x|1|2|{}": {"path": "/x", "size": 1, "mtime_ns": 2, "format": "ohlcv", '
                     '"table": "bars", "symbols": {}}}')
    source = FileSource(TRADES, index_path=index)
    assert [e.table for e in source.extents()] == ["bars", "trades"]
    assert '"version": 2' in index.read_text()


# --------------------------------------------------------------------------------------------
# bars from trades


def resample(trades: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The bars an independent pandas resample makes of Tardis trades; only bars with trades."""
    frame = trades.assign(ts=pd.to_datetime(trades["timestamp"], unit="us", utc=True),
                          buy=np.where(trades["side"] == "buy", trades["amount"], 0.0),
                          row=np.arange(2, len(trades) + 2)).set_index("ts")
    grouped = frame.resample(rule)
    bars = pd.DataFrame({
        "open": grouped["price"].first(), "high": grouped["price"].max(),
        "low": grouped["price"].min(), "close": grouped["price"].last(),
        "volume": grouped["amount"].sum(), "buy_volume": grouped["buy"].sum(),
        "trade_count": grouped["price"].count(), "first_row": grouped["row"].min(),
    })
    return bars[bars["trade_count"] > 0].reset_index()


@pytest.fixture(scope="module")
def tardis() -> pd.DataFrame:
    return pd.read_csv(TRADES)


def assert_bars_match(loaded, expected: pd.DataFrame) -> None:
    bars = loaded.frame
    assert len(bars) == len(expected)
    assert (bars["ts"].to_numpy() == expected["ts"].to_numpy()).all()
    for column in ("open", "high", "low", "close"):
        assert (bars[column].to_numpy() == expected[column].to_numpy()).all(), column
    for column in ("volume", "buy_volume"):  # pandas sums with compensation, the kernel plainly
        np.testing.assert_allclose(bars[column].to_numpy(), expected[column].to_numpy(), rtol=1e-12)
    assert (bars["trade_count"].to_numpy() == expected["trade_count"].to_numpy()).all()


def test_a_trades_only_export_offers_bars_built_from_its_trades(tmp_path, tardis):
    source = FileSource(TRADES, index_path=tmp_path / "index.json")
    extents = {(e.table, e.derived_from): e for e in source.extents()}
    assert set(extents) == {("bars", "trades"), ("trades", None)}
    bars_extent = extents[("bars", "trades")]
    assert (bars_extent.start, bars_extent.end) == (
        pd.Timestamp("2020-02-22 00:00", tz="UTC"), pd.Timestamp("2020-02-22 02:05", tz="UTC"))

    loaded = source.load("bars", "BTCUSDT", DAY, NEXT_DAY)

    expected = resample(tardis, "1min")
    assert_bars_match(loaded, expected)
    assert loaded.notes == ["bars built from 9,999 trades at 1min"]
    assert loaded.derived_from == "trades" and loaded.volume_unit == "base"
    assert [f.path for f in loaded.files] == [str(TRADES)]
    assert (loaded.frame["_source_file"] == str(TRADES)).all()
    assert (loaded.frame["_source_row"].to_numpy() == expected["first_row"].to_numpy()).all()
    assert loaded.frame["symbol"].eq("BTCUSDT").all()


def test_bars_at_another_interval(tmp_path, tardis):
    source = FileSource(TRADES, index_path=tmp_path / "index.json", bar_interval="5min")
    assert_bars_match(source.load("bars", "BTCUSDT", DAY, NEXT_DAY), resample(tardis, "5min"))


def test_a_window_boundary_off_the_bar_grid_never_cuts_a_bar(tmp_path):
    """Bars opening in [start, end) are built from all their trades, so two windows give the
    same bars as one; a 7-minute grid does not line up with these boundaries."""
    source = FileSource(TRADES, index_path=tmp_path / "index.json", bar_interval="7min")
    cut = pd.Timestamp("2020-02-22 01:00", tz="UTC")
    whole = source.load("bars", "BTCUSDT", DAY, NEXT_DAY).frame
    parts = pd.concat([source.load("bars", "BTCUSDT", DAY, cut).frame,
                       source.load("bars", "BTCUSDT", cut, NEXT_DAY).frame], ignore_index=True)
    pd.testing.assert_frame_equal(parts, whole)
    assert (whole["ts"] >= DAY).all()


def test_a_bad_trade_is_reported_against_its_own_file_and_row(tmp_path):
    rows = gzip.decompress(TRADES.read_bytes()).decode().splitlines()
    cells = rows[499].split(",")
    cells[6] = "-9682"  # price of file row 500
    rows[499] = ",".join(cells)
    path = tmp_path / "trades.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as caught:
        FileSource(path, index_path=tmp_path / "index.json").load("bars", "BTCUSDT", DAY, NEXT_DAY)
    assert (caught.value.first.file, caught.value.first.row, caught.value.first.rule) == (
        str(path), 500, "price_finite_positive")


def test_a_source_with_bars_does_not_derive_them(tmp_path):
    kinds = {(e.table, e.derived_from)
             for e in FileSource(FTX.parent, symbol="BTCUSDT", volume_unit="quote",
                                 index_path=tmp_path / "index.json").extents()}
    assert ("bars", "trades") not in kinds and ("bars", None) in kinds


@pytest.mark.parametrize("interval", ["1M", "fortnight", "0min"])
def test_a_bar_interval_must_be_a_fixed_offset(interval):
    with pytest.raises(ValueError, match=r"--bar-interval, BOT4_BAR_INTERVAL"):
        FileSource(TRADES, bar_interval=interval)


def test_binance_without_klines_builds_bars_from_aggtrades(tmp_path, tardis):
    build_aggtrades_day(tmp_path / "archive")
    with ArchiveServer(tmp_path / "archive") as server:
        source = BinanceSource(["btcusdt"], "2020-02-22", "2020-02-23", market="um", trades=True,
                               klines=False, base_url=server.url, cache_dir=tmp_path / "cache")
        assert {(e.table, e.derived_from) for e in source.extents()} == {
            ("bars", "trades"), ("trades", None)}
        loaded = source.load("bars", "BTCUSDT", DAY, NEXT_DAY)
    expected = resample(tardis.assign(timestamp=tardis["timestamp"] // 1000 * 1000), "1min")
    assert_bars_match(loaded, expected)
    assert loaded.notes == ["bars built from 9,999 trades at 1min"]
    assert not any("klines" in r.path for r in server.requests)


def test_binance_needs_klines_or_trades(tmp_path):
    with pytest.raises(ValueError, match="--trades"):
        BinanceSource(["BTCUSDT"], "2020-02-22", klines=False, cache_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# notes: a symbol option that a file contradicts, guessed volume units


@pytest.fixture
def progress(caplog):
    caplog.set_level(logging.WARNING, logger="bot4_dagster.progress")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "bot4_dagster.progress"]


def test_a_file_that_names_another_symbol_keeps_it_and_says_so(tmp_path, progress):
    """--symbol labels the files that name none; a file naming its own keeps it, with a note."""
    source = FileSource(TRADES, symbol="BTC-PERP", index_path=tmp_path / "index.json")
    assert [e.symbol for e in source.extents()] == ["BTCUSDT", "BTCUSDT"]  # trades + derived bars
    loaded = source.load("trades", "BTCUSDT", DAY, NEXT_DAY)
    message = (f"{TRADES} names BTCUSDT: stored as such; --symbol BTC-PERP applies only to "
               "files that name no symbol")
    assert loaded.notes == [message]
    assert progress() == [message]
    assert len(loaded.frame) == 9_999 and loaded.frame["symbol"].eq("BTCUSDT").all()


def test_a_binance_named_file_keeps_its_symbol_and_says_so(tmp_path):
    path = tmp_path / "ETHUSDT-1m-2022-01.csv"
    path.write_text("\n".join(ftx_lines(10)) + "\n")
    parsed = parse_file(path, symbol="BTC-PERP", volume_unit="quote")
    assert parsed.symbols == ["ETHUSDT"]
    note = (f"{path} names ETHUSDT: stored as such; --symbol BTC-PERP applies only to files "
            "that name no symbol")
    assert parsed.notes == (note,)
    unnamed = tmp_path / "export.csv"
    unnamed.write_text("\n".join(ftx_lines(10)) + "\n")
    assert parse_file(unnamed, symbol="BTC-PERP", volume_unit="quote").symbols == ["BTC-PERP"]


def test_no_note_when_the_symbol_option_agrees(tmp_path):
    assert parse_file(TRADES, symbol="BTCUSDT").notes == ()


def test_a_file_of_several_symbols_keeps_them(tmp_path):
    rows = gzip.decompress(TRADES.read_bytes()).decode().splitlines()[:50]
    rows[30] = rows[30].replace("BTCUSDT", "ETHUSDT")
    path = tmp_path / "two.csv"
    path.write_text("\n".join(rows) + "\n")
    assert parse_file(path).symbols == ["BTCUSDT", "ETHUSDT"]
    assert parse_file(path, symbol="BTC-PERP").symbols == ["BTCUSDT", "ETHUSDT"]


def test_a_guessed_volume_unit_is_said(tmp_path, progress):
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(ftx_lines(60)) + "\n")
    guessed = FileSource(path, symbol="BTC-PERP", index_path=tmp_path / "index.json")
    loaded = guessed.load("bars", "BTC-PERP", pd.Timestamp("2021-12-31", tz="UTC"),
                          pd.Timestamp("2022-01-02", tz="UTC"))
    message = (f"volume unit of {path} guessed as base; set --volume-unit base|quote "
               "(BOT4_VOLUME_UNIT) to say so")
    assert loaded.notes == [message] and progress() == [message]
    assert loaded.volume_unit == "base"
    told = FileSource(path, symbol="BTC-PERP", volume_unit="quote")
    assert told.load("bars", "BTC-PERP", pd.Timestamp("2021-12-31", tz="UTC"),
                     pd.Timestamp("2022-01-02", tz="UTC")).notes == []


# --------------------------------------------------------------------------------------------
# what a directory source reads


def test_hidden_files_and_folders_are_skipped(tmp_path, monkeypatch):
    """Notebook checkpoints, VCS folders and macOS resource forks hold copies or tool state:
    reading them would ingest a file twice or fail on bytes that are not an export."""
    folder = tmp_path / "exports"
    for hidden in (".ipynb_checkpoints", ".git/objects", "2022/.cache"):
        (folder / hidden).mkdir(parents=True)
    bars = "\n".join(ftx_lines(100)) + "\n"
    (folder / "2022" / "bars.csv").write_text(bars)
    (folder / ".ipynb_checkpoints" / "bars-checkpoint.csv").write_text(bars)
    (folder / "2022" / ".cache" / "old.csv").write_text("garbage\n")
    (folder / ".git" / "objects" / "pack.csv.gz").write_bytes(b"not gzip")
    (folder / "._bars.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    (folder / "README.md").write_text("exports from FTX\n")
    parsed: list[Path] = []
    real_parse = FileSource._parse
    monkeypatch.setattr(FileSource, "_parse",
                        lambda self, p: parsed.append(p) or real_parse(self, p))

    source = FileSource(folder, symbol="BTC-PERP", volume_unit="quote")
    assert source.files() == [folder / "2022" / "bars.csv"]
    loaded = source.load("bars", "BTC-PERP", *ingest_window(source, "bars", "BTC-PERP"))
    assert len(loaded.frame) == 100
    assert set(parsed) == {folder / "2022" / "bars.csv"}


def test_a_visible_file_that_is_not_market_data_refuses_the_run(tmp_path):
    folder = tmp_path / "exports"
    (folder / ".hidden").mkdir(parents=True)
    (folder / "bars.csv").write_text("\n".join(ftx_lines(100)) + "\n")
    (folder / ".hidden" / "broken.csv").write_text("\x00\x01")
    (folder / "positions.csv.gz").write_bytes(b"PK\x03\x04 a zip named .gz")
    with pytest.raises(DataError) as caught:
        FileSource(folder, symbol="BTC-PERP").extents()
    violation = caught.value.first
    assert (violation.file, violation.rule) == (str(folder / "positions.csv.gz"), "gzip_integrity")
    assert str(folder / "positions.csv.gz") in str(caught.value)


def test_a_hidden_file_named_explicitly_is_read(tmp_path):
    path = tmp_path / ".bars.csv"
    path.write_text("\n".join(ftx_lines(10)) + "\n")
    assert FileSource(path, symbol="BTC-PERP").files() == [path]
