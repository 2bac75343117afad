"""Merging an ingest into a stored market table by key: new rows are added, identical rows are
left as they are, and a row that contradicts a stored one refuses the whole write.

Why merge and not replace: a file that covers part of a month, or a source that lacks a month,
must not delete what is already stored. Keys (``tables.py``): bars (symbol, ts), trades
(symbol, trade_id), quotes (symbol, ts) as groups: all quotes of one timestamp, in file order,
are one unit that is either new or equal to the stored group. The result is the union of what is
stored and what came in, so merging twice changes nothing and the order of merges does not
matter. The merged table must keep the table's order rule per symbol; with a time key that holds
by construction, for trades a new trade_id must also fit between its stored neighbours' ts.

This module plans a merge on frames; ``Warehouse.merge`` runs it inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import Violation
from .tables import Table, conform
from .validation import MAX_LISTED, locate

NS_PARAM = "make_timestamp_ns(?)"  # a bound for a TIMESTAMP_NS column, given as epoch ns (exact)

# per table: the columns whose order the rule fixes, in the order of the key; True = strictly
ORDER = {
    "market.bars": (("ts", True),),
    "market.trades": (("trade_id", True), ("ts", False)),
    "market.quotes": (("ts", False),),
}


@dataclass(frozen=True)
class Span:
    """What a table holds for one symbol (or one slice): row count and first/last time."""

    rows: int
    first_ts: pd.Timestamp | None
    last_ts: pd.Timestamp | None


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: rows inserted, rows already stored identically, and per symbol of the
    incoming frame the table's span after the write."""

    table: str  # "schema.table"
    inserted: int
    unchanged: int
    spans: dict[str, Span]


@dataclass
class Plan:
    """The merge of one symbol: positions (in the incoming frame) of the rows to insert."""

    new: np.ndarray
    unchanged: int
    violations: list[Violation]
    total: int  # violations found (only the first MAX_LISTED are kept)


def rule_name(column: str, strict: bool) -> str:
    return f"{column}_{'strictly_increasing' if strict else 'non_decreasing'}"


def read_stored(conn, spec: Table, symbol: str, part: pd.DataFrame) -> pd.DataFrame:
    """The stored rows that ``part`` (one symbol) can collide with: those inside its key range,
    and for a key that is not the time column, the stored neighbour on either side (they decide
    whether the new rows keep ts in order)."""
    key = spec.key[-1]
    lo, hi = part[key].min(), part[key].max()
    lo, hi = (lo.value, hi.value) if key == "ts" else (int(lo), int(hi))
    cols = ", ".join(spec.names)
    bound = "make_timestamp_ns" if key == "ts" else ""
    inside = (f"SELECT {cols} FROM {spec.name} WHERE symbol = $1 AND {key} BETWEEN {bound}($2) "
              f"AND {bound}($3)")
    if key == "ts":
        sql = f"{inside} ORDER BY ts, rowid"  # rowid: a quote group's stored order
    else:
        sql = (f"{inside} UNION ALL (SELECT {cols} FROM {spec.name} WHERE symbol = $1 AND "
               f"{key} < $2 ORDER BY {key} DESC LIMIT 1) UNION ALL (SELECT {cols} FROM "
               f"{spec.name} WHERE symbol = $1 AND {key} > $3 ORDER BY {key} LIMIT 1) "
               f"ORDER BY {key}")
    stored = conn.execute(sql, [symbol, lo, hi]).df()
    return conform(spec, stored).reset_index(drop=True)


def read_spans(conn, table: str, symbols: list[str], time_column: str = "ts") -> dict[str, Span]:
    """Rows and first/last time per symbol of ``table``."""
    if not symbols:
        return {}
    marks = ", ".join("?" for _ in symbols)
    rows = conn.execute(
        f"SELECT symbol, count(*), epoch_ns(min({time_column})), epoch_ns(max({time_column})) "
        f"FROM {table} WHERE symbol IN ({marks}) GROUP BY symbol", symbols).fetchall()
    found = {s: Span(int(n), _utc(lo), _utc(hi)) for s, n, lo, hi in rows}
    return {s: found.get(s, Span(0, None, None)) for s in symbols}


def _utc(value) -> pd.Timestamp | None:
    """UTC time of a datetime, a zone-less one (taken as UTC) or an int of epoch nanoseconds."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def plan(spec: Table, stored: pd.DataFrame, part: pd.DataFrame, frame: pd.DataFrame) -> Plan:
    """Compare one symbol's incoming rows (``part``, indexed by position in ``frame``, which
    holds the provenance) with the stored rows ``read_stored`` found."""
    found: list[Violation] = []
    total = _incoming_order(spec, part, frame, found)
    if total:
        return Plan(np.array([], dtype=np.int64), 0, found, total)
    key = spec.key[-1]
    incoming = part.reset_index(names="_at")
    on = [key]
    if spec.grouped:
        incoming["_pos"] = incoming.groupby(key, sort=False).cumcount()
        stored = stored.assign(_pos=stored.groupby(key, sort=False).cumcount())
        on.append("_pos")
    values = [c for c in spec.values if c != "symbol"]
    joined = incoming[["_at", *on, *values]].merge(
        stored[[*on, *values]], on=on, how="left", suffixes=("", "_stored"), indicator=True)
    matched = (joined["_merge"] == "both").to_numpy()
    differs = np.column_stack([_differs(joined[c], joined[f"{c}_stored"]) & matched
                               for c in values])
    bad_row = differs.any(axis=1)
    if spec.grouped:
        new, unchanged, total = _groups(spec, stored, joined, matched, bad_row, differs, values,
                                        frame, found)
    else:
        new = ~matched
        unchanged = int((matched & ~bad_row).sum())
        total = int(bad_row.sum())
        for i in np.flatnonzero(bad_row)[:MAX_LISTED]:
            found.append(_conflict(frame, joined, i, values[int(np.argmax(differs[i]))],
                                   f"the stored row with {key}={_show(joined[key].iat[i])}"))
    new_at = joined["_at"].to_numpy()[new]
    if not total and key != "ts":  # a time key keeps the order by construction
        total = _seams(spec, stored, frame.loc[new_at], frame, found)
    return Plan(new_at, unchanged, found, total)


def _differs(a: pd.Series, b: pd.Series) -> np.ndarray:
    same = a.eq(b).fillna(False).to_numpy(bool) | (a.isna().to_numpy() & b.isna().to_numpy())
    return ~same


def _groups(spec, stored, joined, matched, bad_row, differs, values, frame, found):
    """Quotes: a group whose timestamp is stored must equal the stored group row for row."""
    key = spec.key[-1]
    ts = joined[key].values
    size = joined.groupby(key, sort=False)[key].transform("size").to_numpy()
    held = joined[key].map(stored.groupby(key, sort=False).size()).fillna(0).to_numpy(np.int64)
    in_stored_group = held > 0
    # a row of a stored group conflicts if it differs from its stored twin, has none, or the
    # groups differ in size
    row_bad = in_stored_group & (bad_row | ~matched | (size != held))
    bad_group = pd.Series(row_bad).groupby(ts, sort=False).transform("any").to_numpy(bool)
    first_bad = pd.Series(np.flatnonzero(row_bad)).groupby(ts[row_bad], sort=False).first()
    for i in first_bad.to_numpy()[:MAX_LISTED]:
        if bad_row[i]:
            found.append(_conflict(
                frame, joined, i, values[int(np.argmax(differs[i]))],
                f"stored quote {joined['_pos'].iat[i] + 1} of {held[i]} at ts={_show(ts[i])}"))
        else:
            file, row = locate(frame, int(joined["_at"].iat[i]))
            found.append(Violation(file, row, "conflicts_with_stored", (
                f"the stored quotes at ts={_show(ts[i])} are {held[i]} row(s), the incoming "
                f"ones {size[i]}; the quotes of one timestamp are stored whole")))
    unchanged = int((in_stored_group & ~bad_group).sum())
    return ~in_stored_group, unchanged, len(first_bad)


def _conflict(frame, joined, i: int, column: str, stored_row: str) -> Violation:
    file, row = locate(frame, int(joined["_at"].iat[i]))
    stored, incoming = joined[f"{column}_stored"].iat[i], joined[column].iat[i]
    return Violation(file, row, "conflicts_with_stored", (
        f"column {column}: stored {_show(stored)}, incoming {_show(incoming)} ({stored_row})"))


def _incoming_order(spec: Table, part: pd.DataFrame, frame: pd.DataFrame, found: list) -> int:
    """The incoming rows of one symbol must already keep the order rule (a validated frame does)."""
    total = 0
    for column, strict in ORDER[spec.name]:
        values = part[column].values  # datetime64 (UTC) for ts, not Timestamp objects
        step = values[1:] > values[:-1] if strict else values[1:] >= values[:-1]
        bad = np.flatnonzero(~step) + 1
        total += len(bad)
        for i in bad[: MAX_LISTED - len(found)]:
            file, row = locate(frame, int(part.index[i]))
            found.append(Violation(file, row, rule_name(column, strict), (
                f"{column}={_show(values[i])} after {column}={_show(values[i - 1])} in the "
                "previous incoming row (merge takes validated frames)")))
    return total


def _seams(spec: Table, stored: pd.DataFrame, new: pd.DataFrame, frame: pd.DataFrame,
           found: list) -> int:
    """Order rules across stored and new rows, checked in key order (trades: ts must not go
    back where new trade ids sit between or beside stored ones)."""
    key = spec.key[-1]
    both = pd.concat([stored.assign(_at=-1), new.assign(_at=new.index)], ignore_index=True)
    both = both.sort_values(key, kind="stable", ignore_index=True)
    at = both["_at"].to_numpy()
    total = 0
    for column, strict in ORDER[spec.name]:
        values = both[column].values
        step = values[1:] > values[:-1] if strict else values[1:] >= values[:-1]
        for i in np.flatnonzero(~step):  # pair (i, i + 1) breaks the rule
            prev, nxt = at[i], at[i + 1]
            if prev < 0 and nxt < 0:
                continue  # two stored rows: not this merge's doing
            total += 1
            if len(found) >= MAX_LISTED:
                continue
            if nxt >= 0:
                file, row = locate(frame, int(nxt))
                whose = "the stored" if prev < 0 else "the incoming"
                detail = (f"{column}={_show(values[i + 1])} "
                          f"with {key}={_show(both[key].iat[i + 1])} "
                          f"comes after {whose} row with {key}={_show(both[key].iat[i])}, "
                          f"{column}={_show(values[i])}")
            else:
                file, row = locate(frame, int(prev))
                detail = (f"{column}={_show(values[i])} with {key}={_show(both[key].iat[i])} "
                          f"is later than {column}={_show(values[i + 1])} of the stored row "
                          f"with {key}={_show(both[key].iat[i + 1])} that follows it")
            found.append(Violation(file, row, rule_name(column, strict), detail))
    return total


def _show(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "null"
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return _utc(value).isoformat()
    return repr(value.item() if isinstance(value, np.generic) else value)
