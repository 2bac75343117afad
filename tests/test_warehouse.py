"""The warehouse is never half-written and serialises writers across processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import FTX

from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.warehouse import Slice, Warehouse

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
    assert (stored.close[~inside].to_numpy() == bars.close[~bars.index.isin(one_day.index)].to_numpy()).all()
    assert list(stored.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume",
                                    "buy_volume", "trade_count"]


def test_a_failed_write_rolls_back_and_keeps_the_previous_content(tmp_path, bars):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    everything = Slice("market.bars", {"symbol": ["BTC-PERP"]})
    warehouse.replace(everything, bars)
    broken = bars.head(10).assign(open=None)  # violates NOT NULL after the DELETE has run
    with pytest.raises(Exception, match="NOT NULL"):
        warehouse.replace(everything, broken)
    pd.testing.assert_frame_equal(warehouse.read(everything), bars.drop(columns=["_source_file", "_source_row"]))


HOLD = """
import sys, time
from bot4_dagster.data.warehouse import Warehouse
with Warehouse(sys.argv[1]).connection():
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_process_waits_for_the_lock_instead_of_failing(tmp_path, bars):
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "2"], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "holding"
    started = time.monotonic()
    Warehouse(path).replace(Slice("market.bars", {"symbol": ["BTC-PERP"]}), bars.head(100))
    waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert holder.returncode == 0
    assert Warehouse(path).row_counts() == {"market.bars": 100}
    assert waited > 0.5  # it queued behind the holder (a lower bound only, not a speed claim)


def test_the_lock_wait_has_a_clear_timeout(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "5"], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "holding"
    with pytest.raises(TimeoutError, match="warehouse lock"), Warehouse(path, timeout_s=0.2).connection():
        pass
    holder.kill()
    holder.wait()
