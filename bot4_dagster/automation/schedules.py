"""Schedules. The daily ingest re-reads only the newest partitions: yesterday's trades and quotes,
and the month of bars that contains yesterday (a month partition is refreshed until it is over)."""

from datetime import timedelta

import dagster as dg

from ..resources.market_data import MarketDataResource
from .jobs import ingest_bars_job, ingest_ticks_job, perf_manifest_job
from .partitions import partition_key


def _runs(table: str, job, market_data: MarketDataResource, day) -> list[dg.RunRequest]:
    requests = []
    for extent in market_data.open().extents():
        if extent.table != table or extent.end < day - timedelta(days=31):
            continue  # a finished history (e.g. the bundled data) has nothing new
        key = partition_key(table, extent.symbol, day)
        requests.append(dg.RunRequest(run_key=f"{table}:{key}:{day:%Y-%m-%d}",
                                      partition_key=str(key), job_name=job.name,
                                      asset_selection=[dg.AssetKey(["market", table])]))
    return requests


@dg.schedule(job=ingest_bars_job, cron_schedule="30 0 * * *", execution_timezone="UTC",
             description="Each night: re-ingest the current month of bars for every live symbol.")
def daily_bars_schedule(context: dg.ScheduleEvaluationContext, market_data: MarketDataResource):
    day = context.scheduled_execution_time - timedelta(days=1)
    return _runs("bars", ingest_bars_job, market_data, day) or dg.SkipReason(
        "no symbol of the configured source has data in the last month")


@dg.schedule(job=ingest_ticks_job, cron_schedule="45 0 * * *", execution_timezone="UTC",
             description="Each night: ingest yesterday's trades and quotes for every live symbol.")
def daily_ticks_schedule(context: dg.ScheduleEvaluationContext, market_data: MarketDataResource):
    day = context.scheduled_execution_time - timedelta(days=1)
    requests = [r for table in ("trades", "quotes")
                for r in _runs(table, ingest_ticks_job, market_data, day)]
    return requests or dg.SkipReason("no symbol of the configured source has recent trades or quotes")


perf_manifest_schedule = dg.ScheduleDefinition(
    name="weekly_perf_manifest", job=perf_manifest_job, cron_schedule="0 3 * * 1",
    execution_timezone="UTC", description="Each Monday: refresh the performance manifest.",
)

SCHEDULES = [daily_bars_schedule, daily_ticks_schedule, perf_manifest_schedule]
