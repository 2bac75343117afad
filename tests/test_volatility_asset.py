"""``ml/garch_volatility`` in Dagster: the bundled index bars and the FTX bars through ``files``,
each with the asset check that refits with arch."""

from __future__ import annotations

import dagster as dg
import pytest
from conftest import FTX
from pipeline import materialize, metadata_of

from bot4_dagster.assets.keys import BARS, VOLATILITY
from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SYMBOLS.name, ["BTC-PERP", "SP500"])
        yield inst


def run_volatility(defs, instance, symbol):
    assert materialize(defs, instance, symbol, BARS).success
    return materialize(defs, instance, symbol, VOLATILITY)


@pytest.mark.parametrize(("source", "symbol", "scale"), [
    ("bundled", "SP500", 100.0),
    ("files", "BTC-PERP", 1000.0),
])
def test_volatility_asset_and_its_arch_check(tmp_path, instance, source, symbol, scale):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / FTX.name).symlink_to(FTX)
    market = (MarketDataResource() if source == "bundled" else
              MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP",
                                 volume_unit="quote"))
    defs = build_definitions(market, str(tmp_path / "w.duckdb"))
    result = run_volatility(defs, instance, symbol)
    assert result.success
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "matches_arch" and check.passed, check.metadata["result"].value
    assert check.partition == symbol  # the check's history is per symbol
    metadata = metadata_of(result, VOLATILITY)
    assert metadata["scale"].value == scale
    assert 0.9 < metadata["persistence"].value < 1.0
    for key in ("parameters", "diagnostics", "regimes"):
        assert len(metadata[key].value.records) >= 3, key
    assert "Ljung-Box(10) on z²" in {r.data["test"] for r in metadata["diagnostics"].value.records}
    assert metadata["plot"].value.startswith("![volatility](data:image/png;base64,")
    stored = Warehouse(tmp_path / "w.duckdb").read(Slice("ml.garch_volatility",
                                                         {"symbol": [symbol]}))
    bars = Warehouse(tmp_path / "w.duckdb").read(Slice("market.bars", {"symbol": [symbol]}))
    assert len(stored) == len(bars) and stored["sigma"].iloc[1:].notna().all()
    assert set(stored["regime"].dropna()) == {"low", "normal", "high", "crisis"}
    assert (stored["regime"] == "crisis").mean() == pytest.approx(0.05, abs=0.01)
