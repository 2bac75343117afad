"""The ingest assets in Dagster: real files through the ``files`` source into the warehouse, blocking
checks that stop bad data before it is written, and concurrent runs on one DuckDB file."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import FTX, QUOTES, TRADES

from bot4_dagster.automation.partitions import BAR_PARTITIONS, SYMBOLS, range_tags
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource
from bot4_dagster.settings import DAGSTER_YAML

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
UTC = "UTC"


def files_defs(folder: Path, warehouse: Path, extra_assets=()) -> dg.Definitions:
    source = MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP",
                                volume_unit="quote")
    defs = build_definitions(source, str(warehouse))
    if not extra_assets:
        return defs
    return dg.Definitions(assets=[*defs.assets, *extra_assets], resources=defs.resources)


def run(defs, instance, table, symbol, start, end, job="ingest_bars", selection=None):
    tags = range_tags(table, symbol, pd.Timestamp(start, tz=UTC), pd.Timestamp(end, tz=UTC))
    job_def = defs.resolve_job_def(job) if job else defs.resolve_implicit_global_asset_job_def()
    return job_def.execute_in_process(
        instance=instance, tags=tags, raise_on_error=False, run_config=QUIET,
        asset_selection=selection or [dg.AssetKey(["market", table])])


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SYMBOLS.name, ["BTC-PERP", "BTCUSDT"])
        yield inst


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "exports"
    path.mkdir()
    for file in (FTX, TRADES, QUOTES):
        (path / file.name).symlink_to(file)
    return path


def bars_in(warehouse: Path) -> pd.DataFrame:
    return Warehouse(warehouse).read(Slice("market.bars", {"symbol": ["BTC-PERP"]}))


def test_definitions_load():
    # inside a live instance: Dagster keeps a process-global state-storage handle that points at
    # the last instance created, which other tests have already closed
    with dg.instance_for_test():
        dg.Definitions.validate_loadable(build_definitions())


def test_ftx_bars_ingest_equals_the_raw_file(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    result = run(defs, instance, "bars", "BTC-PERP", "2021-12-31 23:01", "2022-02-01 05:31")
    assert result.success
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
        "pandera_schema": True, "gx_suite": True}
    stored = bars_in(warehouse)
    raw = pd.read_csv(FTX, float_precision="round_trip")  # pandas' default parser is not exact
    assert len(stored) == len(raw) == 45_031
    assert stored["ts"].iloc[0] == pd.Timestamp(raw["timestamp"].iloc[0], tz=UTC)
    assert stored["ts"].iloc[-1] == pd.Timestamp(raw["timestamp"].iloc[-1], tz=UTC)
    for column in ("open", "high", "low", "close", "volume"):
        assert (stored[column].to_numpy() == raw[column].to_numpy()).all()
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["volume_unit"].value == "quote"
    assert metadata["rows"].value == 45_031

    again = run(defs, instance, "bars", "BTC-PERP", "2021-12-31 23:01", "2022-02-01 05:31")
    assert again.success
    assert len(bars_in(warehouse)) == 45_031  # re-running replaces its partitions, no duplicates


def test_trades_and_quotes_ingest_as_parallel_steps(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    result = run(defs, instance, "trades", "BTCUSDT", "2020-02-22", "2020-02-22", job="ingest_ticks",
                 selection=[dg.AssetKey(["market", "trades"]), dg.AssetKey(["market", "quotes"])])
    assert result.success
    counts = Warehouse(warehouse).row_counts()
    assert counts["market.trades"] == 9_999
    assert counts["market.quotes"] == 9_999


def _corrupt(src: Path, dst: Path, row: int, column: str, value: str) -> None:
    frame = pd.read_csv(src)
    frame[column] = frame[column].astype(object)
    frame.loc[row - 2, column] = value  # file row 2 is the first data row
    with gzip.open(dst, "wt") as out:
        frame.to_csv(out, index=False)


def test_bad_bars_block_the_run_and_leave_the_warehouse_as_it_was(folder, tmp_path, instance):
    seen = []

    @dg.asset(key=["features", "downstream_of_bars"], partitions_def=BAR_PARTITIONS,
              deps=[dg.AssetKey(["market", "bars"])])
    def downstream(context) -> None:
        seen.append(context.partition_keys)

    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse, extra_assets=[downstream])
    selection = [dg.AssetKey(["market", "bars"]), dg.AssetKey(["features", "downstream_of_bars"])]
    good = run(defs, instance, "bars", "BTC-PERP", "2022-01-01", "2022-01-31", job=None,
               selection=selection)
    assert good.success and len(seen) == 1
    before = bars_in(warehouse)

    (folder / FTX.name).unlink()
    _corrupt(FTX, folder / FTX.name, row=1_000, column="close", value="nan")
    bad = run(defs, instance, "bars", "BTC-PERP", "2022-01-01", "2022-01-31", job=None,
              selection=selection)

    assert not bad.success
    checks = {c.check_name: c for c in bad.get_asset_check_evaluations()}
    assert not checks["pandera_schema"].passed and not checks["gx_suite"].passed
    assert "price_finite_positive" in checks["pandera_schema"].metadata["failing_rules"].value
    failure = bad.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert f"{FTX.name}, row 1000: rule 'price_finite_positive'" in failure.description
    assert failure.metadata["row"].value == 1000
    assert not bad.get_asset_materialization_events()
    assert len(seen) == 1  # nothing downstream ran on the bad data
    pd.testing.assert_frame_equal(bars_in(warehouse), before)


def test_a_truncated_gzip_fails_naming_file_row_and_rule(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    assert run(defs, instance, "bars", "BTC-PERP", "2022-01-01", "2022-01-31").success
    before = bars_in(warehouse)

    data = FTX.read_bytes()
    (folder / FTX.name).unlink()
    (folder / FTX.name).write_bytes(data[: len(data) // 2])
    bad = run(defs, instance, "bars", "BTC-PERP", "2022-01-01", "2022-01-31")

    assert not bad.success
    failure = bad.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.metadata["rule"].value == "gzip_integrity"
    assert str(folder / FTX.name) in failure.description
    assert failure.metadata["row"].value > 1
    pd.testing.assert_frame_equal(bars_in(warehouse), before)


# --- concurrency: several runs, each on the multiprocess executor, on one DuckDB file ---------

LAUNCH = """
import sys, dagster as dg
import test_ingest_assets as here
job = getattr(here, sys.argv[1])
tags = {"dagster/asset_partition_range_start": sys.argv[2], "dagster/asset_partition_range_end": sys.argv[3]}
with dg.DagsterInstance.get() as instance:
    with dg.execute_job(dg.reconstructable(job), instance=instance, tags=tags, raise_on_error=False) as result:
        sys.exit(0 if result.success else 1)
"""


def ingest_bars_job():
    """Rebuilt inside each step subprocess from the environment (BOT4_* variables)."""
    return build_definitions().resolve_job_def("ingest_bars")


def ingest_ticks_job():
    return build_definitions().resolve_job_def("ingest_ticks")


def test_parallel_multiprocess_runs_share_the_warehouse(folder, tmp_path):
    """Four runs launched at once, as a backfill does, each in its own process with the
    multiprocess executor (the ticks run has two parallel steps): all succeed, nothing is lost."""
    warehouse = tmp_path / "w.duckdb"
    home = tmp_path / "dagster_home"
    env = {**os.environ, "BOT4_SOURCE": "files", "BOT4_PATH": str(folder), "BOT4_SYMBOL": "BTC-PERP",
           "BOT4_VOLUME_UNIT": "quote", "BOT4_WAREHOUSE": str(warehouse), "DAGSTER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(SYMBOLS.name, ["BTC-PERP", "BTCUSDT"])
    day = pd.Timestamp("2020-02-22", tz=UTC)
    launches = [("ingest_bars_job", range_tags("bars", "BTC-PERP", pd.Timestamp(start, tz=UTC),
                                               pd.Timestamp(end, tz=UTC)))
                for start, end in [("2021-12-31 23:01", "2021-12-31 23:59"),
                                   ("2022-01-01", "2022-01-31"), ("2022-02-01", "2022-02-01 05:31")]]
    launches.append(("ingest_ticks_job", range_tags("trades", "BTCUSDT", day, day)))
    processes = [
        subprocess.Popen([sys.executable, "-c", LAUNCH, job, tags["dagster/asset_partition_range_start"],
                          tags["dagster/asset_partition_range_end"]], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for job, tags in launches
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    counts = Warehouse(warehouse).row_counts()
    assert counts == {"market.bars": 45_031, "market.quotes": 9_999, "market.trades": 9_999}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 4 and all(r.is_success for r in runs)


def test_dagster_materialize_one_partition(folder, tmp_path, instance):
    defs = files_defs(folder, tmp_path / "w.duckdb")
    bars_asset = next(a for a in defs.assets if dg.AssetKey(["market", "bars"]) in a.keys)
    result = dg.materialize([bars_asset], instance=instance, resources=defs.resources,
                            partition_key="2022-02-01|BTC-PERP", run_config=QUIET)
    assert result.success
    stored = bars_in(tmp_path / "w.duckdb")
    assert len(stored) == 332  # 2022-02-01 00:00 .. 05:31, the file's last rows


def test_the_file_index_keeps_folders_that_link_the_same_file_apart(tmp_path):
    """Two export folders linking one file: the cached index must not send the second folder's
    reads to the first folder's path (which may be gone)."""
    from bot4_dagster.data.sources import FileSource

    index = tmp_path / "index.json"
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / FTX.name).symlink_to(FTX)
        source = FileSource(folder, symbol="BTC-PERP", index_path=index)
        source.extents()
        if name == "first":
            (folder / FTX.name).unlink()
    loaded = source.load("bars", "BTC-PERP", pd.Timestamp("2022-01-01", tz="UTC"),
                         pd.Timestamp("2022-01-02", tz="UTC"))
    assert len(loaded.frame) == 1440 and loaded.files[0].path.startswith(str(tmp_path / "second"))
