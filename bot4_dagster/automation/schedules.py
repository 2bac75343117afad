"""Schedules. The nightly ingest reads only the newest window of each live symbol: the month of
bars that contains yesterday (re-read until it is over; the merge inserts only what is new) and
yesterday's trades and quotes. What depends on them refreshes through the automation conditions.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pandas as pd

from ..assets.keys import INGEST
from ..resources.market_data import MarketDataResource

INGEST_JOB = "market_data_job"


def ingest_requests(tables: tuple[str, ...], market_data: MarketDataResource,
                    day: pd.Timestamp) -> list[dg.RunRequest]:
    """One run per live symbol and table: the window of ``day`` (bars: its whole month so far)."""
    requests = []
    today = day.normalize() + pd.Timedelta(days=1)
    for extent in market_data.open().extents():
        if extent.table not in tables or extent.end < day - pd.Timedelta(days=31):
            continue  # a finished history (e.g. the bundled data) has nothing new
        start = day.normalize().replace(day=1) if extent.table == "bars" else day.normalize()
        key = INGEST[extent.table]
        requests.append(dg.RunRequest(
            run_key=f"{extent.table}:{extent.symbol}:{day:%Y-%m-%d}",
            partition_key=extent.symbol, job_name=INGEST_JOB, asset_selection=[key],
            run_config={"ops": {"__".join(key.path): {"config": {
                "start": start.isoformat(), "end": today.isoformat()}}}}))
    return requests


def _yesterday(context: dg.ScheduleEvaluationContext) -> pd.Timestamp:
    return pd.Timestamp(context.scheduled_execution_time - timedelta(days=1)).tz_convert("UTC")


@dg.schedule(job_name=INGEST_JOB, cron_schedule="30 0 * * *", execution_timezone="UTC",
             description="Each night: re-ingest the current month of bars for every live symbol.")
def daily_bars_schedule(context: dg.ScheduleEvaluationContext, market_data: MarketDataResource):
    return ingest_requests(("bars",), market_data, _yesterday(context)) or dg.SkipReason(
        "no symbol of the configured source has bars in the last month")


@dg.schedule(job_name=INGEST_JOB, cron_schedule="45 0 * * *", execution_timezone="UTC",
             description="Each night: ingest yesterday's trades and quotes for every live symbol.")
def daily_ticks_schedule(context: dg.ScheduleEvaluationContext, market_data: MarketDataResource):
    return ingest_requests(("trades", "quotes"), market_data, _yesterday(context)) or dg.SkipReason(
        "no symbol of the configured source has recent trades or quotes")


perf_manifest_schedule = dg.ScheduleDefinition(
    name="weekly_perf_manifest", job_name="performance_job", cron_schedule="0 3 * * 1",
    execution_timezone="UTC", description="Each Monday: refresh the performance manifest.",
)

SCHEDULES = [daily_bars_schedule, daily_ticks_schedule, perf_manifest_schedule]
