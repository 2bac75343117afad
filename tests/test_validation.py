"""Value rules, checked by pandera and Great Expectations on damaged copies of the real files in
../shared/data: each copy is parsed and validated as a user's file would be, so the error names
the copy's path, the file row (header = row 1) and the rule, and both validators must agree.

The bad-input matrix at the end goes one step further: a warehouse holds the real files, each
hostile copy is ingested the way the ingest asset does it (files source, prepare, merge), and
the refusal must name file, row and rule while the warehouse stays exactly as it was.
"""

from __future__ import annotations

import gzip
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from archive_builders import aggtrades_csv, klines_csv

from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.merge import MergeResult
from bot4_dagster.data.schemas import DEFAULT_RATIO, RATIO_ENV, plausibility_ratio
from bot4_dagster.data.sources import FileSource, ingest_window
from bot4_dagster.data.validation import ValidationReport, prepare
from bot4_dagster.data.warehouse import Warehouse

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FTX = DATA / "ftx_btc-perp_1m_2022-01.csv.gz"
TRADES = DATA / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
QUOTES = DATA / "binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz"
FTX_LAST_ROW = 45_032  # 45,031 bars after the header
VALIDATORS = ["pandera", "great_expectations"]
ROW = 1_234


@cache
def _lines(path: Path) -> tuple[str, ...]:
    return tuple(gzip.decompress(path.read_bytes()).decode().splitlines())


def column_of(rows: list[str], name: str) -> int:
    return rows[0].split(",").index(name)


def get(rows: list[str], row: int, column: str) -> str:
    return rows[row - 1].split(",")[column_of(rows, column)]


def put(rows: list[str], row: int, column: str | int, value) -> None:
    cells = rows[row - 1].split(",")
    cells[column if isinstance(column, int) else column_of(rows, column)] = str(value)
    rows[row - 1] = ",".join(cells)


def validated(path: Path, **options) -> tuple[pd.DataFrame, ValidationReport]:
    parsed = parse_file(path, **options)
    return prepare(parsed.frame, parsed.table)


def damaged(tmp_path: Path, source: Path, edit: Callable[[list[str]], None]) -> Path:
    """A plain-CSV copy of ``source`` with ``edit`` applied to its lines (row N = rows[N - 1])."""
    rows = list(_lines(source))
    edit(rows)
    path = tmp_path / source.name.removesuffix(".gz")
    path.write_text("\n".join(rows) + "\n")
    return path


def assert_rejected(path: Path, report: ValidationReport, rule: str, row: int) -> DataError:
    """Both validators fail ``rule`` once, at ``row`` of ``path``; the raised error says so."""
    assert not report.passed
    assert [o.check for o in report.outcomes] == VALIDATORS
    for outcome in report.outcomes:
        assert not outcome.passed, outcome.check
        assert outcome.counts.get(rule) == 1, (outcome.check, outcome.counts)
        assert {(v.file, v.row) for v in outcome.violations if v.rule == rule} == {(str(path), row)}
    with pytest.raises(DataError) as caught:
        report.raise_for_errors()
    exc = caught.value
    assert {(v.file, v.row) for v in exc.violations if v.rule == rule} == {(str(path), row)}
    assert {v.row for v in exc.violations} == {row}  # nothing else in the file is blamed
    return exc


def bars(tmp_path: Path, edit: Callable[[list[str]], None]) -> tuple[Path, ValidationReport]:
    path = damaged(tmp_path, FTX, edit)
    return path, validated(path, format="ohlcv", symbol="BTC-PERP")[1]


# --------------------------------------------------------------------------------------------
# clean data


@pytest.mark.parametrize("path, options, rows", [
    (FTX, dict(format="ohlcv", symbol="BTC-PERP"), 45_031),
    (TRADES, {}, 9_999),
    (QUOTES, {}, 9_999),
], ids=["bars", "trades", "quotes"])
def test_real_files_pass_both_validators(path, options, rows):
    clean, report = validated(path, **options)
    assert [(o.check, o.passed, o.counts) for o in report.outcomes] == [
        ("pandera", True, {}), ("great_expectations", True, {})]
    assert (report.rows, report.duplicates_removed, len(clean)) == (rows, 0, rows)
    report.raise_for_errors()


# --------------------------------------------------------------------------------------------
# bars


@pytest.mark.parametrize("column", ["open", "low"])
@pytest.mark.parametrize("value", ["", "NaN", "inf", "-inf", "-46000.5", "0"])
def test_price_not_finite_positive(tmp_path, column, value):
    path, report = bars(tmp_path, lambda rows: put(rows, ROW, column, value))
    assert_rejected(path, report, "price_finite_positive", ROW)


def test_high_below_low(tmp_path):
    def swap(rows):
        high, low = get(rows, ROW, "high"), get(rows, ROW, "low")
        assert float(high) > float(low)
        put(rows, ROW, "high", low)
        put(rows, ROW, "low", high)

    path, report = bars(tmp_path, swap)
    assert_rejected(path, report, "high_ge_low", ROW)


@pytest.mark.parametrize("side", ["above_high", "below_low"])
def test_close_outside_low_high(tmp_path, side):
    def move(rows):
        edge = float(get(rows, ROW, "high" if side == "above_high" else "low"))
        put(rows, ROW, "close", edge + (0.5 if side == "above_high" else -0.5))

    path, report = bars(tmp_path, move)
    assert_rejected(path, report, "open_close_in_range", ROW)


def test_negative_volume(tmp_path):
    path, report = bars(tmp_path, lambda rows: put(rows, ROW, "volume", -1.5))
    assert_rejected(path, report, "volume_non_negative", ROW)


def test_buy_volume_above_volume_in_klines(tmp_path):
    rows = klines_csv(pd.read_csv(FTX).assign(
        ts=lambda b: pd.to_datetime(b["timestamp"], utc=True)).head(2_000)).decode().splitlines()
    cells = rows[ROW - 1].split(",")  # no header: row 1 is the first bar
    put(rows, ROW, 9, float(cells[5]) * 1.01)  # taker_buy_volume > volume
    path = tmp_path / "BTCUSDT-1m-2022-01.csv"
    path.write_text("\n".join(rows) + "\n")

    _, report = validated(path)
    assert_rejected(path, report, "buy_volume_le_volume", ROW)


def test_duplicated_timestamp_with_other_values_names_the_second(tmp_path):
    def repeat(rows):
        put(rows, ROW + 1, "timestamp", get(rows, ROW, "timestamp"))
        assert rows[ROW] != rows[ROW - 1]

    path, report = bars(tmp_path, repeat)
    assert report.duplicates_removed == 0
    exc = assert_rejected(path, report, "ts_strictly_increasing", ROW + 1)
    assert "in the previous row" in exc.first.detail


def test_exact_duplicate_row_is_dropped_silently(tmp_path):
    path = damaged(tmp_path, FTX, lambda rows: rows.insert(ROW, rows[ROW - 1]))
    clean, report = validated(path, format="ohlcv", symbol="BTC-PERP")
    assert report.passed and report.duplicates_removed == 1
    assert len(clean) == 45_031 and clean["ts"].is_unique
    assert ROW + 1 not in set(clean["_source_row"])  # the repeat is the one dropped
    report.raise_for_errors()


def test_timestamp_out_of_order(tmp_path):
    def back(rows):
        earlier = pd.Timestamp(get(rows, ROW, "timestamp")) - pd.Timedelta(hours=1)
        put(rows, ROW, "timestamp", earlier.strftime("%Y-%m-%d %H:%M:%S.%f"))

    path, report = bars(tmp_path, back)
    assert_rejected(path, report, "ts_strictly_increasing", ROW)


def test_timestamp_in_the_future(tmp_path):
    future = pd.Timestamp.now(tz="UTC").normalize() + pd.Timedelta(days=400)
    path, report = bars(tmp_path, lambda rows: put(
        rows, FTX_LAST_ROW, "timestamp", future.strftime("%Y-%m-%d %H:%M:%S.%f")))
    assert_rejected(path, report, "ts_not_in_future", FTX_LAST_ROW)


# --------------------------------------------------------------------------------------------
# trades and quotes


def test_trade_side_not_buy_or_sell(tmp_path):
    path = damaged(tmp_path, TRADES, lambda rows: put(rows, ROW, "side", "unknown"))
    _, report = validated(path)
    assert_rejected(path, report, "side_in_set", ROW)


def test_trade_id_decreasing(tmp_path):
    def lower(rows):
        put(rows, ROW, "id", int(get(rows, ROW - 1, "id")) - 1)

    path = damaged(tmp_path, TRADES, lower)
    _, report = validated(path)
    exc = assert_rejected(path, report, "trade_id_strictly_increasing", ROW)
    assert "in the previous row" in exc.first.detail


def test_bid_above_ask(tmp_path):
    def cross(rows):
        put(rows, ROW, "bid_price", float(get(rows, ROW, "ask_price")) + 0.01)

    path = damaged(tmp_path, QUOTES, cross)
    _, report = validated(path)
    assert_rejected(path, report, "bid_le_ask", ROW)


@pytest.mark.parametrize("column", ["bid_amount", "ask_amount"])
def test_negative_quote_size(tmp_path, column):
    path = damaged(tmp_path, QUOTES, lambda rows: put(rows, ROW, column, -0.001))
    _, report = validated(path)
    assert_rejected(path, report, "size_non_negative", ROW)


# --------------------------------------------------------------------------------------------
# the message a user reads


def test_message_names_file_row_and_rule(tmp_path):
    path, report = bars(tmp_path, lambda rows: put(rows, ROW, "volume", -1.5))
    with pytest.raises(DataError) as caught:
        report.raise_for_errors()
    message = str(caught.value)
    assert f"{path}, row {ROW}: rule 'volume_non_negative' violated" in message
    assert "-1.5" in message


def test_message_lists_ten_and_counts_the_rest(tmp_path):
    bad = list(range(100, 125))

    def many(rows):
        for row in bad:
            put(rows, row, "volume", -1.5)

    path, report = bars(tmp_path, many)
    assert [o.counts for o in report.outcomes] == [{"volume_non_negative": 25}] * 2
    with pytest.raises(DataError) as caught:
        report.raise_for_errors()
    exc = caught.value
    listed = [line for line in str(exc).splitlines() if "rule 'volume_non_negative'" in line]
    assert len(listed) == 10
    assert all(f"{path}, row {row}:" in line for row, line in zip(bad, listed, strict=False))
    assert exc.total == 25
    assert str(exc).splitlines()[-1].strip() == "... and 15 more violation(s)"


# --------------------------------------------------------------------------------------------
# plausibility: finite, positive and still garbage


@pytest.mark.parametrize("column, value, rule", [
    ("volume", "1e308", "volume_plausible"),
    ("volume", "1e-320", "volume_plausible"),
    ("low", "1e-320", "price_plausible"),
    ("low", "4.6e-3", "price_plausible"),  # normal, but 1e7 times below the median close
], ids=["volume_huge", "volume_subnormal", "price_subnormal", "price_far_below_median"])
def test_implausible_bar_values(tmp_path, column, value, rule):
    path, report = bars(tmp_path, lambda rows: put(rows, ROW, column, value))
    exc = assert_rejected(path, report, rule, ROW)
    assert f"column {column}: {float(value)!r} is" in exc.first.detail


@pytest.mark.parametrize("source, column, value, rule", [
    (TRADES, "price", "1e308", "price_plausible"),
    (TRADES, "amount", "1e-320", "volume_plausible"),
    (QUOTES, "ask_price", "1e308", "price_plausible"),
    (QUOTES, "bid_amount", "1e-320", "volume_plausible"),
], ids=["trade_price", "trade_amount", "ask", "bid_size"])
def test_implausible_trade_and_quote_values(tmp_path, source, column, value, rule):
    path = damaged(tmp_path, source, lambda rows: put(rows, ROW, column, value))
    _, report = validated(path)
    assert_rejected(path, report, rule, ROW)


def test_the_plausibility_ratio_is_configurable(tmp_path, monkeypatch):
    """A trade at 5,000x the median passes the default ratio (1e6) and fails a ratio of 1,000
    (which the real amounts, at most 293x their median, still pass)."""
    def spike(rows):
        put(rows, ROW, "price", float(get(rows, ROW, "price")) * 5_000)

    path = damaged(tmp_path, TRADES, spike)
    assert plausibility_ratio() == DEFAULT_RATIO
    assert validated(path)[1].passed
    monkeypatch.setenv(RATIO_ENV, "1000")
    exc = assert_rejected(path, validated(path)[1], "price_plausible", ROW)
    assert ("more than 1000 times away from the median 9681.93 of BTCUSDT's price"
            in exc.first.detail)
    assert RATIO_ENV in exc.first.detail
    monkeypatch.setenv(RATIO_ENV, "0.5")
    with pytest.raises(ValueError, match=RATIO_ENV):
        plausibility_ratio()


def test_medians_are_per_symbol(tmp_path):
    """Two instruments 1e8 apart in price are each plausible against their own median."""
    def split(rows):
        for row in range(2, len(rows) + 1, 2):
            put(rows, row, "symbol", "SHIBUSDT")
            put(rows, row, "price", float(get(rows, row, "price")) * 1e-8)

    path = damaged(tmp_path, TRADES, split)
    frame, report = validated(path)
    assert report.passed, [str(v) for v in report.violations()]
    assert sorted(frame["symbol"].unique()) == ["BTCUSDT", "SHIBUSDT"]


# --------------------------------------------------------------------------------------------
# the bad-input matrix: refused with file, row and rule, nothing stored

KLINES_NAME = "BTCUSDT-1m-2022-01.csv"
AGGTRADES_NAME = "BTCUSDT-aggTrades-2020-02-22.csv"
FTX_OPTIONS = dict(symbol="BTC-PERP", volume_unit="quote")
CAP = 4_000_000  # BOT4_MAX_FILE_BYTES for the bombs: above the 3.2 MB of the FTX file
YEAR_3000_MS = 32_503_680_000_000


def ingest(warehouse: Warehouse, path: Path, table: str, partition: str,
           **options) -> MergeResult:
    """What the ingest asset does for one symbol partition: the files source loads the window,
    ``prepare`` validates it (blocking), and only a frame that passed is merged."""
    source = FileSource(path, **options)
    loaded = source.load(table, partition, *ingest_window(source, table, partition))
    frame, report = prepare(loaded.frame, table)
    report.raise_for_errors()
    return warehouse.merge(table, frame)


def contents(warehouse: Warehouse) -> dict[str, pd.DataFrame]:
    return {table: warehouse.query(f"SELECT * FROM {table} ORDER BY ALL")
            for table in sorted(warehouse.row_counts())}


@pytest.fixture(scope="module")
def stored_template(tmp_path_factory) -> Path:
    """A warehouse holding the three real files, ingested as the asset ingests them."""
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    warehouse = Warehouse(path)
    assert ingest(warehouse, FTX, "bars", "BTC-PERP", **FTX_OPTIONS).inserted == 45_031
    assert ingest(warehouse, TRADES, "trades", "BTCUSDT").inserted == 9_999
    assert ingest(warehouse, QUOTES, "quotes", "BTCUSDT").inserted == 9_999
    return path


@pytest.fixture
def stored(stored_template, tmp_path) -> Warehouse:
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(stored_template, copy)
    return Warehouse(copy)


def edited(source: Path, edit: Callable[[list[str]], None], name: str | None = None,
           encoding: str = "utf-8") -> Callable[[Path], Path]:
    """A maker of a plain-CSV copy of ``source`` with ``edit`` applied to its lines."""
    def make(tmp_path: Path) -> Path:
        rows = list(_lines(source))
        edit(rows)
        path = tmp_path / (name or source.name.removesuffix(".gz"))
        path.write_bytes(("\n".join(rows) + "\n").encode(encoding))
        return path
    return make


def ftx_rows(n: int, stamp: Callable[[pd.Timestamp], str], column: str = "date") -> list[str]:
    """The first ``n`` FTX bars as daily bars from 2022-01-01, dated by ``stamp``."""
    days = pd.date_range("2022-01-01", periods=n)
    return [f"{column},open,high,low,close,volume"] + [
        f"{stamp(day)},{line.split(',', 1)[1]}"
        for day, line in zip(days, _lines(FTX)[1:], strict=False)]


def written(name: str, rows: Callable[[], list[str]]) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_text("\n".join(rows()) + "\n")
        return path
    return make


def klines(edit: Callable[[list[str]], None]) -> Callable[[Path], Path]:
    def rows() -> list[str]:
        bars = pd.read_csv(FTX).head(2_000)
        bars["ts"] = pd.to_datetime(bars.pop("timestamp"), utc=True)
        lines = klines_csv(bars).decode().splitlines()
        edit(lines)
        return lines
    return written(KLINES_NAME, rows)


def set_cell(rows: list[str], row: int, index: int, value) -> None:
    cells = rows[row - 1].split(",")
    cells[index] = str(value)
    rows[row - 1] = ",".join(cells)


def aggtrades(edit: Callable[[list[str]], None]) -> Callable[[Path], Path]:
    def rows() -> list[str]:
        lines = aggtrades_csv(pd.read_csv(TRADES)).decode().splitlines()
        edit(lines)
        return lines
    return written(AGGTRADES_NAME, rows)


def gzip_bomb(tmp_path: Path) -> Path:
    """The FTX file, then a line of digits that goes on for 10 GiB: concatenated gzip members
    of 1 MiB each, so the file itself stays small."""
    member = gzip.compress(b"9" * (1 << 20))
    path = tmp_path / "ftx_bomb.csv.gz"
    with path.open("wb") as out:
        out.write(FTX.read_bytes())
        for _ in range(10_240):
            out.write(member)
    return path


def zip_bomb(tmp_path: Path) -> Path:
    """A Binance-style kline zip whose one CSV is 2,000 real bars, then 64 MiB of digits."""
    bars = pd.read_csv(FTX).head(2_000)
    bars["ts"] = pd.to_datetime(bars.pop("timestamp"), utc=True)
    path = tmp_path / "BTCUSDT-1m-2022-01.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open(KLINES_NAME, "w") as member:
        member.write(klines_csv(bars))
        for _ in range(64):
            member.write(b"1" * (1 << 20))
    return path


def hidden_and_unreadable(tmp_path: Path) -> Path:
    """A folder of exports: the real bars, hidden garbage (skipped) and a visible garbage CSV."""
    folder = tmp_path / "exports"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / "bars.csv").write_bytes(gzip.decompress(FTX.read_bytes()))
    (folder / ".ipynb_checkpoints" / "bars-checkpoint.csv").write_text("not, market\ndata\n")
    (folder / "._bars.csv").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "notes.csv").write_text("what,why\nbuy,dip\n")
    return folder


@dataclass(frozen=True)
class Bad:
    """One hostile input made from a real file, and how it must be refused."""

    id: str
    make: Callable[[Path], Path]
    table: str
    symbol: str
    rule: str
    row: int | None
    detail: str  # words the message must hold
    options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    file: str | None = None  # the refused file, inside the directory ``make`` returns


def _blank_lines_then_nan(rows: list[str]) -> None:
    put(rows, ROW, "close", "NaN")
    rows.insert(99, "")
    rows.insert(199, "")


def _quoted_line_break_then_negative(rows: list[str]) -> None:
    put(rows, ROW, "price", "-9682")
    put(rows, 50, "exchange", '"binance\nfutures"')


def _first_row_with_offset(rows: list[str]) -> None:
    put(rows, 2, "timestamp", get(rows, 2, "timestamp") + "+00:00")


def _long_line(rows: list[str]) -> None:
    put(rows, ROW, "volume", get(rows, ROW, "volume") + "0" * 200_000)


def _duplicated_column(rows: list[str]) -> None:
    for row in range(1, len(rows) + 1):
        rows[row - 1] += "," + get(rows, row, "close")


MATRIX = [
    Bad("integer_dates", written("daily.csv", lambda: ftx_rows(40, lambda d: f"{d:%Y%m%d}")),
        "bars", "BTC-PERP", "timestamp_ambiguous", 2,
        "date = 20220101 reads as 2022-01-01 (%Y%m%d) or as epoch seconds, 1970-08-23",
        FTX_OPTIONS),
    Bad("day_or_month_first", written("daily.csv", lambda: ftx_rows(12, lambda d: f"{d:%m/%d/%Y}")),
        "bars", "BTC-PERP", "timestamp_ambiguous", 3,
        "'01/02/2022' reads as 2022-01-02 (month first, %m/%d/%Y) and as 2022-02-01 (day first",
        FTX_OPTIONS),
    Bad("offset_then_naive", edited(FTX, _first_row_with_offset), "bars", "BTC-PERP",
        "timestamp_zone_consistent", 3, "has no zone, row 2 ('2021-12-31 23:01:00.000000+00:00') "
        "has one", FTX_OPTIONS),
    Bad("year_2300_text", edited(FTX, lambda r: put(r, ROW, "timestamp", "2300-01-01 00:00:00")),
        "bars", "BTC-PERP", "timestamp_in_range", ROW,
        "'2300-01-01 00:00:00' is outside 1677-09-21 .. 2262-04-11", FTX_OPTIONS),
    Bad("year_3000_epoch_us",
        edited(TRADES, lambda r: put(r, ROW, "timestamp", YEAR_3000_MS * 1000)), "trades",
        "BTCUSDT", "timestamp_in_range", ROW,
        "(microseconds since 1970) is 3000-01-01T00:00:00, outside 1677-09-21 .. 2262-04-11"),
    Bad("year_3000_klines_ms", klines(lambda r: set_cell(r, ROW, 0, YEAR_3000_MS)), "bars",
        "BTCUSDT", "timestamp_in_range", ROW, "(milliseconds since 1970) is 3000-01-01T00:00:00"),
    Bad("volume_1e308", edited(FTX, lambda r: put(r, ROW, "volume", "1e308")), "bars",
        "BTC-PERP", "volume_plausible", ROW, "column volume: 1e+308 is above 1e+18", FTX_OPTIONS),
    Bad("price_subnormal", edited(FTX, lambda r: put(r, ROW, "low", "1e-320")), "bars",
        "BTC-PERP", "price_plausible", ROW, "column low: 1e-320 is a subnormal float", FTX_OPTIONS),
    Bad("trade_price_1e308", edited(TRADES, lambda r: put(r, ROW, "price", "1e308")), "trades",
        "BTCUSDT", "price_plausible", ROW, "column price: 1e+308 is above 1e+18"),
    Bad("quote_size_subnormal", edited(QUOTES, lambda r: put(r, ROW, "bid_amount", "1e-320")),
        "quotes", "BTCUSDT", "volume_plausible", ROW, "column bid_size: 1e-320 is a subnormal"),
    Bad("trade_price_off_the_median", edited(TRADES, lambda r: put(r, ROW, "price", "0.001")),
        "trades", "BTCUSDT", "price_plausible", ROW,
        "is below 0.00968193, more than 1e+06 times away from the median 9681.93"),
    Bad("trade_id_above_int64", edited(TRADES, lambda r: put(r, ROW, "id", 2**63)), "trades",
        "BTCUSDT", "dtype", ROW, "column id holds 9.223372036854776e+18, outside int64"),
    Bad("is_buyer_maker_not_boolean", aggtrades(lambda r: set_cell(r, ROW, 6, "maybe")),
        "trades", "BTCUSDT", "dtype", ROW,
        "column is_buyer_maker holds 'maybe', not true or false"),
    Bad("is_buyer_maker_empty", aggtrades(lambda r: set_cell(r, ROW, 6, "")), "trades",
        "BTCUSDT", "dtype", ROW, "column is_buyer_maker has an empty cell"),
    Bad("duplicated_column", edited(FTX, _duplicated_column), "bars", "BTC-PERP",
        "unique_columns", 1, "column 'close' appears twice in the header (columns 5 and 7)",
        FTX_OPTIONS),
    Bad("line_over_the_csv_field_limit", edited(FTX, _long_line), "bars", "BTC-PERP",
        "line_length", ROW, "the line is 200,0", FTX_OPTIONS),
    Bad("latin1_symbol", edited(TRADES, lambda r: put(r, ROW, "symbol", "BTC\u00dcSDT"),
                                encoding="latin-1"),
        "trades", "BTCUSDT", "symbol_valid", ROW, "b'BTC\\xdcSDT', which is not UTF-8 text"),
    Bad("latin1_header", edited(TRADES, lambda r: r.__setitem__(0, r[0].replace(
        "exchange", "b\u00f6rse")), encoding="latin-1"),
        "trades", "BTCUSDT", "encoding", 1, "the header is not UTF-8 text"),
    Bad("gzip_bomb", gzip_bomb, "bars", "BTC-PERP", "file_size", 45_033,
        "expands to more than 4,000,000 bytes (BOT4_MAX_FILE_BYTES) by row 45033", FTX_OPTIONS,
        env={"BOT4_MAX_FILE_BYTES": str(CAP)}),
    Bad("zip_bomb", zip_bomb, "bars", "BTCUSDT", "file_size", 2_001,
        "expands to more than 4,000,000 bytes", env={"BOT4_MAX_FILE_BYTES": str(CAP)}),
    Bad("blank_lines_do_not_shift_rows", edited(FTX, _blank_lines_then_nan), "bars", "BTC-PERP",
        "price_finite_positive", ROW + 2, "column close: nan", FTX_OPTIONS),
    Bad("quoted_line_break_does_not_shift_rows", edited(TRADES, _quoted_line_break_then_negative),
        "trades", "BTCUSDT", "price_finite_positive", ROW + 1, "column price: -9682.0"),
    Bad("unreadable_file_beside_hidden_ones", hidden_and_unreadable, "bars", "BTC-PERP",
        "recognised_format", None, "header ['what', 'why']", FTX_OPTIONS, file="notes.csv"),
]


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_bad_input_is_refused_with_file_row_and_rule_and_nothing_is_stored(
        case, stored, tmp_path, monkeypatch):
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    path = case.make(tmp_path)
    before = contents(stored)
    assert set(before) == {"market.bars", "market.trades", "market.quotes"}

    with pytest.raises(DataError) as caught:
        ingest(stored, path, case.table, case.symbol, **case.options)

    violation = caught.value.first
    file = path / case.file if case.file else path
    assert (violation.file, violation.row, violation.rule) == (str(file), case.row, case.rule)
    assert case.detail in violation.detail, violation.detail
    where = str(file) if case.row is None else f"{file}, row {case.row}"
    assert f"{where}: rule '{case.rule}' violated" in str(caught.value)
    after = contents(stored)
    assert after.keys() == before.keys()
    for table, frame in before.items():
        pd.testing.assert_frame_equal(after[table], frame, obj=table)


def test_the_same_files_without_the_damage_are_stored(stored, tmp_path):
    """The matrix refuses the damage, not the files: the undamaged folder merges as unchanged,
    with the hidden garbage beside it skipped."""
    folder = hidden_and_unreadable(tmp_path)
    (folder / "notes.csv").unlink()
    result = ingest(stored, folder, "bars", "BTC-PERP", **FTX_OPTIONS)
    assert (result.inserted, result.unchanged) == (0, 45_031)


def test_trade_ids_above_2_53_are_stored_exactly(stored, tmp_path):
    """Ids past 2^53, where a float can no longer count by one, arrive in the warehouse as
    written; through float64 neighbours would merge into one id."""
    offset = 2**53

    def shift(rows):
        for row in range(2, len(rows) + 1):
            put(rows, row, "symbol", "BTCBIG")
            put(rows, row, "id", int(get(rows, row, "id")) + offset)

    path = edited(TRADES, shift)(tmp_path)
    assert ingest(stored, path, "trades", "BTCBIG").inserted == 9_999
    ids = stored.query("SELECT trade_id FROM market.trades WHERE symbol = 'BTCBIG' "
                       "ORDER BY trade_id")["trade_id"].to_numpy()
    expected = pd.read_csv(TRADES)["id"].to_numpy(np.int64) + offset
    np.testing.assert_array_equal(ids, expected)
    assert len(np.unique(expected.astype(np.float64))) < len(expected)  # what float would do
