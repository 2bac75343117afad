"""What runs without anyone clicking: the symbol sensor, the nightly ingest schedules and the
declarative automation that refreshes everything downstream of an ingest."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from conftest import FTX, TRADES
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from bot4_dagster.assets.keys import BARS, FEATURES, FOLDS, LABELS, LEAKAGE, QUOTES, VOLATILITY
from bot4_dagster.assets.keys import TRADES as TRADE_KEY
from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.automation.schedules import daily_bars_schedule, daily_ticks_schedule
from bot4_dagster.automation.sensors import symbol_sensor
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource

DOWNSTREAM = {FEATURES, VOLATILITY, LABELS, FOLDS, LEAKAGE}


def files_source(tmp_path) -> MarketDataResource:
    folder = tmp_path / "exports"
    folder.mkdir()
    for file in (FTX, TRADES):
        (folder / file.name).symlink_to(file)
    return MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP")


def test_symbol_sensor_adds_new_symbols_once(tmp_path):
    source = files_source(tmp_path)
    with dg.instance_for_test() as instance:
        first = symbol_sensor(dg.build_sensor_context(instance=instance,
                                                      resources={"market_data": source}))
        assert isinstance(first, dg.SensorResult)
        request = first.dynamic_partitions_requests[0]
        assert sorted(request.partition_keys) == ["BTC-PERP", "BTCUSDT"]
        instance.add_dynamic_partitions(SYMBOLS.name, list(request.partition_keys))
        second = symbol_sensor(dg.build_sensor_context(instance=instance,
                                                       resources={"market_data": source}))
        assert isinstance(second, dg.SkipReason)


def test_daily_schedules_request_only_the_newest_window(tmp_path):
    source = files_source(tmp_path)
    defs = build_definitions(source, str(tmp_path / "w.duckdb"))
    job = defs.resolve_job_def("market_data_job")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, resources={"market_data": source},
            scheduled_execution_time=datetime(2022, 1, 21, 0, 30, tzinfo=UTC))
        bars = daily_bars_schedule(context)
        assert [(r.partition_key, r.asset_selection) for r in bars] == [("BTC-PERP", [BARS])]
        window = bars[0].run_config["ops"]["market__bars"]["config"]
        assert (window["start"], window["end"]) == ("2022-01-01T00:00:00+00:00",
                                                     "2022-01-21T00:00:00+00:00")
        assert dg.validate_run_config(job, bars[0].run_config) is not None

        late = dg.build_schedule_context(
            instance=instance, resources={"market_data": source},
            scheduled_execution_time=datetime(2020, 2, 23, 0, 45, tzinfo=UTC))
        ticks = daily_ticks_schedule(late)
        assert [(r.partition_key, r.asset_selection) for r in ticks] == [("BTCUSDT", [TRADE_KEY])]
        window = ticks[0].run_config["ops"]["market__trades"]["config"]
        assert (window["start"], window["end"]) == ("2020-02-22T00:00:00+00:00",
                                                     "2020-02-23T00:00:00+00:00")


def test_schedules_skip_a_finished_history():
    bundled = MarketDataResource()
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, resources={"market_data": bundled},
            scheduled_execution_time=datetime(2026, 11, 24, 0, 30, tzinfo=UTC))
        assert isinstance(daily_bars_schedule(context), dg.SkipReason)


def test_definitions_carry_the_automation():
    with dg.instance_for_test():  # Dagster's process-global storage handle: a live instance
        defs = build_definitions(MarketDataResource())
        sensor = defs.resolve_sensor_def("automation_sensor")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        graph = defs.resolve_asset_graph()
        for key in DOWNSTREAM:
            assert graph.get(key).automation_condition is not None, key
        for key in (BARS, TRADE_KEY, QUOTES):
            assert graph.get(key).automation_condition is None  # ingest runs on its schedules
            assert graph.get(key).freshness_policy is not None


# --- declarative automation, evaluated as the daemon's automation sensor would ---------------


def _materialized(instance, key, symbol, checks=(), passed=True):
    """A materialization of ``key``'s partition and its checks' results, as a run records them
    (a check evaluation names the materialization it checked)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=symbol))
    record = instance.fetch_materializations(key, limit=1).records[0]
    target = AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)
    for name in checks:
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=key, check_name=name, passed=passed, partition=symbol,
            target_materialization_data=target))


def _requested(result) -> dict[dg.AssetKey, set[str]]:
    return {key: set(result.get_requested_partitions(key)) for key in DOWNSTREAM | {BARS}
            if result.get_num_requested(key)}


@pytest.fixture
def automation():
    defs = build_definitions(MarketDataResource())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SYMBOLS.name, ["SP500", "NASDAQ"])
        yield defs, instance


def test_a_new_bars_partition_requests_exactly_its_downstream_partitions(automation):
    defs, instance = automation
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # nothing ingested: nothing to compute

    _materialized(instance, BARS, "SP500", checks=("pandera_schema", "gx_suite"))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    # the whole chain below bars, for SP500 only; trades and quotes (absent from a bars-only
    # source) do not hold the features back
    assert _requested(second) == {key: {"SP500"} for key in DOWNSTREAM}

    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert third.total_requested == 0  # requested once, not again on every tick


def test_a_failed_blocking_check_requests_nothing_below_it(automation):
    """Both symbols' GARCH updates; SP500's blocking arch check fails, NASDAQ's passes: only
    NASDAQ's labels, folds and leakage proof are requested."""
    defs, instance = automation
    for symbol in ("SP500", "NASDAQ"):
        for key, checks in ((BARS, ("pandera_schema", "gx_suite")), (FEATURES, ())):
            _materialized(instance, key, symbol, checks)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)

    _materialized(instance, VOLATILITY, "SP500", checks=("matches_arch",), passed=False)
    _materialized(instance, VOLATILITY, "NASDAQ", checks=("matches_arch",), passed=True)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert _requested(tick) == {key: {"NASDAQ"} for key in (LABELS, FOLDS, LEAKAGE)}


def test_failed_trades_checks_hold_the_features_back(automation):
    defs, instance = automation
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    _materialized(instance, BARS, "NASDAQ", checks=("pandera_schema", "gx_suite"))
    _materialized(instance, TRADE_KEY, "NASDAQ", checks=("pandera_schema", "gx_suite"),
                  passed=False)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    requested = _requested(tick)
    assert FEATURES not in requested  # optional when absent, binding when present
    assert requested.get(VOLATILITY) == {"NASDAQ"}  # GARCH reads only the bars
