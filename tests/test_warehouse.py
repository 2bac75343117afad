"""The warehouse is never half-written and serialises writers across processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import FTX, QUOTES

from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.warehouse import SPAN_COLUMNS, Slice, Span, Warehouse, WarehouseLocked

DAY = (pd.Timestamp("2022-01-10", tz="UTC"), pd.Timestamp("2022-01-11", tz="UTC"))


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return parse_file(FTX, symbol="BTC-PERP").frame


def day_slice(start=DAY[0], end=DAY[1]) -> Slice:
    return Slice("market.bars", {"symbol": ["BTC-PERP"]}, "ts", start, end)


def test_replace_swaps_exactly_the_slice(tmp_path, bars):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    everything = Slice("market.bars", {"symbol": ["BTC-PERP"]})
    assert warehouse.replace(everything, bars) == 45_031
    one_day = bars[(bars.ts >= DAY[0]) & (bars.ts < DAY[1])].assign(close=lambda f: f.close + 1)
    assert warehouse.replace(day_slice(), one_day) == 1_440
    stored = warehouse.read(everything)
    assert len(stored) == 45_031
    inside = (stored.ts >= DAY[0]) & (stored.ts < DAY[1])
    assert (stored.close[inside].to_numpy() == one_day.close.to_numpy()).all()
    outside = bars.close[~bars.index.isin(one_day.index)]
    assert (stored.close[~inside].to_numpy() == outside.to_numpy()).all()
    assert list(stored.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume",
                                    "buy_volume", "trade_count"]


def test_a_failed_write_rolls_back_and_keeps_the_previous_content(tmp_path, bars):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    everything = Slice("market.bars", {"symbol": ["BTC-PERP"]})
    warehouse.replace(everything, bars)
    broken = bars.head(10).assign(open=None)  # violates NOT NULL after the DELETE has run
    with pytest.raises(Exception, match="NOT NULL"):
        warehouse.replace(everything, broken)
    pd.testing.assert_frame_equal(warehouse.read(everything),
                                  bars.drop(columns=["_source_file", "_source_row"]))


# Holders keep the lock until a line arrives on stdin, so no test depends on timing.
HOLD_FLOCK = """
import sys
from bot4_dagster.data.warehouse import Warehouse
with Warehouse(sys.argv[1]).connection():
    print("holding", flush=True)
    sys.stdin.readline()
"""
HOLD_DUCKDB = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])  # a write connection outside bot4's lock, like a duckdb shell
print("holding", flush=True)
sys.stdin.readline()
conn.close()
"""


@pytest.fixture(params=["flock", "duckdb"])
def holder(request, tmp_path):
    """A process holding the warehouse at tmp_path/w.duckdb: by our flock, or by DuckDB itself."""
    script = HOLD_FLOCK if request.param == "flock" else HOLD_DUCKDB
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "w.duckdb")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "holding"
    yield process
    if process.poll() is None:
        process.stdin.close()
        process.wait(timeout=60)


class Warnings(logging.Handler):
    """Collects the warehouse logger's records; ``first`` is set by the first one."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.first = threading.Event()

    def emit(self, record):
        self.messages.append(record.getMessage())
        self.first.set()


@pytest.fixture
def warnings():
    handler = Warnings()
    logger = logging.getLogger("bot4_dagster.warehouse")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_a_held_warehouse_names_the_holder_and_gives_up_after_its_timeout(tmp_path, holder,
                                                                          warnings):
    with pytest.raises(WarehouseLocked) as caught, \
            Warehouse(tmp_path / "w.duckdb", timeout_s=1.0).connection():
        pass
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.pid == holder.pid
    assert str(caught.value).startswith(f"warehouse locked by PID {holder.pid}: gave up after ")
    assert "BOT4_WAREHOUSE_TIMEOUT" in str(caught.value)
    assert len(warnings.messages) == 1
    assert warnings.messages[0].startswith(f"warehouse locked by PID {holder.pid}, waiting…")


def test_the_waiter_proceeds_once_the_holder_lets_go(tmp_path, holder, warnings, bars):
    path = tmp_path / "w.duckdb"
    outcome: dict = {}

    def write():
        try:
            outcome["result"] = Warehouse(path, timeout_s=300).merge("bars", bars.head(100))
        except Exception as exc:  # reported below, in the test's thread
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    assert warnings.first.wait(timeout=120), "the writer never reported that it waits"
    assert "result" not in outcome  # it is waiting, not writing
    holder.stdin.write("release\n")
    holder.stdin.flush()
    writer.join(timeout=300)
    assert outcome.get("error") is None
    assert outcome["result"].inserted == 100
    assert holder.wait(timeout=60) == 0
    assert len(warnings.messages) == 1
    assert warnings.messages[0].startswith(f"warehouse locked by PID {holder.pid}, waiting…")
    assert Warehouse(path).row_counts() == {"market.bars": 100}


def test_the_lock_file_names_its_holder_while_held(tmp_path):
    path = tmp_path / "w.duckdb"
    lock = Path(f"{path}.lock")
    with Warehouse(path).connection():
        assert lock.read_text().strip() == str(os.getpid())
    assert lock.read_text() == ""


def test_the_timeout_comes_from_the_environment(tmp_path, monkeypatch):
    assert Warehouse(tmp_path / "w.duckdb").timeout_s == 600.0
    monkeypatch.setenv("BOT4_WAREHOUSE_TIMEOUT", "7.5")
    assert Warehouse(tmp_path / "w.duckdb").timeout_s == 7.5
    assert Warehouse(tmp_path / "w.duckdb", timeout_s=2).timeout_s == 2.0
    monkeypatch.setenv("BOT4_WAREHOUSE_TIMEOUT", "ten minutes")
    with pytest.raises(ValueError, match="BOT4_WAREHOUSE_TIMEOUT='ten minutes'"):
        Warehouse(tmp_path / "w.duckdb")


def test_spans_cover_every_table_with_a_symbol_and_a_time(tmp_path, bars):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    assert warehouse.spans().empty and list(warehouse.spans().columns) == list(SPAN_COLUMNS)
    warehouse.merge("bars", bars)
    warehouse.merge("bars", bars.head(10).assign(symbol="ETH-PERP"))
    labels = pd.DataFrame({"symbol": ["BTC-PERP"] * 3, "t0": bars["ts"].iloc[5:8].to_numpy(),
                           "t1": bars["ts"].iloc[9:12].to_numpy(), "label": [1, 0, -1]})
    warehouse.replace(Slice("ml.labels", {"symbol": ["BTC-PERP"]}), labels)
    warehouse.replace(Slice("perf.manifest", {}), pd.DataFrame({"name": ["x"], "p50": [1.0]}))

    spans = warehouse.spans()

    assert spans[["table", "symbol", "rows"]].values.tolist() == [
        ["market.bars", "BTC-PERP", 45_031], ["market.bars", "ETH-PERP", 10],
        ["ml.labels", "BTC-PERP", 3]]
    first = bars["ts"].iat[0]
    assert spans["first_ts"].tolist() == [first, first, bars["ts"].iat[5]]
    assert spans["last_ts"].tolist() == [bars["ts"].iat[-1], bars["ts"].iat[9], bars["ts"].iat[7]]
    assert warehouse.span(Slice("market.bars", {"symbol": ["ETH-PERP"]})) == Span(
        10, first, bars["ts"].iat[9])
    assert warehouse.span(Slice("market.quotes", {})) == Span(0, None, None)


def test_a_warehouse_with_microsecond_times_is_upgraded_in_place(tmp_path):
    """Written before nanosecond times: market ``ts`` was TIMESTAMPTZ. The first connection turns
    it into TIMESTAMP_NS with the same instants and the quotes of a timestamp in stored order."""
    quotes = parse_file(QUOTES).frame.drop(columns=["_source_file", "_source_row"])
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:  # the table as the previous release created it
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("CREATE SCHEMA market")
        conn.execute("CREATE TABLE market.quotes (symbol VARCHAR NOT NULL, ts TIMESTAMPTZ NOT "
                     "NULL, bid DOUBLE NOT NULL, ask DOUBLE NOT NULL, bid_size DOUBLE NOT NULL, "
                     "ask_size DOUBLE NOT NULL)")
        conn.register("old", quotes)
        conn.execute("INSERT INTO market.quotes SELECT * FROM old")

    warehouse = Warehouse(path)
    everything = Slice("market.quotes", {})
    back = warehouse.read(everything)

    assert warehouse.query("SELECT data_type FROM duckdb_columns() WHERE column_name = 'ts'"
                           )["data_type"].tolist() == ["TIMESTAMP_NS"]
    pd.testing.assert_frame_equal(back, quotes.reset_index(drop=True))
    assert warehouse.merge("quotes", parse_file(QUOTES).frame).unchanged == len(quotes)
    assert Warehouse(path).read(everything).equals(back)  # a second upgrade changes nothing


def test_a_computed_table_gains_the_columns_a_newer_stage_writes(tmp_path):
    """An older warehouse takes a stage's new column: rows written before read back NULL."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    old = pd.DataFrame({"symbol": ["A", "B"], "t0": pd.to_datetime(["2022-01-01"] * 2, utc=True),
                        "proba": [0.4, 0.6]})
    warehouse.replace(Slice("ml.oof_predictions", {"symbol": ["A", "B"]}), old)
    new = old[old.symbol == "A"].assign(proba=0.5, regime=pd.Series([2], dtype="int8"),
                                        note=["fresh"])
    assert warehouse.replace(Slice("ml.oof_predictions", {"symbol": ["A"]}), new) == 1
    stored = warehouse.query("select * from ml.oof_predictions order by symbol")
    assert list(stored.columns) == ["symbol", "t0", "proba", "regime", "note"]
    assert stored.proba.tolist() == [0.5, 0.6]
    assert stored.regime.iloc[0] == 2 and pd.isna(stored.regime.iloc[1])
    assert stored.note.iloc[0] == "fresh" and pd.isna(stored.note.iloc[1])
