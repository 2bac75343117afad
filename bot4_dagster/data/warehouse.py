"""The DuckDB warehouse: one file, many processes, never half-written.

DuckDB lets one process hold the file for writing. Dagster's multiprocess executor, concurrent
backfill runs and a notebook may all want it at once, so every connection is taken under an
exclusive ``flock`` on ``<database>.lock``: writers queue instead of failing on DuckDB's lock,
and a waiter names the process it waits for (``warehouse_lock.py``). Ingests ``merge`` by key
(``merge.py``): nothing stored is deleted, a contradicting row refuses the write. Computed tables
``replace`` the slice they own. Either write is one transaction, so a crash leaves the previous
content, never a mixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from . import merge as _merge
from .errors import DataError
from .merge import NS_PARAM, MergeResult, Span
from .symbols import check_symbol
from .tables import PROVENANCE, TABLES, conform, stored
from .validation import MAX_LISTED
from .warehouse_lock import PidLock, Wait, WarehouseLocked, default_timeout, duckdb_holder

__all__ = ["MergeResult", "Slice", "Span", "Warehouse", "WarehouseLocked"]

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
SPAN_COLUMNS = ("table", "symbol", "rows", "first_ts", "last_ts")
TIME_COLUMNS = ("ts", "t0")  # t0: label start (ml.labels, ml.cv_folds)


@dataclass(frozen=True)
class Slice:
    """The rows a partition owns: ``column in values`` and ``start <= time_column < end``."""

    table: str  # "schema.table"
    equals: dict[str, list[str]]
    time_column: str | None = None
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        for column, values in self.equals.items():
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        if self.time_column is not None:
            column = self.time_column
            if _spec(self.table) is not None:  # TIMESTAMP_NS (UTC): compare exact nanoseconds
                clauses.append(f"{column} >= {NS_PARAM} AND {column} < {NS_PARAM}")
                params.extend([pd.Timestamp(self.start).value, pd.Timestamp(self.end).value])
            else:
                clauses.append(f"{column} >= ? AND {column} < ?")
                params.extend([self.start.to_pydatetime(), self.end.to_pydatetime()])
        return (" AND ".join(clauses) or "TRUE"), params


def _default_connect(database: str) -> Connect:
    @contextmanager
    def connect():
        conn = duckdb.connect(database)  # one attempt: Warehouse.connection retries and reports
        try:
            yield conn
        finally:
            conn.close()

    return connect


class Warehouse:
    """Locked, transactional access to the DuckDB file at ``path``.

    ``timeout_s`` bounds the wait for both locks (default: ``BOT4_WAREHOUSE_TIMEOUT``, else
    600 s); past it, ``connection`` raises ``WarehouseLocked`` naming the holder's PID.
    """

    def __init__(self, path: str | Path, connect: Connect | None = None,
                 timeout_s: float | None = None):
        self.path = Path(path)
        self._connect = connect or _default_connect(str(self.path))
        self.timeout_s = default_timeout() if timeout_s is None else float(timeout_s)
        self._upgraded = False

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive connection (UTC session) for the duration of the block."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wait = Wait(self.path, self.timeout_s)
        lock = PidLock(Path(f"{self.path}.lock"))
        lock.acquire(wait)
        try:
            with ExitStack() as stack:
                conn = self._open(stack, wait)
                try:
                    conn.execute("SET TimeZone = 'UTC'")
                    if not self._upgraded:
                        _upgrade(conn)
                        self._upgraded = True
                    yield conn
                finally:
                    conn.close()  # dagster-duckdb does not close on error
        finally:
            lock.release()

    def _open(self, stack: ExitStack, wait: Wait) -> duckdb.DuckDBPyConnection:
        """Connect, waiting while a process outside our flock holds DuckDB's file lock."""
        while True:
            try:
                return stack.enter_context(self._connect())
            except duckdb.IOException as exc:
                holder = duckdb_holder(exc)
                if holder is None:
                    raise
                wait.blocked(*holder)

    def merge(self, table: str, frame: pd.DataFrame) -> MergeResult:
        """Add a validated frame of ``table`` ("bars", "trades", "quotes") to what is stored,
        by key, in one transaction: new rows are inserted, identical ones counted as unchanged.

        A row that contradicts a stored one (rule ``conflicts_with_stored``) or breaks the order
        rule at the seam with stored rows raises ``DataError`` naming the incoming file and row;
        nothing is written then. The stored rows are read inside the transaction, under the
        lock, so concurrent merges cannot interleave.
        """
        if table not in TABLES:
            raise KeyError(f"merge: unknown table {table!r}; choose one of {', '.join(TABLES)}")
        spec = TABLES[table]
        incoming = conform(spec, frame).reset_index(drop=True)
        symbols = sorted(incoming["symbol"].unique().tolist())
        for symbol in symbols:
            check_symbol(symbol, where=f"the frame merged into {spec.name}")
        with self.connection() as conn, _transaction(conn):
            _create(conn, spec.name)
            plans = [_merge.plan(spec, _merge.read_stored(conn, spec, symbol, part), part, incoming)
                     for symbol, part in incoming.groupby("symbol", sort=True)]
            violations = [v for p in plans for v in p.violations]
            if violations:
                total = sum(p.total for p in plans)
                raise DataError(violations[:MAX_LISTED], total=max(total, len(violations)))
            new = np.sort(np.concatenate([p.new for p in plans])) if plans else np.array([], int)
            if len(new):
                rows = incoming.loc[new].drop(columns=list(PROVENANCE), errors="ignore")
                conn.register("_frame", stored(spec, rows))
                conn.execute(f"INSERT INTO {spec.name} BY NAME SELECT * FROM _frame")
            spans = _merge.read_spans(conn, spec.name, symbols)
        return MergeResult(spec.name, len(new), sum(p.unchanged for p in plans), spans)

    def replace(self, where: Slice, frame: pd.DataFrame) -> int:
        """Delete the slice and insert ``frame`` in its place, atomically. Returns rows written.

        For computed tables, which own their partition, and for an explicit "replace this
        window" ingest; ingests otherwise ``merge``.
        """
        data = frame.drop(columns=[c for c in PROVENANCE if c in frame])
        spec = _spec(where.table)
        if spec is not None:
            data = stored(spec, conform(spec, data))
        clause, params = where.where()
        with self.connection() as conn, _transaction(conn):
            _create(conn, where.table, data)
            if spec is None:
                _add_new_columns(conn, where.table, data)
            conn.execute(f"DELETE FROM {where.table} WHERE {clause}", params)
            if len(data):
                conn.register("_frame", data)
                conn.execute(f"INSERT INTO {where.table} BY NAME SELECT * FROM _frame")
        return len(data)

    def read(self, where: Slice, order_by: str | None = "ts") -> pd.DataFrame:
        """The rows of a slice (an empty frame with the table's columns if there are none)."""
        clause, params = where.where()
        spec = _spec(where.table)
        with self.connection() as conn:
            if not _exists(conn, where.table):
                return spec.empty() if spec is not None else pd.DataFrame()
            order = ""
            if order_by and _has_column(conn, where.table, order_by):
                # ties in stored order: trades by trade_id (merges insert them out of id order),
                # a timestamp's quotes by rowid (they were inserted together, in file order)
                ties = [c for c in (spec.key[1:] if spec is not None else ()) if c != order_by]
                order = f" ORDER BY {', '.join([order_by, *ties, 'rowid'])}"
            frame = conn.execute(f"SELECT * FROM {where.table} WHERE {clause}{order}", params).df()
        return conform(spec, frame) if spec is not None else frame

    def spans(self) -> pd.DataFrame:
        """Rows and first/last time per table and symbol, for every table with a ``symbol`` and a
        time column (``ts``, or ``t0`` for labels and folds). Columns: ``SPAN_COLUMNS``."""
        parts = []
        if self.path.exists():
            with self.connection() as conn:
                for table, time_column in _timed_tables(conn):
                    part = conn.execute(
                        f"SELECT ? AS \"table\", symbol, count(*) AS rows, "
                        f"epoch_ns(min({time_column})) AS first_ts, epoch_ns(max({time_column})) "
                        f"AS last_ts FROM {table} GROUP BY symbol ORDER BY symbol", [table]).df()
                    parts.append(part)
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {c: [] for c in SPAN_COLUMNS})
        for column in ("first_ts", "last_ts"):
            out[column] = pd.to_datetime(out[column].astype("int64"), unit="ns", utc=True)
        return out.astype({"table": "string", "symbol": "string", "rows": "int64"})

    def span(self, where: Slice) -> Span:
        """Rows and first/last ``ts`` (or ``t0``) of one slice; zero rows if there is no table."""
        if not self.path.exists():
            return Span(0, None, None)
        clause, params = where.where()
        with self.connection() as conn:
            if not _exists(conn, where.table):
                return Span(0, None, None)
            time_column = next(c for c in (*TIME_COLUMNS, None)
                               if c is None or _has_column(conn, where.table, c))
            if time_column is None:
                raise ValueError(f"{where.table} has no time column ({', '.join(TIME_COLUMNS)})")
            rows, lo, hi = conn.execute(
                f"SELECT count(*), epoch_ns(min({time_column})), epoch_ns(max({time_column})) "
                f"FROM {where.table} WHERE {clause}", params).fetchone()
        return Span(int(rows), _merge._utc(lo), _merge._utc(hi))

    def row_counts(self) -> dict[str, int]:
        """Rows per table, for every table in the warehouse."""
        if not self.path.exists():
            return {}
        with self.connection() as conn:
            tables = conn.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY 1"
            ).fetchall()
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for (t,) in tables}

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.connection() as conn:
            return conn.execute(sql, params or []).df()


@contextmanager
def _transaction(conn) -> Iterator[None]:
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create(conn, table: str, data: pd.DataFrame | None = None) -> None:
    """Create ``table`` if needed: a market table from its definition, any other from the first
    frame's column types (text as VARCHAR even if empty)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    spec = _spec(table)
    if spec is not None:
        conn.execute(spec.ddl())
        return
    typed = data.head(0).astype({c: "string" for c in data.columns if data[c].dtype == object})
    conn.register("_empty", typed)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _empty")


def _add_new_columns(conn, table: str, data: pd.DataFrame) -> None:
    """A computed table gains the columns a newer version of its stage writes (NULL in the rows
    written before), so a warehouse from an older version takes the new rows."""
    schema, name = table.split(".")
    have = {c for (c,) in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [schema, name]).fetchall()}
    new = [c for c in data.columns if c not in have]
    if not new:
        return
    typed = data.head(0)[new].astype({c: "string" for c in new if data[c].dtype == object})
    conn.register("_new_columns", typed)
    types = dict(conn.execute("SELECT column_name, column_type FROM "
                              "(DESCRIBE SELECT * FROM _new_columns)").fetchall())
    conn.unregister("_new_columns")
    for column in new:
        conn.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {types[column]}')


def _spec(table: str):
    return next((t for t in TABLES.values() if t.name == table), None)


def _exists(conn, table: str) -> bool:
    schema, name = table.split(".")
    return bool(conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [schema, name]).fetchone()[0])


def _has_column(conn, table: str, column: str) -> bool:
    schema, name = table.split(".")
    return bool(conn.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
        "AND column_name = ?", [schema, name, column]).fetchone()[0])


def _timed_tables(conn) -> list[tuple[str, str]]:
    """(table, time column) of every table with a ``symbol`` column and a ``ts``/``t0`` column."""
    rows = conn.execute(
        "SELECT schema_name || '.' || table_name, list(column_name) FROM duckdb_columns() "
        "WHERE NOT internal GROUP BY 1 ORDER BY 1").fetchall()
    return [(table, next(c for c in TIME_COLUMNS if c in columns)) for table, columns in rows
            if "symbol" in columns and any(c in columns for c in TIME_COLUMNS)]


def _upgrade(conn) -> None:
    """Bring a warehouse written before nanosecond times up to date: a market table whose ``ts``
    is ``TIMESTAMPTZ`` (microseconds) becomes ``TIMESTAMP_NS`` holding the same UTC instants."""
    old = conn.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_columns() WHERE column_name = 'ts' "
        "AND data_type = 'TIMESTAMP WITH TIME ZONE' AND schema_name || '.' || table_name IN "
        f"({', '.join('?' for _ in TABLES)})", [t.name for t in TABLES.values()]).fetchall()
    if not old:
        return
    with _transaction(conn):  # the session is UTC, so ::TIMESTAMP is the UTC wall time
        for (table,) in old:
            conn.execute(f"ALTER TABLE {table} ALTER ts TYPE TIMESTAMP_NS USING ts::TIMESTAMP")
