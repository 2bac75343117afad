"""The ingest assets in Dagster: real files through the ``files`` source into the warehouse, merged
by key (a partial or missing month never deletes stored rows), blocking checks that stop bad data
before it is written, and concurrent runs on one DuckDB file."""

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
from pipeline import corrupt_copy, failure_of, materialize, metadata_of

from bot4_dagster.assets.keys import BARS
from bot4_dagster.assets.keys import QUOTES as QUOTE_KEY
from bot4_dagster.assets.keys import TRADES as TRADE_KEY
from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.data.warehouse import Slice, Warehouse
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource
from bot4_dagster.settings import DAGSTER_YAML

UTC = "UTC"


def files_defs(folder: Path, warehouse: Path, extra_assets=(), **options) -> dg.Definitions:
    source = MarketDataResource(**{"source": "files", "path": str(folder), "symbol": "BTC-PERP",
                                   "volume_unit": "quote", **options})
    defs = build_definitions(source, str(warehouse))
    if not extra_assets:
        return defs
    return dg.Definitions(assets=[*defs.assets, *extra_assets], resources=defs.resources,
                          jobs=[dg.define_asset_job("symbol_pipeline", partitions_def=SYMBOLS)])


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


def bars_in(warehouse: Path, symbol="BTC-PERP") -> pd.DataFrame:
    return Warehouse(warehouse).read(Slice("market.bars", {"symbol": [symbol]}))


def ftx_rows(start: str, end: str) -> pd.DataFrame:
    raw = pd.read_csv(FTX, float_precision="round_trip")  # written back exactly
    ts = pd.to_datetime(raw["timestamp"], utc=True)
    return raw[(ts >= pd.Timestamp(start, tz=UTC)) & (ts < pd.Timestamp(end, tz=UTC))]


def write_export(folder: Path, frame: pd.DataFrame, name="ftx_btc-perp_export.csv.gz") -> None:
    for old in folder.iterdir():
        old.unlink()
    with gzip.open(folder / name, "wt") as out:
        frame.to_csv(out, index=False)


def test_definitions_load_and_every_table_describes_its_columns():
    # inside a live instance: Dagster keeps a process-global state-storage handle that points at
    # the last instance created, which other tests have already closed
    with dg.instance_for_test():
        defs = build_definitions()
        dg.Definitions.validate_loadable(defs)
        graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        schema = graph.get(key).metadata["dagster/column_schema"]
        assert len(schema.columns) >= 2, key
        assert all(c.description for c in schema.columns), key
        assert all(c.type for c in schema.columns), key
    features = graph.get(dg.AssetKey(["features", "microstructure_features"])).metadata
    assert len(features["dagster/column_schema"].columns) == 2 + 21 + 3


def test_ftx_bars_ingest_equals_the_raw_file(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    result = materialize(defs, instance, "BTC-PERP", BARS)
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
    metadata = metadata_of(result, BARS)
    assert metadata["volume_unit"].value == "quote"
    assert (metadata["rows_read"].value, metadata["rows_inserted"].value,
            metadata["dagster/partition_row_count"].value) == (45_031, 45_031, 45_031)
    assert metadata["first_ts"].value == pd.Timestamp("2021-12-31 23:01", tz=UTC).timestamp()

    again = materialize(defs, instance, "BTC-PERP", BARS)
    assert again.success
    assert len(bars_in(warehouse)) == 45_031  # merged by key: nothing twice
    metadata = metadata_of(again, BARS)
    assert (metadata["rows_inserted"].value, metadata["rows_unchanged"].value) == (0, 45_031)


def test_a_partial_month_and_a_missing_month_keep_every_stored_row(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    assert materialize(defs, instance, "BTC-PERP", BARS).success
    everything = bars_in(warehouse)

    write_export(folder, ftx_rows("2022-01-01", "2022-01-02"))  # one day of January
    partial = materialize(defs, instance, "BTC-PERP", BARS)
    assert partial.success
    assert (metadata_of(partial, BARS)["rows_inserted"].value,
            metadata_of(partial, BARS)["rows_unchanged"].value) == (0, 1_440)
    write_export(folder, ftx_rows("2022-02-01", "2022-03-01"))  # no January at all
    assert materialize(defs, instance, "BTC-PERP", BARS).success
    pd.testing.assert_frame_equal(bars_in(warehouse), everything)


def test_a_conflicting_value_is_refused_and_nothing_is_written(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    assert materialize(defs, instance, "BTC-PERP", BARS).success
    before = bars_in(warehouse)

    changed = ftx_rows("2022-01-05", "2022-01-06").copy()
    changed.iloc[9, changed.columns.get_loc("close")] += 1.0  # file row 11
    new_day = ftx_rows("2022-01-06", "2022-01-07")
    write_export(folder, pd.concat([changed, new_day]))
    bad = materialize(defs, instance, "BTC-PERP", BARS)
    assert not bad.success
    message = str(bad.get_step_failure_events()[0].step_failure_data.error)
    assert "ftx_btc-perp_export.csv.gz, row 11: rule 'conflicts_with_stored'" in message
    pd.testing.assert_frame_equal(bars_in(warehouse), before)  # not even the new day


def test_replacing_a_window_is_explicit(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    assert materialize(defs, instance, "BTC-PERP", BARS).success
    write_export(folder, ftx_rows("2022-01-01", "2022-01-02").iloc[::2])  # every other minute
    window = {"start": "2022-01-01", "end": "2022-01-02", "replace": True}
    result = materialize(defs, instance, "BTC-PERP", BARS, ops={"market__bars": window})
    assert result.success and metadata_of(result, BARS)["write"].value == "replace window"
    stored = bars_in(warehouse)
    day = stored["ts"].between(pd.Timestamp("2022-01-01", tz=UTC),
                               pd.Timestamp("2022-01-01 23:59", tz=UTC))
    assert day.sum() == 720 and len(stored) == 45_031 - 720


def test_old_history_is_welcome(tmp_path, instance):
    """No partition range refuses a 1985 daily file or a 2016 trade file."""
    daily, ticks = tmp_path / "daily", tmp_path / "ticks"
    daily.mkdir()
    ticks.mkdir()
    days = pd.date_range("1985-01-02", periods=300, freq="B", tz=UTC)
    close = 100 + pd.Series(range(300), dtype=float).to_numpy() * 0.1
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "open": close, "high": close + 1,
                  "low": close - 1, "close": close, "volume": 1e6}).to_csv(
        daily / "index85.csv", index=False)
    trades = pd.read_csv(TRADES, float_precision="round_trip")
    trades["timestamp"] -= int(pd.Timedelta(days=4 * 365).total_seconds() * 1e6)  # 2016
    trades["local_timestamp"] = trades["timestamp"]
    trades.to_csv(ticks / "binance-futures_trades_BTCUSDT_2016-02-23.csv", index=False)
    instance.add_dynamic_partitions(SYMBOLS.name, ["INDEX85"])
    warehouse = tmp_path / "w.duckdb"
    assert materialize(files_defs(daily, warehouse, symbol="INDEX85", volume_unit="base"),
                       instance, "INDEX85", BARS).success
    assert materialize(files_defs(ticks, warehouse, symbol=None, volume_unit=None),
                       instance, "BTCUSDT", TRADE_KEY).success
    assert bars_in(warehouse, "INDEX85")["ts"].iloc[0] == pd.Timestamp("1985-01-02", tz=UTC)
    stored = Warehouse(warehouse).read(Slice("market.trades", {"symbol": ["BTCUSDT"]}))
    assert len(stored) == 9_999 and stored["ts"].iloc[0].year == 2016


def test_trades_and_quotes_ingest_as_parallel_steps(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    result = materialize(defs, instance, "BTCUSDT", TRADE_KEY, QUOTE_KEY)
    assert result.success
    counts = Warehouse(warehouse).row_counts()
    assert counts["market.trades"] == 9_999
    assert counts["market.quotes"] == 9_999


def test_trades_only_input_builds_the_bars(tmp_path, instance):
    folder = tmp_path / "trades_only"
    folder.mkdir()
    (folder / TRADES.name).symlink_to(TRADES)
    defs = files_defs(folder, tmp_path / "w.duckdb", symbol=None, volume_unit=None)
    result = materialize(defs, instance, "BTCUSDT", BARS)
    assert result.success
    bars = bars_in(tmp_path / "w.duckdb", "BTCUSDT")
    assert len(bars) == 126 and int(bars["trade_count"].sum()) == 9_999
    assert "built from" in metadata_of(result, BARS)["notes"].value


def test_bad_bars_block_the_run_and_leave_the_warehouse_as_it_was(folder, tmp_path, instance):
    seen = []

    @dg.asset(key=["features", "downstream_of_bars"], partitions_def=SYMBOLS, deps=[BARS])
    def downstream(context) -> None:
        seen.append(context.partition_key)

    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse, extra_assets=[downstream])
    selection = (BARS, dg.AssetKey(["features", "downstream_of_bars"]))
    good = materialize(defs, instance, "BTC-PERP", *selection)
    assert good.success and seen == ["BTC-PERP"]
    before = bars_in(warehouse)

    (folder / FTX.name).unlink()
    corrupt_copy(FTX, folder / FTX.name, row=1_000, column="close", value="nan")
    bad = materialize(defs, instance, "BTC-PERP", *selection)

    assert not bad.success
    checks = {c.check_name: c for c in bad.get_asset_check_evaluations()}
    assert not checks["pandera_schema"].passed and not checks["gx_suite"].passed
    rules = checks["pandera_schema"].metadata["failing_rules"].value
    assert [r.data["rule"] for r in rules.records] == ["price_finite_positive"]
    failure = failure_of(bad)
    assert f"{FTX.name}, row 1000: rule 'price_finite_positive'" in failure.description
    assert failure.metadata["row"].value == 1000
    assert not bad.get_asset_materialization_events()
    assert seen == ["BTC-PERP"]  # nothing downstream ran on the bad data
    pd.testing.assert_frame_equal(bars_in(warehouse), before)


def test_a_truncated_gzip_fails_naming_file_row_and_rule(folder, tmp_path, instance):
    warehouse = tmp_path / "w.duckdb"
    defs = files_defs(folder, warehouse)
    assert materialize(defs, instance, "BTC-PERP", BARS).success
    before = bars_in(warehouse)

    data = FTX.read_bytes()
    (folder / FTX.name).unlink()
    (folder / FTX.name).write_bytes(data[: len(data) // 2])
    bad = materialize(defs, instance, "BTC-PERP", BARS)

    assert not bad.success
    failure = failure_of(bad)
    assert failure.metadata["rule"].value == "gzip_integrity"
    assert str(folder / FTX.name) in failure.description
    assert failure.metadata["row"].value > 1
    pd.testing.assert_frame_equal(bars_in(warehouse), before)


def test_a_materialization_carries_its_own_facts_and_stays_small(tmp_path, instance):
    """20 years of daily bars: one materialization with its own rows and span, no preview
    tables (the event log grew by 2.5 MB per ingest when each month carried the symbol's)."""
    defs = build_definitions(MarketDataResource(symbols=["SP500"]), str(tmp_path / "w.duckdb"))
    instance.add_dynamic_partitions(SYMBOLS.name, ["SP500"])
    result = materialize(defs, instance, "SP500", BARS)
    assert result.success
    events = result.get_asset_materialization_events()
    assert len(events) == 1 and events[0].partition == "SP500"
    metadata = events[0].materialization.metadata
    assert metadata["dagster/partition_row_count"].value == 5_031
    assert pd.Timestamp(metadata["last_ts"].value, unit="s", tz=UTC) == pd.Timestamp(
        "2018-12-31", tz=UTC)
    assert "preview" not in metadata
    size = len(dg.serialize_value(events[0]))
    assert size < 20_000, size


# --- concurrency: several runs, each on the multiprocess executor, on one DuckDB file ---------

LAUNCH = """
import sys, dagster as dg
import test_ingest_assets as here
start, end = sys.argv[2], sys.argv[3]
ops = {f"market__{t}": {"config": {"start": start, "end": end}} for t in sys.argv[1].split(",")}
with dg.DagsterInstance.get() as instance:
    with dg.execute_job(dg.reconstructable(here.ingest_job), instance=instance,
                        run_config={"ops": ops}, tags={"dagster/partition": sys.argv[4]},
                        asset_selection=[dg.AssetKey(["market", t])
                                         for t in sys.argv[1].split(",")],
                        raise_on_error=False) as result:
        sys.exit(0 if result.success else 1)
"""


def ingest_job():
    """Rebuilt inside each step subprocess from the environment (BOT4_* variables); the group's
    job runs on the definitions' multiprocess executor."""
    return build_definitions().resolve_job_def("market_data_job")


def test_parallel_multiprocess_runs_share_the_warehouse(folder, tmp_path):
    """Four runs launched at once, each in its own process with the multiprocess executor (the
    ticks run has two parallel steps), three of them merging overlapping windows of one
    symbol's bars: all succeed, nothing is lost."""
    warehouse = tmp_path / "w.duckdb"
    home = tmp_path / "dagster_home"
    env = {**os.environ, "BOT4_SOURCE": "files", "BOT4_PATH": str(folder),
           "BOT4_SYMBOL": "BTC-PERP", "BOT4_VOLUME_UNIT": "quote", "BOT4_WAREHOUSE": str(warehouse),
           "DAGSTER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(SYMBOLS.name, ["BTC-PERP", "BTCUSDT"])
    launches = [("bars", "2021-12-31T23:01", "2022-01-12", "BTC-PERP"),
                ("bars", "2022-01-10", "2022-01-25", "BTC-PERP"),
                ("bars", "2022-01-20", "2022-02-02", "BTC-PERP"),
                ("trades,quotes", "2020-02-22", "2020-02-23", "BTCUSDT")]
    processes = [subprocess.Popen([sys.executable, "-c", LAUNCH, *args], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for args in launches]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    counts = Warehouse(warehouse).row_counts()
    assert counts == {"market.bars": 45_031, "market.quotes": 9_999, "market.trades": 9_999}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 4 and all(r.is_success for r in runs)


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
