"""Value rules, checked by pandera and Great Expectations on damaged copies of the real files in
../shared/data: each copy is parsed and validated as a user's file would be, so the error names
the copy's path, the file row (header = row 1) and the rule, and both validators must agree.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from archive_builders import klines_csv

from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.validation import ValidationReport, prepare

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
    assert all(f"{path}, row {row}:" in line for row, line in zip(bad, listed))
    assert exc.total == 25
    assert str(exc).splitlines()[-1].strip() == "... and 15 more violation(s)"
