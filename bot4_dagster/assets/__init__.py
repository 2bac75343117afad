"""Dagster assets: thin wrappers that load inputs, call the library, store outputs, add metadata."""

import warnings

import dagster as dg

# Two beta APIs this project relies on knowingly: single-run backfills (one run per symbol over
# many time partitions) and the symbol-only view of symbol x time partitions.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
warnings.filterwarnings("ignore", category=dg.BetaWarning,
                        message=".*MultiToSingleDimensionPartitionMapping.*")
