"""Metadata builders shared by the assets: what a user sees in the UI next to a materialization.

Tables people sort or compare are ``TableMetadataValue`` with typed columns; every warehouse
table declares its column schema (with descriptions, from ``bot4_dagster.catalog``); numbers are
ints and floats so that the UI plots their history per partition.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from ..catalog import table_columns

_TYPES = {"b": "bool", "i": "int", "u": "int", "f": "float", "M": "timestamp"}


def column_schema(table: str) -> dg.TableSchema:
    """The ``dagster/column_schema`` of a warehouse table, with each column's description."""
    return dg.TableSchema(columns=[dg.TableColumn(name=c.name, type=c.type,
                                                  description=c.description)
                                   for c in table_columns(table)])


def _cell(value):
    """A table cell as a plain Python value (None for missing)."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    """A DataFrame as a typed, sortable table in the UI."""
    data = frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    columns = [dg.TableColumn(name=str(c), type=_TYPES.get(data[c].dtype.kind, "string"))
               for c in data.columns]
    records = [dg.TableRecord({str(c): _cell(v) for c, v in row.items()})
               for row in data.to_dict("records")]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def files_table(files) -> dg.TableMetadataValue | str:
    """The source files a window was read from, with format, rows and units."""
    if not files:
        return "no source rows in this window"
    return table(pd.DataFrame([{"file": f.path, "format": f.format, "rows": f.rows,
                                "volume_unit": f.volume_unit, "time_unit": f.ts_unit}
                               for f in files]))


def outcome_metadata(outcome) -> dict:
    """A validator's verdict: failing rules with counts, and the first violations by file/row."""
    meta: dict = {"result": outcome.summary()}
    if outcome.counts:
        meta["failing_rules"] = table(pd.DataFrame(
            sorted(outcome.counts.items()), columns=["rule", "failing"]))
    if outcome.violations:
        meta["violations"] = table(pd.DataFrame(
            [{"file": v.file, "row": v.row, "rule": v.rule, "detail": v.detail}
             for v in outcome.violations]))
    return meta
