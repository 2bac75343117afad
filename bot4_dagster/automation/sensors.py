"""Sensors. ``symbol_sensor`` keeps the dynamic ``symbol`` partitions in step with the source, so
new instruments appear in the UI (and in schedules) without anyone adding them by hand;
``automation_sensor`` evaluates the assets' automation conditions (Dagster's default one is
stopped until someone starts it), so a scheduled ingest refreshes everything downstream."""

import dagster as dg

from ..resources.market_data import MarketDataResource
from .partitions import SYMBOLS


@dg.sensor(minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Add a symbol partition for every symbol the configured source holds.")
def symbol_sensor(context: dg.SensorEvaluationContext, market_data: MarketDataResource):
    held = sorted({e.symbol for e in market_data.open().extents()})
    known = set(context.instance.get_dynamic_partitions(SYMBOLS.name))
    new = [s for s in held if s not in known]
    if not new:
        return dg.SkipReason(f"all {len(held)} symbol(s) of the source are known")
    return dg.SensorResult(dynamic_partitions_requests=[SYMBOLS.build_add_request(new)])


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor", target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Requests the downstream partitions whose dependencies updated and whose "
                "blocking checks passed (each asset's automation condition).")

SENSORS = [symbol_sensor, automation_sensor]
