"""The DuckDB warehouse: one file, many processes, never half-written.

DuckDB lets one process hold the file for writing. Dagster's multiprocess executor, concurrent
backfill runs and a notebook may all want it at once, so every connection is taken under an
exclusive ``flock`` on ``<database>.lock``: writers queue instead of failing on DuckDB's lock.
A write replaces a slice (symbol set x time window) inside one transaction, so a crash leaves the
previous content, never a mixture.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from .tables import PROVENANCE, TABLES

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


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
            clauses.append(f"{self.time_column} >= ? AND {self.time_column} < ?")
            params.extend([self.start.to_pydatetime(), self.end.to_pydatetime()])
        return (" AND ".join(clauses) or "TRUE"), params


def _default_connect(database: str) -> Connect:
    @contextmanager
    def connect():
        for attempt in range(10):  # a process outside our lock (a DuckDB shell) may hold the file
            try:
                conn = duckdb.connect(database)
                break
            except duckdb.IOException:
                if attempt == 9:
                    raise
                time.sleep(0.1 * 2**attempt)
        try:
            yield conn
        finally:
            conn.close()

    return connect


class Warehouse:
    """Locked, transactional access to the DuckDB file at ``path``."""

    def __init__(self, path: str | Path, connect: Connect | None = None, timeout_s: float = 600.0):
        self.path = Path(path)
        self._connect = connect or _default_connect(str(self.path))
        self.timeout_s = timeout_s

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive connection (UTC session) for the duration of the block."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a+") as lock:
            self._acquire(lock)
            try:
                with self._connect() as conn:
                    try:
                        conn.execute("SET TimeZone = 'UTC'")
                        yield conn
                    finally:
                        conn.close()  # dagster-duckdb does not close on error
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _acquire(self, lock) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"waited {self.timeout_s:.0f} s for the warehouse lock {self.path}.lock "
                        f"(held by another bot4 process)"
                    ) from None
                time.sleep(0.05)

    def replace(self, where: Slice, frame: pd.DataFrame) -> int:
        """Delete the slice and insert ``frame`` in its place, atomically. Returns rows written."""
        data = frame.drop(columns=[c for c in PROVENANCE if c in frame])
        schema = where.table.split(".")[0]
        clause, params = where.where()
        with self.connection() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                spec = _spec(where.table)
                if spec is not None:
                    conn.execute(spec.ddl())
                else:  # the first frame sets the column types; text as VARCHAR even if empty
                    typed = data.head(0).astype({c: "string" for c in data.columns
                                                 if data[c].dtype == object})
                    conn.register("_empty", typed)
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {where.table} AS SELECT * FROM _empty")
                conn.execute(f"DELETE FROM {where.table} WHERE {clause}", params)
                if len(data):
                    conn.register("_frame", data)
                    conn.execute(f"INSERT INTO {where.table} BY NAME SELECT * FROM _frame")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(data)

    def read(self, where: Slice, order_by: str | None = "ts") -> pd.DataFrame:
        """The rows of a slice (an empty frame with the table's columns if there are none)."""
        clause, params = where.where()
        with self.connection() as conn:
            if not _exists(conn, where.table):
                spec = _spec(where.table)
                return spec.empty() if spec is not None else pd.DataFrame()
            # rowid breaks ties in insertion order: rows sharing a timestamp (trades, quotes)
            # were written together, in their validated file order
            order = (f" ORDER BY {order_by}, rowid"
                     if order_by and _has_column(conn, where.table, order_by) else "")
            frame = conn.execute(f"SELECT * FROM {where.table} WHERE {clause}{order}", params).df()
        spec = _spec(where.table)
        if spec is not None:
            frame = frame.astype({c.name: c.dtype for c in spec.columns})
        return frame

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

