"""Ingest writes merge by key: nothing stored is lost, a contradiction writes nothing, and the
result does not depend on how often or in which order windows are merged. Real FTX bars,
Binance trades and quotes; every incoming frame is read from a real file (a copy of part of one)
so that errors name a real file and row."""

from __future__ import annotations

import gzip
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from conftest import FTX, QUOTES, TRADES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.tables import PROVENANCE
from bot4_dagster.data.warehouse import Slice, Span, Warehouse

UTC = "UTC"


@cache
def lines(path: Path) -> tuple[str, ...]:
    return tuple(gzip.decompress(path.read_bytes()).decode().splitlines())


def export(path: Path, source: Path, keep, edit=None) -> Path:
    """A copy of ``source`` with the header and the data lines whose first cell ``keep`` accepts
    (``edit`` may change a line: (row, line) -> line)."""
    header, *rows = lines(source)
    kept = [header]
    for number, line in enumerate(rows, start=2):
        if keep(line):
            kept.append(edit(number, line) if edit else line)
    path.write_text("\n".join(kept) + "\n")
    return path


def days(first: str, last: str):
    """FTX lines whose timestamp falls on the days first..last (inclusive, ISO dates)."""
    return lambda line: first <= line[:10] <= last


def bars_file(path: Path, first: str, last: str, edit=None) -> pd.DataFrame:
    return parse_file(export(path, FTX, days(first, last), edit), symbol="BTC-PERP",
                      volume_unit="quote").frame


def stored(warehouse: Warehouse, table: str = "bars") -> pd.DataFrame:
    return warehouse.read(Slice(f"market.{table}", {}))


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in PROVENANCE if c in frame]).reset_index(drop=True)


def test_a_file_covering_part_of_the_window_keeps_the_rest(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    two_days = bars_file(tmp_path / "jan01-02.csv", "2022-01-01", "2022-01-02")
    first = warehouse.merge("bars", two_days)
    assert (first.inserted, first.unchanged) == (2_880, 0)

    result = warehouse.merge("bars", bars_file(tmp_path / "jan01.csv", "2022-01-01", "2022-01-01"))

    assert (result.inserted, result.unchanged) == (0, 1_440)
    assert result.spans == {"BTC-PERP": Span(2_880, pd.Timestamp("2022-01-01", tz=UTC),
                                             pd.Timestamp("2022-01-02 23:59", tz=UTC))}
    pd.testing.assert_frame_equal(stored(warehouse), plain(two_days))


def test_a_source_lacking_a_month_leaves_that_month(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    everything = parse_file(FTX, symbol="BTC-PERP", volume_unit="quote").frame
    warehouse.merge("bars", everything)
    # a later export holds December and February only
    gap = parse_file(export(tmp_path / "no-january.csv", FTX,
                            lambda line: not line.startswith("2022-01")),
                     symbol="BTC-PERP", volume_unit="quote").frame
    assert len(gap) == 59 + 332  # 2021-12-31 23:01.., 2022-02-01 ..05:31

    result = warehouse.merge("bars", gap)

    assert (result.inserted, result.unchanged) == (0, 391)
    assert result.spans["BTC-PERP"].rows == 45_031
    pd.testing.assert_frame_equal(stored(warehouse), plain(everything))


def test_new_rows_on_both_sides_are_added(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.merge("bars", bars_file(tmp_path / "a.csv", "2022-01-10", "2022-01-10"))
    result = warehouse.merge("bars", bars_file(tmp_path / "b.csv", "2022-01-09", "2022-01-11"))
    assert (result.inserted, result.unchanged) == (2_880, 1_440)
    span = result.spans["BTC-PERP"]
    assert (span.rows, span.first_ts, span.last_ts) == (
        4_320, pd.Timestamp("2022-01-09", tz=UTC), pd.Timestamp("2022-01-11 23:59", tz=UTC))
    assert stored(warehouse)["ts"].is_monotonic_increasing


def test_a_conflicting_close_names_file_row_and_rule_and_writes_nothing(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.merge("bars", bars_file(tmp_path / "jan01-02.csv", "2022-01-01", "2022-01-02"))
    before = stored(warehouse)
    row = 1 + 59 + 100  # the header, 59 December bars, then January 1 from 00:00
    original = lines(FTX)[row - 1].split(",")

    def changed_close(number, line):
        if number != row:
            return line
        cells = line.split(",")
        cells[4] = str(float(cells[4]) + 0.5)
        return ",".join(cells)

    path = export(tmp_path / "jan.csv", FTX, days("2021-12-31", "2022-01-03"), changed_close)
    incoming = parse_file(path, symbol="BTC-PERP", volume_unit="quote").frame

    with pytest.raises(DataError) as caught:
        warehouse.merge("bars", incoming)

    error = caught.value
    assert len(error.violations) == 1
    violation = error.first
    assert (violation.file, violation.row, violation.rule) == (str(path), row,
                                                               "conflicts_with_stored")
    close = float(original[4])
    assert violation.detail.startswith(f"column close: stored {close!r}, incoming {close + 0.5!r}")
    assert f"ts={pd.Timestamp(original[0], tz=UTC).isoformat()}" in violation.detail
    # nothing written: not even the new December and January 3 rows of the same frame
    pd.testing.assert_frame_equal(stored(warehouse), before)


def test_one_symbols_conflict_writes_no_other_symbol(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    day = bars_file(tmp_path / "d.csv", "2022-01-05", "2022-01-05")
    warehouse.merge("bars", day)
    other = day.assign(symbol="ETH-PERP")
    broken = day.assign(volume=day["volume"] * 2)
    with pytest.raises(DataError, match="conflicts_with_stored") as caught:
        warehouse.merge("bars", pd.concat([other, broken], ignore_index=True))
    assert caught.value.total == 1_440
    assert caught.value.first.detail.startswith("column volume:")
    assert set(stored(warehouse)["symbol"]) == {"BTC-PERP"}


def test_a_missing_optional_value_conflicts_with_a_stored_one(tmp_path):
    """A null is a value: bars stored with a trade count are not silently matched by bars
    without one."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    day = bars_file(tmp_path / "d.csv", "2022-01-05", "2022-01-05")
    warehouse.merge("bars", day.assign(trade_count=pd.array(range(1_440), dtype="Int64")))
    with pytest.raises(DataError) as caught:
        warehouse.merge("bars", day)
    assert caught.value.first.detail.startswith("column trade_count: stored 0, incoming null")


# --------------------------------------------------------------------------------------------
# quotes: the quotes of one timestamp are one group


@pytest.fixture(scope="module")
def quotes() -> pd.DataFrame:
    return parse_file(QUOTES).frame


def group_start(quotes: pd.DataFrame, near: int) -> int:
    """The first position at or after ``near`` that starts a new timestamp."""
    ts = quotes["ts"]
    return next(i for i in range(near, len(ts)) if ts.iat[i] != ts.iat[i - 1])


def shared_timestamp(quotes: pd.DataFrame) -> pd.Timestamp:
    """The first timestamp with two different quotes."""
    values = plain(quotes)
    pairs = values.groupby("ts").filter(lambda g: len(g) == 2 and not g.iloc[0].equals(g.iloc[1]))
    return pairs["ts"].iat[0]


def test_quotes_merge_by_whole_timestamp_groups(tmp_path, quotes):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    cut = group_start(quotes, 5_000)
    warehouse.merge("quotes", quotes.iloc[:cut])
    result = warehouse.merge("quotes", quotes)
    assert (result.inserted, result.unchanged) == (len(quotes) - cut, cut)
    pd.testing.assert_frame_equal(stored(warehouse, "quotes"), plain(quotes))
    again = warehouse.merge("quotes", quotes)
    assert (again.inserted, again.unchanged) == (0, len(quotes))


@pytest.mark.parametrize("change", ["drop_one", "swap_order", "add_one", "change_bid"])
def test_a_quote_group_that_differs_from_the_stored_one_is_refused(tmp_path, quotes, change):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.merge("quotes", quotes)
    ts = shared_timestamp(quotes)
    at = quotes.index[quotes["ts"] == ts]
    first, second = quotes.loc[at[0]], quotes.loc[at[1]]
    assert not first.drop(list(PROVENANCE)).equals(second.drop(list(PROVENANCE)))
    if change == "drop_one":
        incoming = quotes.drop(index=at[1])
    elif change == "swap_order":
        incoming = quotes.copy()
        incoming.loc[at[0]], incoming.loc[at[1]] = second, first
    elif change == "add_one":
        incoming = pd.concat([quotes.loc[:at[1]], quotes.loc[[at[1]]].assign(bid_size=9.0),
                              quotes.loc[at[1] + 1:]], ignore_index=True)
    else:
        incoming = quotes.copy()
        incoming.loc[at[1], "bid"] -= 0.01
    before = stored(warehouse, "quotes")

    with pytest.raises(DataError) as caught:
        warehouse.merge("quotes", incoming)

    violation = caught.value.first
    assert violation.rule == "conflicts_with_stored" and violation.file == str(QUOTES)
    if change in ("drop_one", "add_one"):
        assert violation.row == first["_source_row"]  # the group's first row
        assert f"at ts={ts.isoformat()} are 2 row(s), the incoming ones " in violation.detail
    elif change == "swap_order":
        assert violation.row == second["_source_row"]  # now first in the group, differs
    else:
        assert violation.row == second["_source_row"]
        assert violation.detail == (f"column bid: stored {float(second['bid'])!r}, incoming "
                                    f"{float(second['bid']) - 0.01!r} (stored quote 2 of 2 at "
                                    f"ts={ts.isoformat()})")
    pd.testing.assert_frame_equal(stored(warehouse, "quotes"), before)


# --------------------------------------------------------------------------------------------
# trades: key trade_id, ts must stay in order across stored and new rows


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    return parse_file(TRADES).frame


def test_trades_fill_a_gap_between_stored_ones(tmp_path, trades):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.merge("trades", pd.concat([trades.iloc[:3_000], trades.iloc[7_000:]]))
    result = warehouse.merge("trades", trades.iloc[2_000:8_000])
    assert (result.inserted, result.unchanged) == (4_000, 2_000)
    table = stored(warehouse, "trades")
    pd.testing.assert_frame_equal(table, plain(trades))
    assert table["trade_id"].is_monotonic_increasing


def test_a_trade_whose_ts_breaks_the_order_at_the_seam_is_refused(tmp_path, trades):
    """New trade ids after the stored ones, but stamped before the last stored trade."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.merge("trades", trades.iloc[:5_000])
    last = trades.iloc[4_999]
    later = trades.iloc[5_000:5_100].assign(ts=trades["ts"].iloc[5_000:5_100] - pd.Timedelta("1h"))
    assert later["ts"].iat[0] < last["ts"]

    with pytest.raises(DataError) as caught:
        warehouse.merge("trades", later)

    violation = caught.value.first
    assert (violation.file, violation.row, violation.rule) == (
        str(TRADES), later["_source_row"].iat[0], "ts_non_decreasing")
    assert f"comes after the stored row with trade_id={last['trade_id']}" in violation.detail
    assert len(stored(warehouse, "trades")) == 5_000


def test_a_trade_that_must_precede_a_stored_one_but_is_later_is_refused(tmp_path, trades):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.merge("trades", trades.iloc[5_000:])
    early = trades.iloc[4_900:5_000].assign(ts=trades["ts"].iloc[4_900:5_000] + pd.Timedelta("1h"))
    with pytest.raises(DataError) as caught:
        warehouse.merge("trades", early)
    violation = caught.value.first
    assert (violation.row, violation.rule) == (early["_source_row"].iat[-1], "ts_non_decreasing")
    assert (f"of the stored row with trade_id={trades['trade_id'].iat[5_000]} that follows it"
            in violation.detail)


def test_a_trade_id_stored_with_another_price_conflicts(tmp_path, trades):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.merge("trades", trades)
    changed = trades.iloc[100:200].copy()
    changed.loc[changed.index[10], "price"] += 1
    with pytest.raises(DataError) as caught:
        warehouse.merge("trades", changed)
    violation = caught.value.first
    assert (violation.row, violation.rule) == (changed["_source_row"].iat[10],
                                               "conflicts_with_stored")
    assert violation.detail.startswith("column price:")
    assert f"trade_id={changed['trade_id'].iat[10]}" in violation.detail


def test_an_unvalidated_frame_out_of_order_is_refused(tmp_path, trades):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    swapped = pd.concat([trades.iloc[:10], trades.iloc[[11, 10]], trades.iloc[12:20]])
    with pytest.raises(DataError) as caught:
        warehouse.merge("trades", swapped)
    assert caught.value.first.rule == "trade_id_strictly_increasing"
    assert caught.value.first.row == trades["_source_row"].iat[10]
    assert warehouse.row_counts() == {}  # not even the table: it was created in the transaction


# --------------------------------------------------------------------------------------------
# properties: merging is idempotent and commutative


@cache
def sources() -> dict[str, pd.DataFrame]:
    ftx = parse_file(FTX, symbol="BTC-PERP", volume_unit="quote").frame.iloc[:3_000]
    return {"bars": ftx, "trades": parse_file(TRADES).frame.iloc[:3_000],
            "quotes": parse_file(QUOTES).frame.iloc[:3_000]}


def window(frame: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    """All rows with ts between those at positions a and b: timestamps are never split."""
    lo, hi = sorted((frame["ts"].iat[a], frame["ts"].iat[b]))
    return frame[(frame["ts"] >= lo) & (frame["ts"] <= hi)]


positions = st.integers(0, 2_999)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=st.sampled_from(["bars", "trades", "quotes"]), a=positions, b=positions,
       c=positions, d=positions)
def test_merges_are_idempotent_and_commutative(table, a, b, c, d):
    frame = sources()[table]
    first, second = window(frame, a, b), window(frame, c, d)
    with tempfile.TemporaryDirectory() as tmp:
        ab, ba = Warehouse(Path(tmp) / "ab.duckdb"), Warehouse(Path(tmp) / "ba.duckdb")
        ab.merge(table, first)
        once = stored(ab, table)
        again = ab.merge(table, first)
        assert (again.inserted, again.unchanged) == (0, len(first))
        pd.testing.assert_frame_equal(stored(ab, table), once)
        ab.merge(table, second)
        ba.merge(table, second)
        ba.merge(table, first)
        union = frame[frame.index.isin(first.index) | frame.index.isin(second.index)]
        pd.testing.assert_frame_equal(stored(ab, table), stored(ba, table))
        pd.testing.assert_frame_equal(stored(ab, table), plain(union))


MERGE_DAYS = """
import sys
import pandas as pd
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.warehouse import Warehouse
path, ftx, first, last = sys.argv[1:]
bars = parse_file(ftx, symbol="BTC-PERP", volume_unit="quote").frame
day = bars["ts"].dt.strftime("%Y-%m-%d")
result = Warehouse(path, timeout_s=300).merge("bars", bars[(day >= first) & (day <= last)])
print(result.inserted, result.unchanged)
"""


def test_concurrent_merges_of_overlapping_windows_lose_nothing(tmp_path):
    """Each writer reads the stored rows inside its own transaction, under the lock: whatever
    the interleaving, every row of every window is stored once."""
    path = tmp_path / "w.duckdb"
    windows = [("2022-01-01", "2022-01-03"), ("2022-01-02", "2022-01-05"),
               ("2022-01-04", "2022-01-04"), ("2022-01-05", "2022-01-06")]
    writers = [subprocess.Popen([sys.executable, "-c", MERGE_DAYS, str(path), str(FTX), a, b],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for a, b in windows]
    outputs = [w.communicate(timeout=600) for w in writers]
    assert [w.returncode for w in writers] == [0] * 4, [err for _, err in outputs]
    counts = [tuple(map(int, out.split())) for out, _ in outputs]
    assert sum(inserted for inserted, _ in counts) == 6 * 1_440
    assert sum(i + u for i, u in counts) == (3 + 4 + 1 + 2) * 1_440
    everything = parse_file(FTX, symbol="BTC-PERP", volume_unit="quote").frame
    six_days = everything[everything["ts"].dt.strftime("%Y-%m-%d").between("2022-01-01",
                                                                          "2022-01-06")]
    pd.testing.assert_frame_equal(stored(Warehouse(path)), plain(six_days))
