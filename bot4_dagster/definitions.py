"""The one ``Definitions`` of the code location (``workspace.yaml`` loads this module).

The market-data source is configured from the environment (``BOT4_SOURCE`` ...; README, "Sources")
or per run (``bot4 run`` passes its flags as resource config); the warehouse lives at
``$BOT4_HOME/warehouse.duckdb`` (default ``.bot4/``).
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from .assets import MODULES
from .automation.jobs import build_jobs
from .automation.schedules import SCHEDULES
from .automation.sensors import SENSORS
from .resources import (
    MarketDataResource,
    RegistryResource,
    StepIOManager,
    TrainingResource,
    WarehouseIOManager,
)
from .settings import warehouse_path

ASSETS = dg.load_assets_from_modules(MODULES)
CHECKS = dg.load_asset_checks_from_modules(MODULES)


def build_definitions(market_data: MarketDataResource | None = None,
                      warehouse: str | None = None) -> dg.Definitions:
    """The project's definitions; tests pass their own source and warehouse."""
    database = str(warehouse or warehouse_path())
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=build_jobs(ASSETS),
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources={
            "io_manager": WarehouseIOManager(duckdb=DuckDBResource(database=database)),
            "step_io": StepIOManager(),
            "training": TrainingResource.from_env(),
            "market_data": market_data or MarketDataResource.from_env(),
            "model_registry": RegistryResource(),
        },
        executor=dg.multiprocess_executor.configured({
            "max_concurrent": 2,
            "start_method": {"forkserver": {"preload_modules": ["bot4_dagster.definitions"]}}}),
    )


defs = build_definitions()
