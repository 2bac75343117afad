"""``ml/labels``, ``ml/cv_folds`` (with its blocking ``no_leakage`` check) and
``ml/leakage_proof`` in Dagster, on the bundled S&P 500 bars and the FTX bars through ``files``."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest
from conftest import FTX
from pipeline import materialize

from bot4_dagster.assets.keys import BARS, FEATURES, LABELS, LEAKAGE, VOLATILITY
from bot4_dagster.assets.keys import FOLDS as FOLD_KEY
from bot4_dagster.assets.labels import no_leakage
from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource


def materialize_chain(defs, instance, symbol) -> dg.ExecuteInProcessResult:
    """Bars, features and volatility first, then labels, folds and the proof in one run."""
    assert materialize(defs, instance, symbol, BARS, FEATURES, VOLATILITY).success
    result = materialize(defs, instance, symbol, LABELS, FOLD_KEY, LEAKAGE)
    assert result.success
    return result


@pytest.fixture(scope="module", params=["bundled", "files"])
def chain(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    folder = tmp / "exports"
    folder.mkdir()
    (folder / FTX.name).symlink_to(FTX)
    if request.param == "bundled":
        market, symbol = MarketDataResource(symbols=["SP500"]), "SP500"
    else:
        market = MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP",
                                    volume_unit="quote")
        symbol = "BTC-PERP"
    defs = build_definitions(market, str(tmp / "w.duckdb"))
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        env.setenv("BOT4_HOME", str(tmp / "bot4_home"))  # module scope: its own state folder
        instance.add_dynamic_partitions(SYMBOLS.name, [symbol])
        result = materialize_chain(defs, instance, symbol)
        yield dict(result=result, warehouse=Warehouse(tmp / "w.duckdb"), symbol=symbol)


def test_labels_folds_and_the_leakage_check(chain):
    result, warehouse, symbol = chain["result"], chain["warehouse"], chain["symbol"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["no_leakage"].passed, checks["no_leakage"].metadata["first"].value
    materialized = {e.asset_key.to_user_string(): e.materialization.metadata
                    for e in result.get_asset_materialization_events()}
    assert set(materialized) == {"ml/labels", "ml/cv_folds", "ml/leakage_proof"}
    folds = materialized["ml/cv_folds"]
    assert folds["cpcv_paths"].value == 5 and folds["purged_total"].value > 0
    assert folds["embargoed_total"].value > 0
    assert folds["diagram"].value.startswith("![folds](data:image/png;base64,")
    assert {r.data["scheme"] for r in folds["splits"].value.records} == {
        "purged_kfold", "walk_forward", "cpcv"}
    labels = warehouse.read(Slice("ml.labels", {"symbol": [symbol]}), order_by="t0")
    assert set(labels["label"].unique()) <= {-1, 0, 1} and (labels["t1"] >= labels["t0"]).all()
    assert labels["weight"].between(0, 1).all()
    stored = warehouse.read(Slice("ml.cv_folds", {"symbol": [symbol]}), order_by=None)
    assert set(stored["scheme"]) == {"purged_kfold", "walk_forward", "cpcv"}
    assert stored.loc[stored["scheme"] == "cpcv", "split"].nunique() == 15


def test_the_leakage_figures(chain):
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in chain["result"].get_asset_materialization_events()}["ml/leakage_proof"]
    assert metadata["inflation"].value > 0.02  # shuffled K-fold leaks, purging removes it
    assert abs(metadata["sharpe_permuted"].value) < 0.1
    notes = [r.data["note"] for r in metadata["results"].value.records]
    assert any("within 0.5 ± 3 SE: True" in (note or "") for note in notes), notes


def test_the_check_catches_a_leak_in_the_stored_folds(chain):
    warehouse, symbol = chain["warehouse"], chain["symbol"]
    folds = warehouse.read(Slice("ml.cv_folds", {"symbol": [symbol]}), order_by=None)
    labels = warehouse.read(Slice("ml.labels", {"symbol": [symbol]}), order_by="t0")
    assert no_leakage(folds, labels).passed
    leaked = folds.copy()
    purged = np.flatnonzero((leaked["role"] == "purged").to_numpy())
    leaked.loc[leaked.index[purged[0]], "role"] = "train"
    result = no_leakage(leaked, labels)
    assert not result.passed and "overlaps a test label" in result.metadata["first"].value
    embargoed = folds.copy()
    rows = np.flatnonzero((embargoed["role"] == "embargoed").to_numpy())
    embargoed.loc[embargoed.index[rows[0]], "role"] = "train"
    assert "embargo" in no_leakage(embargoed, labels).metadata["first"].value
