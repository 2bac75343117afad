"""Dagster assets: thin wrappers that load inputs, call the library, store outputs, add metadata."""

import warnings

import dagster as dg

# Beta/preview APIs this project relies on knowingly: single-run backfills (one run per symbol over
# many time partitions), the symbol-only view of symbol x time partitions, partitioned checks.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
warnings.filterwarnings("ignore", category=dg.BetaWarning,
                        message=".*MultiToSingleDimensionPartitionMapping.*")
warnings.filterwarnings("ignore", category=dg.PreviewWarning,
                        message=".*partitions_def on an AssetCheckSpec.*")
