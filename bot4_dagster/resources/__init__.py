"""Dagster resources: the market-data source, the DuckDB warehouse I/O manager, and the step I/O
manager that hands the training fan-out's intermediate results from op to op, and how the
base learners train, and where the model registry is."""

from .market_data import MarketDataResource
from .registry import RegistryResource
from .step_io import StepIOManager
from .training import TrainingResource
from .warehouse import WarehouseIOManager

__all__ = ["MarketDataResource", "RegistryResource", "StepIOManager", "TrainingResource",
           "WarehouseIOManager"]
