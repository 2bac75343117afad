"""``perf/manifest``: host facts, library versions and the latest benchmark report in the
warehouse."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from bot4_dagster.assets.perf import perf_manifest
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.perf import Report, Timing
from bot4_dagster.perf.harness import Benchmark
from bot4_dagster.perf.manifest import build_manifest
from bot4_dagster.resources import WarehouseIOManager


def _report(path) -> None:
    report = Report()
    report.add(Benchmark("pct_returns", Timing((1e-5, 2e-5, 3e-5)), group="kernels",
                         reference_name="pandas", reference=Timing((3e-4, 3e-4, 4e-4)),
                         goal=">= 10x"))
    report.to_json(path)


def test_manifest_without_a_report_says_how_to_make_one(tmp_path):
    manifest = build_manifest(tmp_path / "missing.json")
    assert manifest.benchmarks.empty and manifest.report_path is None
    assert "make bench" in manifest.benchmarks_markdown()
    assert isinstance(manifest.hardware["kernels_use_zmm"], bool)
    assert manifest.versions["dagster"] == "1.13.27"


def test_asset_stores_the_latest_report(bot4_home, tmp_path):
    _report(bot4_home / "bench" / "latest.json")
    warehouse = tmp_path / "w.duckdb"
    io_manager = WarehouseIOManager(duckdb=DuckDBResource(database=str(warehouse)))
    with dg.instance_for_test() as instance:
        result = dg.materialize([perf_manifest], instance=instance,
                                resources={"io_manager": io_manager})
    assert result.success
    rows = Warehouse(warehouse).read(Slice("perf.manifest", {}), order_by=None)
    assert rows["benchmark"].tolist() == ["pct_returns"]
    assert rows["ratio"].iloc[0] == pytest.approx(15.0) and bool(rows["met"].iloc[0])
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert "pct_returns" in metadata["benchmarks"].value
    assert "cpu_name" in metadata["hardware"].value
