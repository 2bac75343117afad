"""Dagster assets: thin wrappers that load inputs, call the library, store outputs, add metadata.

``MODULES`` is the registry: ``definitions.py`` loads every asset and asset check from these
modules, so a new asset in an existing module needs no other edit, and a new module one line here.
"""

import warnings

import dagster as dg

# Preview API this project relies on knowingly: asset checks partitioned like their asset.
warnings.filterwarnings("ignore", category=dg.PreviewWarning,
                        message=".*partitions_def on an AssetCheckSpec.*")

# Imported after the filter on purpose: their asset checks warn as they are defined, at import.
from . import (  # noqa: E402 - after the filter
    calibration,
    candidate,
    features,
    ingest,
    labels,
    models,
    perf,
    registry,
    volatility,
)

MODULES = [ingest, features, volatility, labels, models, calibration, candidate, registry, perf]
