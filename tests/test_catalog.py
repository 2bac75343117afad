"""The column catalog lists exactly the columns, in order and with the DuckDB types, that each
stage's library function produces, and describes every one; feature descriptions carry the
feature numbers of docs/microstructure.md."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from model_tables import ftx_candidate
from synthetic_microstructure import load_binance_quotes, load_binance_trades, load_ftx_bars

from bot4_dagster.catalog import CATALOG, table_columns
from bot4_dagster.data import tables
from bot4_dagster.features.microstructure import FEATURES, QUOTE_FEATURES
from bot4_dagster.features.table import feature_table
from bot4_dagster.kernels.bars import trades_to_bars
from bot4_dagster.ml.calibration_report import calibration_report
from bot4_dagster.ml.candidate import candidate_index
from bot4_dagster.ml.dataset import learning_samples
from bot4_dagster.ml.ensemble_report import ensemble_report
from bot4_dagster.ml.folds import fold_splitters, folds_table
from bot4_dagster.ml.labels import label_table
from bot4_dagster.ml.leakage import leakage_proof_of_tables
from bot4_dagster.ml.learners import PROFILES
from bot4_dagster.ml.oof import SCHEMES, oof_table
from bot4_dagster.ml.training import model_index, train_planned, training_plan
from bot4_dagster.ml.volatility import estimate_volatility
from bot4_dagster.perf.manifest import build_manifest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "microstructure.md"


def _report(tmp: Path) -> Path:
    """A benchmark report with one benchmark, as ``make bench`` writes it."""
    path = tmp / "latest.json"
    benchmark = {"name": "cv/cpcv_split_1m", "group": "cv", "unit": "call", "throughput": 14.1,
                 "ours": {"p50": 0.07, "p95": 0.08, "p99": 0.085}, "reference_name": "skfolio",
                 "reference": {"p50": 0.95}, "ratio": 13.5, "goal": ">= parity", "met": True}
    path.write_text(json.dumps({"created": "2025-01-01T00:00:00Z", "git_commit": "abc",
                                "benchmarks": [benchmark]}))
    return path


@pytest.fixture(scope="module")
def produced(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Every warehouse table as its library function produces it, on real data."""
    bars = load_ftx_bars().iloc[:4000]
    bars["ts"] = bars["ts"].astype("datetime64[ns, UTC]")  # as the warehouse returns them
    features, _ = feature_table(bars, symbol="BTC-PERP", volume_unit="quote")
    volatility = estimate_volatility(bars.set_index("ts")["close"]).table("BTC-PERP")
    labels = label_table(bars, volatility, symbol="BTC-PERP", upper=2.0, lower=2.0, horizon=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        proof = leakage_proof_of_tables(features, labels, symbol="BTC-PERP").stored("BTC-PERP")
    trades, quotes = load_binance_trades(), load_binance_quotes()
    b = trades_to_bars(pd.DatetimeIndex(trades["ts"]).asi8, trades["price"].to_numpy(),
                       trades["amount"].to_numpy(), trades["side"].to_numpy(), 60_000_000_000)
    trade_bars = pd.DataFrame({"ts": pd.to_datetime(b["ts"], unit="ns", utc=True),
                               **{c: b[c] for c in ("open", "high", "low", "close", "volume")}})
    with_quotes, _ = feature_table(trade_bars, trades, quotes, symbol="BTCUSDT")
    assert with_quotes["effective_spread"].notna().any()
    manifest = build_manifest(_report(tmp_path_factory.mktemp("bench"))).benchmarks
    assert len(manifest) == 1
    models, oof, ensemble, calibration, candidates = _models(bars, features, labels,
                                                             tmp_path_factory.mktemp("home"))
    return {
        "ml.calibrator": calibration,
        "ml.model_candidates": candidates,
        "registry.model_versions": _versions(tmp_path_factory.mktemp("registry")),
        "ml.base_models": models,
        "ml.oof_predictions": oof,
        "ml.stacking_ensemble": ensemble,
        "features.microstructure_features": features,
        "features.microstructure_features (quotes)": with_quotes,
        "ml.garch_volatility": volatility,
        "ml.labels": labels,
        "ml.cv_folds": folds_table(labels, fold_splitters(labels), symbol="BTC-PERP"),
        "ml.leakage_proof": proof,
        "perf.manifest": manifest,
        **{spec.name: tables.stored(spec, spec.empty()) for spec in tables.TABLES.values()},
    }


def _models(bars, features, labels, home: Path):
    """Two quick learners over every split: the model index, the OOF rows, the ensemble and
    calibration reports; and the index of the four learners' candidate on the same minutes."""
    folds = folds_table(labels, fold_splitters(labels), symbol="BTC-PERP")
    samples = learning_samples(bars, features, labels, symbol="BTC-PERP")
    settings = dataclasses.replace(PROFILES["quick"], trees=20)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BOT4_HOME", str(home))
        rows = pd.concat([train_planned(job, samples, symbol="BTC-PERP", settings=settings)
                          for job in training_plan(samples, folds, ("logistic", "extra_trees"),
                                                   SCHEMES)], ignore_index=True)
        oof = oof_table(rows, "BTC-PERP")
    candidates = candidate_index("BTC-PERP", ftx_candidate(4000)["stored"].path.parent)
    return (model_index(rows, "BTC-PERP"), oof,
            ensemble_report(oof, labels, symbol="BTC-PERP").stored,
            calibration_report(oof, folds, symbol="BTC-PERP", min_count=100).stored, candidates)


def _versions(tmp: Path) -> pd.DataFrame:
    """registry.model_versions after two registrations and a promotion."""
    from registry_fixtures import synthetic_bundle

    from bot4_dagster.registry.model_registry import ModelRegistry
    from bot4_dagster.registry.versions import versions_table

    registry = ModelRegistry(home=tmp / "mlflow")
    name = registry.register(synthetic_bundle(tmp / "candidates", 1)).pinned.name
    registry.register(synthetic_bundle(tmp / "candidates", 2))
    registry.promote(name, "1")
    frame = versions_table(registry.client.search_model_versions(f"name = '{name}'"),
                           registry.aliases(name), model=name, symbol="BTC-PERP")
    assert frame["aliases"].tolist() == ["champion", ""]
    return frame


def _duckdb_types(frame: pd.DataFrame) -> list[tuple[str, str]]:
    with duckdb.connect() as conn:
        conn.register("frame", frame)
        return [(r[0], r[1]) for r in conn.execute("DESCRIBE SELECT * FROM frame").fetchall()]


def _canonical(columns) -> list[tuple[str, str]]:
    """The catalog's types as DuckDB spells them after creating the table."""
    with duckdb.connect() as conn:
        conn.execute("CREATE TABLE t (" + ", ".join(f'"{c.name}" {c.type}' for c in columns) + ")")
        return [(r[0], r[1]) for r in conn.execute("DESCRIBE t").fetchall()]


def test_every_warehouse_table_is_catalogued():
    assert set(CATALOG) == {
        "market.bars", "market.trades", "market.quotes", "features.microstructure_features",
        "ml.garch_volatility", "ml.labels", "ml.cv_folds", "ml.leakage_proof", "perf.manifest",
        "ml.base_models", "ml.oof_predictions", "ml.stacking_ensemble", "ml.calibrator",
        "ml.model_candidates", "registry.model_versions"}


@pytest.mark.parametrize("table", sorted(CATALOG))
def test_catalog_matches_what_the_stage_produces(produced, table):
    columns = table_columns(table)
    frames = [frame for name, frame in produced.items() if name.split(" ")[0] == table]
    assert frames
    for frame in frames:
        assert [c.name for c in columns] == list(frame.columns)
        assert _canonical(columns) == _duckdb_types(frame)


@pytest.mark.parametrize("table", sorted(CATALOG))
def test_every_column_has_a_one_line_description(table):
    for column in table_columns(table):
        assert 10 < len(column.description) < 220 and "\n" not in column.description, column


def test_market_tables_follow_data_tables():
    for spec in tables.TABLES.values():
        assert [(c.name, c.type) for c in table_columns(spec.name)] == [
            (c.name, c.sql) for c in spec.columns]


def test_feature_descriptions_carry_the_docs_numbers():
    numbered = {name: code for code, name in
                re.findall(r"^\| (T\d+|B\d+) \| `(\w+)` \|", DOCS.read_text(), re.MULTILINE)}
    assert list(numbered) == list(FEATURES)  # the docs table lists the 21, in order
    described = {c.name: c.description for c in table_columns("features.microstructure_features")}
    for name, code in numbered.items():
        assert described[name].startswith(f"{code}: "), name
    quote_section = DOCS.read_text().split("## Quote spreads")[1]
    for name in QUOTE_FEATURES:
        assert f"`{name}`" in quote_section and "NaN without quotes" in described[name]


def test_unknown_table():
    with pytest.raises(KeyError, match=r"no catalog entry for 'ml\.models'; known: market\.bars"):
        table_columns("ml.models")
