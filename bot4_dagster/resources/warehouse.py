"""The warehouse I/O manager: DataFrames in and out of DuckDB, written atomically under the
warehouse lock.

The database path comes from dagster-duckdb's ``DuckDBResource``; connections are the
warehouse's own (locked, transactional). The asset key names the table (``["market", "bars"]``
-> ``market.bars``) unless its ``table`` metadata names another; a partitioned asset names its
partition column with ``metadata={"partition_expr": "symbol"}``. Two kinds of writes:

- an ingest hands over ``Ingested`` rows, which are merged by key (nothing stored is deleted;
  a contradicting row fails the step with file, row and rule), or, only when asked, replace one
  time window of the symbol;
- every computed asset hands over a DataFrame that replaces its partition's rows.

Written by hand rather than with ``DuckDBPandasIOManager`` because that one cannot merge,
deletes and inserts in separate transactions, and lets the first DataFrame decide column types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from ..data.tables import TABLES
from ..data.warehouse import Slice, Warehouse


@dataclass(frozen=True)
class Ingested:
    """Validated rows of one market table, and how to store them."""

    table: str  # a key of data.tables.TABLES
    frame: pd.DataFrame
    replace_window: tuple[pd.Timestamp, pd.Timestamp] | None = None  # None: merge by key


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset as the table ``<key prefix>.<name>`` of the DuckDB warehouse."""

    duckdb: DuckDBResource

    def warehouse(self) -> Warehouse:
        # Warehouse connects itself (not through DuckDBResource.get_connection, which retries a
        # held DuckDB file silently for ~100 s) so that "warehouse locked by PID N" shows at once
        return Warehouse(self.duckdb.database)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        where = table_slice(context, context.definition_metadata or {})
        if isinstance(obj, Ingested):
            context.add_output_metadata(self._ingest(where, obj))
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: the warehouse stores "
                            f"DataFrames, got {type(obj).__name__}")
        rows = self.warehouse().replace(where, obj)
        context.add_output_metadata({
            "dagster/table_name": where.table,
            ("dagster/partition_row_count" if context.has_asset_partitions
             else "dagster/row_count"): rows,
        })

    def _ingest(self, where: Slice, rows: Ingested) -> dict:
        warehouse = self.warehouse()
        if rows.replace_window is None:
            result = warehouse.merge(rows.table, rows.frame)
            written = {"rows_inserted": dg.MetadataValue.int(result.inserted),
                       "rows_unchanged": dg.MetadataValue.int(result.unchanged)}
        else:
            start, end = rows.replace_window
            window = Slice(TABLES[rows.table].name, where.equals, "ts", start, end)
            written = {"rows_written": dg.MetadataValue.int(warehouse.replace(window, rows.frame))}
        span = warehouse.span(where)
        return {
            "dagster/table_name": where.table,
            **written,
            "dagster/partition_row_count": dg.MetadataValue.int(span.rows),
            "first_ts": dg.MetadataValue.timestamp(span.first_ts) if span.rows else "none",
            "last_ts": dg.MetadataValue.timestamp(span.last_ts) if span.rows else "none",
        }

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        metadata = (upstream.definition_metadata if upstream is not None else None) or {}
        return self.warehouse().read(table_slice(context, metadata))


def table_slice(context: dg.InputContext | dg.OutputContext, metadata: dict) -> Slice:
    """The rows of the table that the context's partitions own."""
    path = context.asset_key.path
    table = metadata.get("table") or (".".join(path[-2:]) if len(path) > 1
                                      else f"main.{path[0]}")
    if not context.has_asset_partitions:
        return Slice(table, {})
    column = metadata.get("partition_expr")
    if column is None:
        raise ValueError(f"{context.asset_key.to_user_string()} is partitioned but declares no "
                         "'partition_expr' metadata naming its partition column")
    return Slice(table, {column: sorted(set(context.asset_partition_keys))})
