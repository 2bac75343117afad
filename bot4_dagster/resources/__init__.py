"""Dagster resources: the market-data source and the DuckDB warehouse I/O manager."""

from .market_data import MarketDataResource
from .warehouse import WarehouseIOManager

__all__ = ["MarketDataResource", "WarehouseIOManager"]
