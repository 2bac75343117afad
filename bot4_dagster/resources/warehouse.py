"""The warehouse I/O manager: DataFrames in and out of DuckDB (connections from dagster-duckdb's
``DuckDBResource``), one partition slice per write, written atomically under the warehouse lock.

The asset key names the table (``["market", "bars"]`` -> ``market.bars``). A partitioned asset
declares which column each partition dimension lives in, e.g.
``metadata={"partition_expr": {"symbol": "symbol", "month": "ts"}}``. Written by hand rather than
with ``DuckDBPandasIOManager`` because that one cannot resolve dynamic (symbol) partitions, deletes
and inserts in separate transactions, and lets the first DataFrame decide a table's column types.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from ..data.warehouse import Slice, Warehouse


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset as the table ``<key prefix>.<name>`` of the DuckDB warehouse."""

    duckdb: DuckDBResource

    def warehouse(self) -> Warehouse:
        return Warehouse(self.duckdb.database, connect=self.duckdb.get_connection)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: the warehouse stores "
                            f"DataFrames, got {type(obj).__name__}")
        where = table_slice(context, context.definition_metadata or {})
        rows = self.warehouse().replace(where, obj)
        context.add_output_metadata({
            "dagster/table_name": where.table,
            "dagster/partition_row_count" if context.has_asset_partitions else "dagster/row_count": rows,
            "warehouse": dg.MetadataValue.path(str(self.duckdb.database)),
        })

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        metadata = (upstream.definition_metadata if upstream is not None else None) or {}
        return self.warehouse().read(table_slice(context, metadata))


def table_slice(context: dg.InputContext | dg.OutputContext, metadata: dict) -> Slice:
    """The rows of the table that the context's partitions own."""
    path = context.asset_key.path
    table = ".".join(path[-2:]) if len(path) > 1 else f"main.{path[0]}"
    if not context.has_asset_partitions:
        return Slice(table, {})
    expr = metadata.get("partition_expr")
    if expr is None:
        raise ValueError(f"{context.asset_key.to_user_string()} is partitioned but declares no "
                         "'partition_expr' metadata naming its partition column(s)")
    partitions_def = context.asset_partitions_def
    keys = list(context.asset_partition_keys)
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = [(d.name, d.partitions_def, [k.keys_by_dimension[d.name] for k in keys])
                for d in partitions_def.partitions_defs]
    else:
        dims = [(None, partitions_def, keys)]
    equals, window = {}, (None, None, None)
    for name, definition, dim_keys in dims:
        column = expr[name] if isinstance(expr, dict) else expr
        if isinstance(definition, dg.TimeWindowPartitionsDefinition):
            windows = [definition.time_window_for_partition_key(k) for k in set(dim_keys)]
            window = (column, pd.Timestamp(min(w.start for w in windows)),
                      pd.Timestamp(max(w.end for w in windows)))
        else:
            equals[column] = sorted(set(dim_keys))
    return Slice(table, equals, *window)
