"""The readers on the real files in ../shared/data, format detection, and every kind of broken file:
each broken file is a damaged copy of a real one, and its error names the file, the row and the rule.

Rows are file lines, header included (row 1), as an editor shows them.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from functools import cache
from pathlib import Path

import arch.data
import numpy as np
import pandas as pd
import pytest
from archive_builders import aggtrades_csv, klines_csv

from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FTX = DATA / "ftx_btc-perp_1m_2022-01.csv.gz"
TRADES = DATA / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
QUOTES = DATA / "binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz"
SP500 = Path(arch.data.__file__).parent / "sp500" / "sp500.csv.gz"
FTX_ROWS = 45_031


@cache
def raw(path: Path) -> pd.DataFrame:
    """The file as pandas reads it; round_trip because pandas' default float parser is off by
    one ulp on some cells of the FTX volume column (218102.59507500002)."""
    return pd.read_csv(path, float_precision="round_trip")


@cache
def _lines(path: Path) -> tuple[str, ...]:
    return tuple(gzip.decompress(path.read_bytes()).decode().splitlines())


def lines(path: Path) -> list[str]:
    """The file's lines; ``lines(p)[row - 1]`` is file row ``row``."""
    return list(_lines(path))


def set_cell(rows: list[str], row: int, column: str, value: str) -> None:
    cells = rows[row - 1].split(",")
    cells[rows[0].split(",").index(column)] = value
    rows[row - 1] = ",".join(cells)


def write(path: Path, content: list[str] | str | bytes) -> Path:
    if isinstance(content, list):
        content = "\n".join(content) + "\n"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def rejected(path: Path, **options) -> DataError:
    with pytest.raises(DataError) as caught:
        parse_file(path, **options)
    return caught.value


def ftx_bars(n: int | None = None) -> pd.DataFrame:
    bars = raw(FTX).head(n) if n else raw(FTX)
    return bars.assign(ts=pd.to_datetime(bars["timestamp"], utc=True)).drop(columns="timestamp")


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# --------------------------------------------------------------------------------------------
# the real files


@pytest.mark.parametrize("volume_unit, expected", [("quote", "quote"), ("base", "base"), (None, "base")])
def test_ftx_bars_read_as_in_the_file(volume_unit, expected):
    parsed = parse_file(FTX, format="ohlcv", symbol="BTC-PERP", volume_unit=volume_unit)
    frame, source = parsed.frame, raw(FTX)

    assert (parsed.format, parsed.table, parsed.ts_unit) == ("ohlcv", "bars", "iso")
    assert parsed.volume_unit == expected
    assert len(frame) == FTX_ROWS == len(source)
    assert parsed.symbols == ["BTC-PERP"]
    assert frame["ts"].iloc[0] == pd.Timestamp(source["timestamp"].iloc[0], tz="UTC")
    assert frame["ts"].iloc[-1] == pd.Timestamp(source["timestamp"].iloc[-1], tz="UTC")
    assert frame["ts"].iloc[0] == pd.Timestamp("2021-12-31 23:01", tz="UTC")
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(frame[column].to_numpy(), source[column].to_numpy())
    assert frame["buy_volume"].isna().all() and frame["trade_count"].isna().all()


def test_tardis_trades_map_side_id_and_microseconds():
    parsed = parse_file(TRADES)
    frame, source = parsed.frame, raw(TRADES)

    assert (parsed.format, parsed.table, parsed.ts_unit, parsed.volume_unit) == (
        "tardis_trades", "trades", "us", "base")
    assert len(frame) == 9_999 == len(source)
    assert parsed.symbols == ["BTCUSDT"]
    expected_side = source["side"].map({"buy": 1, "sell": -1}).to_numpy()
    np.testing.assert_array_equal(frame["side"].to_numpy(), expected_side)
    assert set(frame["side"]) == {-1, 1}
    np.testing.assert_array_equal(frame["trade_id"].to_numpy(), source["id"].to_numpy())
    micros = frame["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    np.testing.assert_array_equal(micros, source["timestamp"].to_numpy())
    np.testing.assert_array_equal(frame["price"].to_numpy(), source["price"].to_numpy())
    np.testing.assert_array_equal(frame["amount"].to_numpy(), source["amount"].to_numpy())


def test_tardis_quotes_map_bid_ask_and_sizes():
    parsed = parse_file(QUOTES)
    frame, source = parsed.frame, raw(QUOTES)

    assert (parsed.format, parsed.table, parsed.ts_unit) == ("tardis_quotes", "quotes", "us")
    assert len(frame) == 9_999 == len(source)
    for ours, theirs in (("bid", "bid_price"), ("ask", "ask_price"),
                         ("bid_size", "bid_amount"), ("ask_size", "ask_amount")):
        np.testing.assert_array_equal(frame[ours].to_numpy(), source[theirs].to_numpy())
    micros = frame["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
    np.testing.assert_array_equal(micros, source["timestamp"].to_numpy())


@pytest.mark.parametrize("path, options", [
    (FTX, dict(symbol="BTC-PERP")), (TRADES, {}), (QUOTES, {}),
], ids=["ftx", "trades", "quotes"])
def test_provenance_counts_the_header_as_row_1(path, options):
    frame = parse_file(path, **options).frame
    np.testing.assert_array_equal(frame["_source_row"].to_numpy(), np.arange(2, len(frame) + 2))
    assert set(frame["_source_file"]) == {str(path)}


# --------------------------------------------------------------------------------------------
# detection


def test_headerless_klines_in_ms_and_us_give_the_same_ts(tmp_path):
    bars = ftx_bars(1_440)
    (tmp_path / "us").mkdir()
    ms = parse_file(write(tmp_path / "BTCUSDT-1m-2022-01.csv", klines_csv(bars)))
    us = parse_file(write(tmp_path / "us" / "BTCUSDT-1m-2022-01.csv", klines_csv(bars, time_unit="us")))

    assert (ms.format, ms.ts_unit, us.format, us.ts_unit) == (
        "binance_klines", "ms", "binance_klines", "us")
    assert ms.symbols == us.symbols == ["BTCUSDT"]
    pd.testing.assert_series_equal(ms.frame["ts"], us.frame["ts"])
    np.testing.assert_array_equal(ms.frame["ts"].to_numpy(), bars["ts"].to_numpy())
    np.testing.assert_array_equal(ms.frame["close"].to_numpy(), bars["close"].to_numpy())
    assert ms.frame["_source_row"].iloc[0] == 1  # no header: the first line is row 1


def test_klines_switching_from_ms_to_us_name_the_first_switching_row(tmp_path):
    bars = ftx_bars(100)
    ms = klines_csv(bars).decode().splitlines()
    us = klines_csv(bars, time_unit="us").decode().splitlines()
    path = write(tmp_path / "BTCUSDT-1m-2022-01.csv", ms[:63] + us[63:])

    exc = rejected(path)
    assert (exc.first.file, exc.first.row, exc.first.rule) == (str(path), 64, "timestamp_unit")
    assert "switches from ms (row 1) to us" in exc.first.detail


@pytest.mark.parametrize("header", [True, False], ids=["header", "no_header"])
def test_aggtrades_with_and_without_header(tmp_path, header):
    trades = raw(TRADES)
    text = aggtrades_csv(trades).decode()
    if not header:
        text = text.split("\n", 1)[1]
    parsed = parse_file(write(tmp_path / "BTCUSDT-aggTrades-2020-02-22.csv", text))

    assert (parsed.format, parsed.table, parsed.ts_unit) == ("binance_aggtrades", "trades", "ms")
    assert len(parsed.frame) == 9_999
    assert parsed.symbols == ["BTCUSDT"]
    np.testing.assert_array_equal(parsed.frame["trade_id"].to_numpy(), trades["id"].to_numpy())
    expected_side = trades["side"].map({"buy": 1, "sell": -1}).to_numpy()
    np.testing.assert_array_equal(parsed.frame["side"].to_numpy(), expected_side)
    millis = parsed.frame["ts"].astype("datetime64[ms, UTC]").astype("int64").to_numpy()
    np.testing.assert_array_equal(millis, trades["timestamp"].to_numpy() // 1000)
    assert parsed.frame["_source_row"].iloc[0] == (2 if header else 1)


def test_generic_ohlcv_parquet(tmp_path):
    bars = ftx_bars()
    path = tmp_path / "btc.parquet"
    bars.assign(symbol="BTC-PERP")[["symbol", "ts", "open", "high", "low", "close", "volume"]] \
        .to_parquet(path)
    parsed = parse_file(path)

    assert (parsed.format, parsed.table) == ("ohlcv", "bars")
    assert parsed.symbols == ["BTC-PERP"]
    assert len(parsed.frame) == FTX_ROWS
    np.testing.assert_array_equal(parsed.frame["ts"].to_numpy(), bars["ts"].to_numpy())
    np.testing.assert_array_equal(parsed.frame["close"].to_numpy(), bars["close"].to_numpy())


def test_us_dates_of_the_bundled_file_are_month_first():
    parsed = parse_file(SP500, symbol="SP500")
    source = raw(SP500)

    assert parsed.format == "ohlcv"
    assert source["Date"].iloc[0] == "1/4/1999"
    assert parsed.frame["ts"].iloc[0] == pd.Timestamp("1999-01-04", tz="UTC")
    expected = pd.to_datetime(source["Date"], format="%m/%d/%Y", utc=True)
    np.testing.assert_array_equal(parsed.frame["ts"].to_numpy(), expected.to_numpy())
    np.testing.assert_array_equal(parsed.frame["close"].to_numpy(), source["Close"].to_numpy())
    assert parsed.frame["ts"].is_monotonic_increasing


def test_us_dates_in_a_users_file(tmp_path):
    bars = ftx_bars(3).assign(date=["1/4/1999", "1/5/1999", "12/31/1999"]).drop(columns="ts")
    path = write(tmp_path / "daily.csv", bars.to_csv(index=False))
    ts = parse_file(path, symbol="X").frame["ts"]
    assert ts.tolist() == [pd.Timestamp(d, tz="UTC") for d in ("1999-01-04", "1999-01-05", "1999-12-31")]


# --------------------------------------------------------------------------------------------
# broken files


def assert_error(exc: DataError, path: Path, row: int | None, rule: str) -> None:
    assert (exc.first.file, exc.first.row, exc.first.rule) == (str(path), row, rule)
    assert str(path) in str(exc) and rule in str(exc)


def test_unrecognised_header(tmp_path):
    rows = lines(FTX)
    rows[0] = rows[0].replace("timestamp", "when")
    path = write(tmp_path / "bars.csv", rows)
    exc = rejected(path, symbol="X")
    assert_error(exc, path, None, "recognised_format")
    assert "when" in exc.first.detail


@pytest.mark.parametrize("fmt", ["ohlcv", None], ids=["configured", "detected"])
def test_renamed_column_lists_what_the_file_has(tmp_path, fmt):
    rows = lines(FTX)
    rows[0] = rows[0].replace("close", "close_price")
    path = write(tmp_path / "bars.csv", rows)
    exc = rejected(path, format=fmt, symbol="X")
    assert_error(exc, path, None, "required_columns")
    assert "needs column(s) close;" in exc.first.detail
    assert "timestamp, open, high, low, close_price, volume" in exc.first.detail


@pytest.mark.parametrize("source, column", [
    (FTX, "volume"), (TRADES, "amount"), (QUOTES, "bid_amount"),
], ids=["bars", "trades", "quotes"])
def test_missing_column(tmp_path, source, column):
    rows = lines(source)
    drop = rows[0].split(",").index(column)
    rows = [",".join(c for i, c in enumerate(r.split(",")) if i != drop) for r in rows]
    path = write(tmp_path / "data.csv", rows)
    exc = rejected(path, symbol="X")
    assert_error(exc, path, None, "required_columns")
    assert f"needs column(s) {column};" in exc.first.detail


@pytest.mark.parametrize("name, content", [
    ("empty.csv", b""),
    ("empty.csv.gz", b""),
    ("header_only.csv", "timestamp,open,high,low,close,volume\n"),
    ("header_only.csv.gz", gzip.compress(b"timestamp,open,high,low,close,volume\n")),
])
def test_empty_and_header_only_files(tmp_path, name, content):
    path = write(tmp_path / name, content)
    assert_error(rejected(path, symbol="X"), path, None, "non_empty")


@pytest.mark.parametrize("cut", [1_000, 417_197, 834_374])
def test_truncated_gzip_names_the_first_damaged_row(tmp_path, cut):
    data = FTX.read_bytes()[:cut]
    path = write(tmp_path / "bars.csv.gz", data)
    # what survives the cut, decoded independently of the reader
    survived = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(data)
    first_damaged = survived.count(b"\n") + 1
    assert 1 < first_damaged <= FTX_ROWS + 1

    exc = rejected(path, symbol="X")
    assert_error(exc, path, first_damaged, "gzip_integrity")
    assert lines(FTX)[: first_damaged - 1] == survived.decode().splitlines()[: first_damaged - 1]


def test_truncated_zip(tmp_path):
    whole = write_zip(tmp_path / "whole.zip", {"BTCUSDT-1m-2022-01.csv": klines_csv(ftx_bars(2_000))})
    assert len(parse_file(whole).frame) == 2_000
    path = write(tmp_path / "BTCUSDT-1m-2022-01.zip", whole.read_bytes()[: whole.stat().st_size // 2])
    assert_error(rejected(path), path, None, "zip_integrity")


def test_zip_with_corrupted_member(tmp_path):
    whole = write_zip(tmp_path / "whole.zip", {"BTCUSDT-1m-2022-01.csv": klines_csv(ftx_bars(2_000))})
    data = bytearray(whole.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the compressed member; the directory stays readable
    path = write(tmp_path / "BTCUSDT-1m-2022-01.zip", bytes(data))
    assert_error(rejected(path), path, None, "zip_integrity")


def test_zip_with_two_csvs(tmp_path):
    csv = klines_csv(ftx_bars(10))
    path = write_zip(tmp_path / "two.zip", {"BTCUSDT-1m-2022-01.csv": csv, "BTCUSDT-1m-2022-02.csv": csv})
    exc = rejected(path)
    assert_error(exc, path, None, "zip_single_csv")
    assert "BTCUSDT-1m-2022-02.csv" in exc.first.detail


@pytest.mark.parametrize("source, column, row", [
    (FTX, "close", 1_234), (TRADES, "price", 5_000), (QUOTES, "bid_price", 9_000),
], ids=["bars", "trades", "quotes"])
def test_non_numeric_price_names_its_row(tmp_path, source, column, row):
    rows = lines(source)
    set_cell(rows, row, column, "46.3k")
    path = write(tmp_path / "data.csv", rows)
    exc = rejected(path, symbol="X")
    assert_error(exc, path, row, "dtype")
    assert column in exc.first.detail and "'46.3k'" in exc.first.detail


@pytest.mark.parametrize("change, found", [(lambda r: r.rsplit(",", 1)[0], 5),
                                           (lambda r: r + ",7", 7)], ids=["missing", "extra"])
def test_row_with_wrong_cell_count(tmp_path, change, found):
    rows = lines(FTX)
    rows[30_000 - 1] = change(rows[30_000 - 1])
    path = write(tmp_path / "bars.csv", rows)
    exc = rejected(path, symbol="X")
    assert_error(exc, path, 30_000, "csv_structure")
    assert f"found {found}" in exc.first.detail


def test_generic_file_without_symbol(tmp_path):
    path = write(tmp_path / "bars.csv", lines(FTX))
    exc = rejected(path)
    assert_error(exc, path, None, "symbol_known")
    assert "set --symbol (BOT4_SYMBOL)" in exc.first.detail
    assert len(parse_file(path, symbol="BTC-PERP").frame) == FTX_ROWS
