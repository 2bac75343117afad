"""``ml/garch_volatility`` in Dagster: the bundled index bars and the FTX bars through ``files``,
each with the asset check that refits with arch."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from conftest import FTX

from bot4_dagster.automation.partitions import SYMBOLS, range_tags
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SYMBOLS.name, ["BTC-PERP", "SP500"])
        yield inst


def run_volatility(defs, instance, symbol, first, last):
    tags = range_tags("bars", symbol, pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC"))
    ingest = defs.resolve_job_def("ingest_bars").execute_in_process(
        instance=instance, tags=tags, raise_on_error=False, run_config=QUIET)
    assert ingest.success
    return defs.resolve_job_def("garch_volatility").execute_in_process(
        instance=instance, partition_key=symbol, raise_on_error=False, run_config=QUIET)


@pytest.mark.parametrize(("source", "symbol", "first", "last", "scale"), [
    ("bundled", "SP500", "1999-01-04", "2018-12-31", 100.0),
    ("files", "BTC-PERP", "2021-12-31 23:01", "2022-02-01", 1000.0),
])
def test_volatility_asset_and_its_arch_check(tmp_path, instance, source, symbol, first, last, scale):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / FTX.name).symlink_to(FTX)
    market = (MarketDataResource() if source == "bundled" else
              MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP",
                                 volume_unit="quote"))
    defs = build_definitions(market, str(tmp_path / "w.duckdb"))
    result = run_volatility(defs, instance, symbol, first, last)
    assert result.success
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "matches_arch" and check.passed, check.metadata["result"].value
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["scale"].value == scale
    assert 0.9 < metadata["persistence"].value < 1.0
    for key in ("parameters", "diagnostics", "regimes"):
        assert metadata[key].value.count("|") > 10
    assert "Ljung-Box(10) on z²" in metadata["diagnostics"].value
    assert metadata["plot"].value.startswith("![volatility](data:image/png;base64,")
    stored = Warehouse(tmp_path / "w.duckdb").read(Slice("ml.garch_volatility", {"symbol": [symbol]}))
    bars = Warehouse(tmp_path / "w.duckdb").read(Slice("market.bars", {"symbol": [symbol]}))
    assert len(stored) == len(bars) and stored["sigma"].iloc[1:].notna().all()
    assert set(stored["regime"].dropna()) == {"low", "normal", "high", "crisis"}
    assert (stored["regime"] == "crisis").mean() == pytest.approx(0.05, abs=0.01)
