"""Sensors and schedules: what runs without anyone clicking."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from conftest import FTX, TRADES

from bot4_dagster.automation.partitions import SYMBOLS
from bot4_dagster.automation.schedules import daily_bars_schedule, daily_ticks_schedule
from bot4_dagster.automation.sensors import symbol_sensor
from bot4_dagster.definitions import build_definitions
from bot4_dagster.resources import MarketDataResource


def files_source(tmp_path) -> MarketDataResource:
    folder = tmp_path / "exports"
    folder.mkdir()
    for file in (FTX, TRADES):
        (folder / file.name).symlink_to(file)
    return MarketDataResource(source="files", path=str(folder), symbol="BTC-PERP")


def test_symbol_sensor_adds_new_symbols_once(tmp_path):
    source = files_source(tmp_path)
    with dg.instance_for_test() as instance:
        first = symbol_sensor(dg.build_sensor_context(instance=instance, resources={"market_data": source}))
        assert isinstance(first, dg.SensorResult)
        request = first.dynamic_partitions_requests[0]
        assert sorted(request.partition_keys) == ["BTC-PERP", "BTCUSDT"]
        instance.add_dynamic_partitions(SYMBOLS.name, list(request.partition_keys))
        second = symbol_sensor(dg.build_sensor_context(instance=instance, resources={"market_data": source}))
        assert isinstance(second, dg.SkipReason)


def test_daily_schedules_request_only_the_newest_partitions(tmp_path):
    source = files_source(tmp_path)
    defs = build_definitions(source, str(tmp_path / "w.duckdb"))
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, resources={"market_data": source},
            scheduled_execution_time=datetime(2022, 1, 21, 0, 30, tzinfo=UTC))
        bars = list(daily_bars_schedule(context))
        assert [r.partition_key for r in bars] == ["2022-01-01|BTC-PERP"]
        job = defs.resolve_job_def("ingest_bars")
        assert dg.validate_run_config(job, bars[0].run_config) is not None

        late = dg.build_schedule_context(
            instance=instance, resources={"market_data": source},
            scheduled_execution_time=datetime(2020, 2, 23, 0, 45, tzinfo=UTC))
        ticks = daily_ticks_schedule(late)
        assert [r.partition_key for r in ticks] == ["2020-02-22|BTCUSDT"]


def test_schedules_skip_a_finished_history():
    bundled = MarketDataResource()
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, resources={"market_data": bundled},
            scheduled_execution_time=datetime(2026, 11, 24, 0, 30, tzinfo=UTC))
        assert isinstance(daily_bars_schedule(context), dg.SkipReason)
