"""Partitions. Per-instrument assets are partitioned by symbol (dynamic: the source decides which
symbols exist); market data also by time, so a scheduled run ingests only the newest slice.

- bars: symbol x month. A month is 21 daily bars or 43,200 one-minute bars: 20 years of daily
  history is 240 partitions per symbol (ingested as one run per symbol, see ``bot4 run``), a month
  of 1-minute bars a comfortable 3 MB, and Binance's archive publishes monthly kline files.
- trades, quotes: symbol x day. A liquid pair trades millions of times a month; a day is what
  Binance's and Tardis.dev's daily files hold and what fits in memory on a laptop.
"""

from __future__ import annotations

import dagster as dg

SYMBOLS = dg.DynamicPartitionsDefinition(name="symbol")
MONTHS = dg.MonthlyPartitionsDefinition(start_date="1990-01-01", end_offset=1)
DAYS = dg.DailyPartitionsDefinition(start_date="2017-01-01", end_offset=1)

BAR_PARTITIONS = dg.MultiPartitionsDefinition({"symbol": SYMBOLS, "month": MONTHS})
TICK_PARTITIONS = dg.MultiPartitionsDefinition({"symbol": SYMBOLS, "day": DAYS})

# the time dimension of each ingest table
TIME_DIMENSION = {"bars": ("month", MONTHS), "trades": ("day", DAYS), "quotes": ("day", DAYS)}
PARTITIONS = {"bars": BAR_PARTITIONS, "trades": TICK_PARTITIONS, "quotes": TICK_PARTITIONS}


def partition_key(table: str, symbol: str, when) -> dg.MultiPartitionKey:
    """The partition of ``table`` that holds ``symbol`` at time ``when``."""
    dim, definition = TIME_DIMENSION[table]
    window_key = definition.get_partition_key_for_timestamp(when.timestamp())
    return dg.MultiPartitionKey({"symbol": symbol, dim: window_key})


def range_tags(table: str, symbol: str, start, end) -> dict[str, str]:
    """Run tags that make one run cover every partition of ``symbol`` from ``start`` to ``end``."""
    return {
        "dagster/asset_partition_range_start": str(partition_key(table, symbol, start)),
        "dagster/asset_partition_range_end": str(partition_key(table, symbol, end)),
    }
