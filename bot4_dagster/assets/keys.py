"""Asset keys and partition mappings that several asset modules share."""

import dagster as dg

BARS, TRADES, QUOTES = (dg.AssetKey(["market", t]) for t in ("bars", "trades", "quotes"))
# a per-symbol asset reads all time partitions of its symbol
BY_SYMBOL = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="symbol")
