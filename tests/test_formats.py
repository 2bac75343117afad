"""The readers on the real files in ../shared/data, format detection, and every kind of broken file:
each broken file is a damaged copy of a real one, and its error names the file, the row and the
rule.

Rows are file lines, header included (row 1), as an editor shows them.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import arch.data
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from archive_builders import aggtrades_csv, klines_csv

from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.warehouse import Slice, Warehouse

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


@pytest.mark.parametrize("volume_unit, expected",
                         [("quote", "quote"), ("base", "base"), (None, "base")])
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
    us = parse_file(write(tmp_path / "us" / "BTCUSDT-1m-2022-01.csv",
                          klines_csv(bars, time_unit="us")))

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
    assert ts.tolist() == [pd.Timestamp(d, tz="UTC")
                           for d in ("1999-01-04", "1999-01-05", "1999-12-31")]


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
    ("header_only.csv.gz", gzip.compress(b"timestamp,open,high,low,close,volume\n", mtime=0)),
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
    whole = write_zip(tmp_path / "whole.zip",
                      {"BTCUSDT-1m-2022-01.csv": klines_csv(ftx_bars(2_000))})
    assert len(parse_file(whole).frame) == 2_000
    path = write(tmp_path / "BTCUSDT-1m-2022-01.zip",
                 whole.read_bytes()[: whole.stat().st_size // 2])
    assert_error(rejected(path), path, None, "zip_integrity")


def test_zip_with_corrupted_member(tmp_path):
    whole = write_zip(tmp_path / "whole.zip",
                      {"BTCUSDT-1m-2022-01.csv": klines_csv(ftx_bars(2_000))})
    data = bytearray(whole.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the compressed member; the directory stays readable
    path = write(tmp_path / "BTCUSDT-1m-2022-01.zip", bytes(data))
    assert_error(rejected(path), path, None, "zip_integrity")


def test_zip_with_two_csvs(tmp_path):
    csv = klines_csv(ftx_bars(10))
    path = write_zip(tmp_path / "two.zip",
                     {"BTCUSDT-1m-2022-01.csv": csv, "BTCUSDT-1m-2022-02.csv": csv})
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


# --------------------------------------------------------------------------------------------
# times: exact, unambiguous, in range


def assert_refused(path: Path, row: int | None, rule: str, detail: str, **options) -> DataError:
    exc = rejected(path, **options)
    assert_error(exc, path, row, rule)
    assert detail in exc.first.detail, exc.first.detail
    return exc


def dated(stamps, n: int | None = None, column: str = "date") -> list[str]:
    """FTX bars with their time column replaced by ``stamps`` (one per row)."""
    rows = lines(FTX)[1:]
    stamps = list(stamps)[: n or len(rows)]
    return [f"{column},open,high,low,close,volume"] + [
        f"{stamp},{row.split(',', 1)[1]}" for stamp, row in zip(stamps, rows, strict=False)]


def test_epoch_nanoseconds_are_read_exactly(tmp_path):
    """The real trade times in ns with 999 ns added: exact integers give the trade's own
    microsecond; through float64 (spacing 256 ns here) some land on the next one."""
    micros = np.unique(raw(TRADES)["timestamp"].to_numpy(np.int64))  # bars: one per time
    nanos = micros * 1000 + 999
    path = write(tmp_path / "ns.csv", dated(nanos, column="timestamp"))
    parsed = parse_file(path, symbol="X", volume_unit="quote")

    assert parsed.ts_unit == "ns"
    np.testing.assert_array_equal(parsed.frame["ts"].astype("int64").to_numpy(), nanos)
    through_float = nanos.astype(np.float64).astype(np.int64) // 1000
    assert (through_float != micros).any()  # what reading through float did

    warehouse = Warehouse(tmp_path / "w.duckdb")
    assert parsed.table == "bars"
    warehouse.merge("bars", parsed.frame)
    back = warehouse.read(Slice("market.bars", {"symbol": ["X"]}))
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]"
    np.testing.assert_array_equal(back["ts"].astype("int64").to_numpy(), nanos)
    one = pd.Timestamp(int(nanos[100]), tz="UTC")  # a window of a single nanosecond
    window = Slice("market.bars", {"symbol": ["X"]}, "ts", one, one + pd.Timedelta(1, "ns"))
    assert warehouse.span(window).rows == 1
    assert warehouse.span(window).first_ts == one
    assert warehouse.spans()["last_ts"].iat[0] == pd.Timestamp(int(nanos.max()), tz="UTC")
    assert warehouse.merge("bars", parsed.frame).unchanged == len(nanos)  # exact on re-merge


@pytest.mark.parametrize("pattern, shown", [
    ("%Y%m%d", "reads as 2022-01-01 (%Y%m%d) or as epoch seconds, 1970-08-23 00:41:41 UTC"),
    ("%Y%m%d%H%M", "reads as 2022-01-01 00:00:00 (%Y%m%d%H%M) or as epoch milliseconds, 1976-05"),
    ("%Y%m%d%H%M%S", "(%Y%m%d%H%M%S) or as epoch milliseconds, 2610-"),
], ids=["date", "minutes", "seconds"])
def test_integer_dates_are_ambiguous(tmp_path, pattern, shown):
    days = pd.date_range("2022-01-01", periods=30)
    path = write(tmp_path / "daily.csv", dated(days.strftime(pattern), 30))
    assert_refused(path, 2, "timestamp_ambiguous", shown, symbol="X")


def test_dates_that_parse_month_and_day_first_are_refused(tmp_path):
    days = pd.date_range("2022-01-01", periods=12)
    path = write(tmp_path / "daily.csv", dated(days.strftime("%m/%d/%Y"), 12))
    assert_refused(path, 3, "timestamp_ambiguous",
                   "'01/02/2022' reads as 2022-01-02 (month first, %m/%d/%Y) and as 2022-02-01 "
                   "(day first, %d/%m/%Y), and no row of the file decides", symbol="X")


@pytest.mark.parametrize("pattern", ["%d.%m.%Y", "%d/%m/%Y %H:%M", "%m-%d-%Y"])
def test_a_13th_day_decides_the_order(tmp_path, pattern):
    days = pd.date_range("2022-01-01", periods=20)
    path = write(tmp_path / "daily.csv", dated(days.strftime(pattern), 20))
    parsed = parse_file(path, symbol="X")
    assert parsed.ts_unit == pattern
    assert parsed.frame["ts"].tolist() == list(days.tz_localize("UTC"))


def test_dates_that_read_the_same_both_ways_are_accepted(tmp_path):
    path = write(tmp_path / "daily.csv", dated(["01/01/2022", "02/02/2022", "03/03/2022"], 3))
    ts = parse_file(path, symbol="X").frame["ts"]
    assert ts.dt.month.tolist() == [1, 2, 3]


@pytest.mark.parametrize("row, zone", [(2, "+00:00"), (1_234, "Z")], ids=["first", "later"])
def test_a_file_mixing_zoned_and_naive_times_is_refused(tmp_path, row, zone):
    rows = lines(FTX)
    set_cell(rows, row, "timestamp", rows[row - 1].split(",")[0] + zone)
    path = write(tmp_path / "bars.csv", rows)
    first = 3 if row == 2 else row
    exc = assert_refused(path, first, "timestamp_zone_consistent", "a time without a zone is "
                         "taken as UTC", symbol="X")
    assert ("has no zone" if row == 2 else "has a zone") in exc.first.detail


def test_offsets_on_every_row_are_converted_to_utc(tmp_path):
    rows = lines(FTX)[:101]
    rows[1:] = [r.replace(" ", "T", 1).replace(",", "+01:00,", 1) for r in rows[1:]]
    rows[50] = rows[50].replace("+01:00", "-02:30")
    parsed = parse_file(write(tmp_path / "bars.csv", rows), symbol="X")
    expected = ftx_bars(100)["ts"] - pd.Timedelta(hours=1)
    expected.iloc[49] += pd.Timedelta(hours=3, minutes=30)
    np.testing.assert_array_equal(parsed.frame["ts"].to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("value", ["2300-01-01 00:00:00.000000", "3000-01-01 00:00:00",
                                   "1500-06-01 00:00:00"])
def test_text_times_outside_the_nanosecond_range(tmp_path, value):
    rows = lines(FTX)
    set_cell(rows, 1_234, "timestamp", value)
    path = write(tmp_path / "bars.csv", rows)
    assert_refused(path, 1_234, "timestamp_in_range",
                   f"{value!r} is outside 1677-09-21 .. 2262-04-11", symbol="X")


@pytest.mark.parametrize("year", [2300, 3000])
def test_epoch_times_outside_the_nanosecond_range(tmp_path, year):
    rows = lines(TRADES)
    micros = (pd.Timestamp(f"{year}-01-01").to_datetime64().astype("datetime64[us]")
              .astype(np.int64))
    set_cell(rows, 1_234, "timestamp", str(micros))
    path = write(tmp_path / "trades.csv", rows)
    assert_refused(path, 1_234, "timestamp_in_range",
                   f"(microseconds since 1970) is {year}-01-01T00:00:00", symbol="X")


def test_parquet_timestamps_outside_the_nanosecond_range(tmp_path):
    bars = ftx_bars(10).assign(symbol="BTC-PERP")
    table = pa.Table.from_pandas(bars[["symbol", "ts", "open", "high", "low", "close", "volume"]],
                                 preserve_index=False)
    ts = table.column("ts").cast(pa.timestamp("us", tz="UTC")).to_pylist()
    ts[6] = datetime(3000, 1, 1, tzinfo=UTC)
    table = table.set_column(1, "ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path)
    assert_refused(path, 7, "timestamp_in_range", "is 3000-01-01T00:00:00")


# --------------------------------------------------------------------------------------------
# ids, booleans, columns


def test_trade_ids_above_2_53_keep_every_digit(tmp_path):
    trades = raw(TRADES).assign(id=lambda t: t["id"] + 2**53)
    text = aggtrades_csv(trades).decode()
    parsed = parse_file(write(tmp_path / "BTCUSDT-aggTrades-2020-02-22.csv", text))
    np.testing.assert_array_equal(parsed.frame["trade_id"].to_numpy(),
                                  trades["id"].to_numpy(np.int64))
    assert parsed.frame["trade_id"].is_unique


@pytest.mark.parametrize("value, detail", [
    (str(2**63), "outside int64"),
    ("42377944.5", "must hold integers, found 42377944.5"),
    ("9007199254740993.0", "at or above 2^53, where a float no longer holds every integer"),
])
def test_trade_ids_that_cannot_be_exact(tmp_path, value, detail):
    rows = lines(TRADES)
    set_cell(rows, 1_234, "id", value)
    path = write(tmp_path / "trades.csv", rows)
    assert_refused(path, 1_234, "dtype", detail)


@pytest.mark.parametrize("true, false", [("true", "false"), ("True", "FALSE"), ("1", "0")])
def test_is_buyer_maker_spellings(tmp_path, true, false):
    text = aggtrades_csv(raw(TRADES)).decode().replace(",true\n", f",{true}\n")
    text = text.replace(",false\n", f",{false}\n")
    parsed = parse_file(write(tmp_path / "BTCUSDT-aggTrades-2020-02-22.csv", text))
    expected = raw(TRADES)["side"].map({"buy": 1, "sell": -1}).to_numpy()
    np.testing.assert_array_equal(parsed.frame["side"].to_numpy(), expected)


@pytest.mark.parametrize("cell", ["maybe", "", "2", "yes"])
def test_is_buyer_maker_that_is_not_a_boolean_is_refused(tmp_path, cell):
    rows = aggtrades_csv(raw(TRADES)).decode().splitlines()
    cells = rows[1_233].split(",")
    cells[6] = cell
    rows[1_233] = ",".join(cells)
    path = write(tmp_path / "BTCUSDT-aggTrades-2020-02-22.csv", rows)
    shown = "has an empty cell" if not cell else f"holds {cell!r}, not true or false"
    assert_refused(path, 1_234, "dtype", f"column is_buyer_maker {shown}")


@pytest.mark.parametrize("header, detail", [
    ("timestamp,open,high,low,close,volume,close",
     "'close' appears twice in the header (columns 5 and 7)"),
    ("timestamp,open,high,low,close,volume, Volume ",
     "'Volume' appears twice in the header (columns 6 and 7)"),
], ids=["exact", "case_and_spaces"])
def test_a_duplicated_column_name_is_refused(tmp_path, header, detail):
    rows = [header] + [r + "," + r.split(",")[4] for r in lines(FTX)[1:]]
    path = write(tmp_path / "bars.csv", rows)
    assert_refused(path, 1, "unique_columns", detail, symbol="X")


# --------------------------------------------------------------------------------------------
# bytes: long lines, encodings, BOM, bombs


@pytest.mark.parametrize("row", [1, 1_234], ids=["header", "data"])
def test_a_line_longer_than_the_csv_field_limit(tmp_path, row):
    rows = lines(FTX)
    rows[row - 1] += "7" * 200_000
    path = write(tmp_path / "bars.csv", rows)
    assert_refused(path, row, "line_length", "bytes long, more than the 65,536", symbol="X")


def test_an_unclosed_quote_names_the_line_it_opens_on(tmp_path):
    rows = lines(TRADES)
    set_cell(rows, 1_234, "exchange", '"binance-futures')
    path = write(tmp_path / "trades.csv", rows)
    assert_refused(path, 1_234, "csv_structure", "an unclosed quote?")


@pytest.mark.parametrize("column, rule, detail", [
    ("side", "encoding", "column side holds b'b\\xfcy', which is not UTF-8 text"),
    ("timestamp", "encoding", "column timestamp holds b'15823\\xfc"),
    ("symbol", "symbol_valid", "column symbol holds b'b\\xfcy'"),
])
def test_latin1_cells_name_their_row(tmp_path, column, rule, detail):
    rows = lines(TRADES)
    value = {"timestamp": "15823\u00fc"}.get(column, "b\u00fcy")
    set_cell(rows, 1_234, column, value)
    path = write(tmp_path / "trades.csv", "\n".join(rows).encode("latin-1"))
    assert_refused(path, 1_234, rule, detail)


def test_a_latin1_header_is_refused_at_row_1(tmp_path):
    rows = lines(TRADES)
    rows[0] = rows[0].replace("exchange", "b\u00f6rse")
    path = write(tmp_path / "trades.csv", "\n".join(rows).encode("latin-1"))
    assert_refused(path, 1, "encoding", "the header is not UTF-8 text")


def test_a_utf16_file_is_refused(tmp_path):
    path = write(tmp_path / "bars.csv", "\n".join(lines(FTX)[:10]).encode("utf-16"))
    assert_refused(path, 1, "encoding", "UTF-16", symbol="X")


def test_a_bom_before_headerless_klines_is_ignored(tmp_path):
    plain = klines_csv(ftx_bars(1_440))
    (tmp_path / "bom").mkdir()
    expected = parse_file(write(tmp_path / "BTCUSDT-1m-2022-01.csv", plain))
    parsed = parse_file(write(tmp_path / "bom" / "BTCUSDT-1m-2022-01.csv", b"\xef\xbb\xbf" + plain))
    assert (parsed.format, parsed.ts_unit) == ("binance_klines", "ms")
    pd.testing.assert_frame_equal(parsed.frame.drop(columns="_source_file"),
                                  expected.frame.drop(columns="_source_file"))
    assert parsed.frame["_source_row"].iloc[0] == 1


def test_a_bom_before_a_header_is_ignored(tmp_path):
    path = write(tmp_path / "bars.csv", b"\xef\xbb\xbf" + "\n".join(lines(FTX)).encode())
    parsed = parse_file(path, symbol="X")
    assert parsed.format == "ohlcv" and len(parsed.frame) == FTX_ROWS
    assert parsed.frame["_source_row"].iloc[0] == 2


def gzip_bomb(path: Path) -> Path:
    """The FTX file, then 10 GiB of one line of digits, as 1 MiB gzip members (about 10 MB)."""
    member = gzip.compress(b"9" * (1 << 20))
    with path.open("wb") as out:
        out.write(FTX.read_bytes())
        for _ in range(10_240):
            out.write(member)
    return path


def test_a_gzip_bomb_stops_at_the_size_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT4_MAX_FILE_BYTES", "4000000")
    path = gzip_bomb(tmp_path / "bars.csv.gz")
    assert_refused(path, FTX_ROWS + 2, "file_size",
                   "expands to more than 4,000,000 bytes (BOT4_MAX_FILE_BYTES) by row 45033",
                   symbol="X")


@pytest.mark.parametrize("name", ["bars.csv", "BTCUSDT-1m-2022-01.zip"])
def test_plain_and_zipped_files_share_the_cap(tmp_path, monkeypatch, name):
    data = klines_csv(ftx_bars())
    limit = len(data) // 2
    path = write(tmp_path / name, data) if name.endswith(".csv") else \
        write_zip(tmp_path / name, {"BTCUSDT-1m-2022-01.csv": data})
    row = data[:limit].count(b"\n") + 1
    assert len(parse_file(path, symbol="X").frame) == FTX_ROWS
    monkeypatch.setenv("BOT4_MAX_FILE_BYTES", str(limit))
    assert_refused(path, row, "file_size", f"by row {row}", symbol="X")


def test_the_size_cap_setting(monkeypatch):
    from bot4_dagster.data.rawfile import DEFAULT_MAX_FILE_BYTES, max_file_bytes

    assert max_file_bytes() == DEFAULT_MAX_FILE_BYTES == 4 * 2**30
    monkeypatch.setenv("BOT4_MAX_FILE_BYTES", "1_000_000")
    assert max_file_bytes() == 1_000_000
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv("BOT4_MAX_FILE_BYTES", bad)
        with pytest.raises(ValueError, match="BOT4_MAX_FILE_BYTES must be a positive number"):
            max_file_bytes()


# --------------------------------------------------------------------------------------------
# rows are lines of the file


def physical_lines(text: str) -> list[int]:
    """The line (1-based) where each record after the header starts, counted independently of
    the reader: a record starts on a non-blank line outside quotes."""
    starts, inside = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if not inside and line.strip():
            starts.append(number)
        inside ^= line.count('"') % 2 == 1
    return starts[1:]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_blank_lines_keep_rows_on_their_lines(tmp_path, newline):
    rows = lines(FTX)[:3_000]
    for at in (2_500, 1_000, 1_000, 10):
        rows.insert(at, "")
    text = newline.join(rows) + newline + newline
    path = write(tmp_path / "bars.csv", text.encode())
    parsed = parse_file(path, symbol="X")
    assert parsed.frame["_source_row"].tolist() == physical_lines(text)
    assert parsed.frame["_source_row"].iloc[-1] == 3_004
    assert any("blank lines or line breaks inside quoted cells" in n for n in parsed.notes)

    set_cell(rows, 2_004, "close", "46.3k")  # original row 2000, after three blank lines
    path = write(tmp_path / "bars.csv", (newline.join(rows) + newline).encode())
    assert_refused(path, 2_004, "dtype", "'46.3k', not a number (rows are lines of the file: "
                   "blank lines and line breaks inside quoted cells count)", symbol="X")


def test_quoted_line_breaks_keep_rows_on_their_lines(tmp_path):
    rows = lines(TRADES)
    for row in (60, 50):
        set_cell(rows, row, "exchange", '"binance\nfutures\n"')
    text = "\n".join(rows) + "\n"
    parsed = parse_file(write(tmp_path / "trades.csv", text))
    assert parsed.frame["_source_row"].tolist() == physical_lines(text)
    assert parsed.frame["_source_row"].iloc[-1] == 10_004
    assert len(parsed.frame) == 9_999

    set_cell(rows, 1_234, "price", "abc")
    path = write(tmp_path / "trades.csv", "\n".join(rows) + "\n")
    assert_refused(path, 1_238, "dtype", "column price holds 'abc'")


def test_running_out_of_memory_is_a_file_size_refusal(tmp_path, monkeypatch):
    """Below the cap a host can still run out of memory (Arrow raises ArrowMemoryError, a
    MemoryError): the user gets the rule and the setting to lower, not a traceback."""
    import pyarrow.csv as pacsv

    def exhausted(*args, **kwargs):
        raise pa.ArrowMemoryError("malloc of size 4294967296 failed")

    monkeypatch.setattr(pacsv, "read_csv", exhausted)
    path = write(tmp_path / "bars.csv", lines(FTX))
    assert_refused(path, None, "file_size", "ran out of memory reading the file; set "
                   "BOT4_MAX_FILE_BYTES below", symbol="X")


@pytest.mark.parametrize("content", ["header", "klines"])
def test_blank_lines_before_the_first_row(tmp_path, content):
    text = ("\n".join(lines(FTX)[:200]) if content == "header"
            else klines_csv(ftx_bars(200)).decode())
    text = "\n\r\n" + text
    name = "bars.csv" if content == "header" else "BTCUSDT-1m-2022-01.csv"
    parsed = parse_file(write(tmp_path / name, text), symbol="X")
    first = 4 if content == "header" else 3
    assert parsed.frame["_source_row"].iloc[0] == first
    assert parsed.format == ("ohlcv" if content == "header" else "binance_klines")
