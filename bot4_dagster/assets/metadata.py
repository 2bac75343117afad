"""Metadata builders shared by the assets: what a user sees in the UI next to a materialization."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from ..data.tables import PROVENANCE


def frame_summary(frame: pd.DataFrame) -> dict:
    """Row count, schema, time span and a preview."""
    data = frame.drop(columns=[c for c in PROVENANCE if c in frame])
    meta: dict = {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=c, type=str(t)) for c, t in data.dtypes.items()]),
        "rows": len(data),
    }
    if "ts" in data and len(data):
        meta["first_ts"] = str(data["ts"].iloc[0])
        meta["last_ts"] = str(data["ts"].iloc[-1])
        meta["preview"] = dg.MetadataValue.md(data.tail(5).to_markdown(index=False))
    return meta


def outcome_metadata(outcome) -> dict:
    """A validator's verdict: failing rules with counts, and the first violations by file/row."""
    meta: dict = {"result": outcome.summary()}
    if outcome.counts:
        lines = ["| rule | failing |", "|---|---|"]
        lines += [f"| {rule} | {n:,} |" for rule, n in sorted(outcome.counts.items())]
        meta["failing_rules"] = dg.MetadataValue.md("\n".join(lines))
    if outcome.violations:
        lines = ["| file | row | rule | detail |", "|---|---|---|---|"]
        lines += [f"| `{v.file}` | {v.row or ''} | {v.rule} | {v.detail} |" for v in outcome.violations]
        meta["violations"] = dg.MetadataValue.md("\n".join(lines))
    return meta
