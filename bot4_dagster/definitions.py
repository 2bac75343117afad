"""The one ``Definitions`` of the code location (``workspace.yaml`` loads this module).

The market-data source is configured from the environment (``BOT4_SOURCE`` ...; README, "Sources")
and the warehouse lives at ``$BOT4_HOME/warehouse.duckdb`` (default ``.bot4/``).
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from .assets.features import microstructure
from .assets.ingest import INGEST_ASSETS
from .assets.labels import cv_folds, labels, leakage_report, no_leakage
from .assets.perf import perf_manifest
from .assets.volatility import garch_volatility
from .automation.jobs import JOBS
from .automation.schedules import SCHEDULES
from .automation.sensors import SENSORS
from .resources import MarketDataResource, WarehouseIOManager
from .settings import warehouse_path


def build_definitions(market_data: MarketDataResource | None = None,
                      warehouse: str | None = None) -> dg.Definitions:
    """The project's definitions; tests pass their own source and warehouse."""
    database = str(warehouse or warehouse_path())
    return dg.Definitions(
        assets=[*INGEST_ASSETS, microstructure, garch_volatility, labels, cv_folds, leakage_report,
                perf_manifest],
        asset_checks=[no_leakage],
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources={
            "io_manager": WarehouseIOManager(duckdb=DuckDBResource(database=database)),
            "market_data": market_data or MarketDataResource.from_env(),
        },
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )


defs = build_definitions()
