"""The normalised market tables: one definition that the readers, the validators and the warehouse
DDL all use, so a column cannot mean different things in different places.

``ts`` is UTC. For bars it is the bar's open time; for trades and quotes the exchange event time.
It keeps nanoseconds end to end (venues and Tardis-style files stamp trades in ns). DuckDB has no
zone-aware nanosecond type, so the warehouse stores ``ts`` as ``TIMESTAMP_NS`` holding UTC wall
time: ``stored`` strips the zone for the write, ``conform`` puts UTC back on the way out.
Provenance columns (``PROVENANCE``) travel with a frame from the reader through validation, so an
error can name the file and row; they are dropped before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
PROVENANCE = (SOURCE_FILE, SOURCE_ROW)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas dtype
    sql: str  # DuckDB type
    required: bool = True  # False: may be absent from a source (stored as NULL)


@dataclass(frozen=True)
class Table:
    name: str  # warehouse table, "schema.table"
    columns: tuple[Column, ...]
    order_rule: str  # how rows must be ordered per symbol (README, "Validation")
    # what identifies a row per symbol when ingests merge (warehouse.merge); ``grouped``: the
    # rows sharing a key form one group (quotes sharing a timestamp), stored or refused whole
    key: tuple[str, ...] = ()
    grouped: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def values(self) -> list[str]:
        """The columns outside the key, which a stored row and an incoming row must agree on."""
        return [n for n in self.names if n not in self.key]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def ddl(self) -> str:
        cols = ", ".join(
            f"{c.name} {c.sql}" + (" NOT NULL" if c.required else "") for c in self.columns
        )
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({cols})"

    def empty(self) -> pd.DataFrame:
        return conform(self, pd.DataFrame({c: [] for c in self.names}))


TS = Column("ts", "datetime64[ns, UTC]", "TIMESTAMP_NS")  # UTC, without a zone in DuckDB
SYMBOL = Column("symbol", "string", "VARCHAR")

BARS = Table(
    "market.bars",
    (
        SYMBOL,
        TS,
        Column("open", "float64", "DOUBLE"),
        Column("high", "float64", "DOUBLE"),
        Column("low", "float64", "DOUBLE"),
        Column("close", "float64", "DOUBLE"),
        Column("volume", "float64", "DOUBLE"),
        Column("buy_volume", "float64", "DOUBLE", required=False),
        Column("trade_count", "Int64", "BIGINT", required=False),
    ),
    order_rule="ts strictly increasing",
    key=("symbol", "ts"),
)
TRADES = Table(
    "market.trades",
    (
        SYMBOL,
        TS,
        Column("price", "float64", "DOUBLE"),
        Column("amount", "float64", "DOUBLE"),
        Column("side", "int8", "TINYINT"),
        Column("trade_id", "int64", "BIGINT"),
    ),
    order_rule="trade_id strictly increasing, ts non-decreasing",
    key=("symbol", "trade_id"),
)
QUOTES = Table(
    "market.quotes",
    (
        SYMBOL,
        TS,
        Column("bid", "float64", "DOUBLE"),
        Column("ask", "float64", "DOUBLE"),
        Column("bid_size", "float64", "DOUBLE"),
        Column("ask_size", "float64", "DOUBLE"),
    ),
    order_rule="ts non-decreasing",
    key=("symbol", "ts"),
    grouped=True,
)

TABLES: dict[str, Table] = {"bars": BARS, "trades": TRADES, "quotes": QUOTES}


def conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of ``table`` in order and dtype (optional ones added as null), provenance kept."""
    out = pd.DataFrame(index=frame.index)
    for col in table.columns:
        if col.name in frame:
            out[col.name] = _cast(frame[col.name], col.dtype)
        elif col.required:
            raise KeyError(f"{table.name} needs column '{col.name}'")
        else:
            out[col.name] = pd.Series(None, index=frame.index, dtype=col.dtype)
    for name in PROVENANCE:
        if name in frame:
            out[name] = frame[name]
    return out


def stored(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the warehouse holds it: UTC times without their zone (``TIMESTAMP_NS``), since
    DuckDB would turn zone-aware values into microsecond ``TIMESTAMPTZ`` and drop nanoseconds."""
    out = frame.copy(deep=False)
    for col in table.columns:
        if col.sql == "TIMESTAMP_NS" and col.name in out:
            out[col.name] = out[col.name].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    """``astype``, except that zone-less times (as ``TIMESTAMP_NS`` reads back) are UTC."""
    if isinstance(pd.api.types.pandas_dtype(dtype), pd.DatetimeTZDtype) and (
            pd.api.types.is_datetime64_dtype(series.dtype)
            and getattr(series.dtype, "tz", None) is None):
        series = series.dt.tz_localize("UTC")
    return series.astype(dtype)
