"""The registry's audit log: an append-only SQLite table of every decision (registration,
promotion step, rollback, quarantine, recovery) with its inputs and the rule's trace.

An operation that changes MLflow writes two records: ``started`` with its plan (the alias and
tag writes it is about to make, every one idempotent) before the first MLflow call, and
``done`` after the last. A process killed in between leaves a ``started`` without its ``done``;
the registry finds it before its next operation and finishes the plan (``recovered``), so the
log always says what happened and the aliases end where the plan meant them to.

SQLite in WAL mode, one transaction per record, ``synchronous=FULL``: a record is either
durable or absent, and several processes may append at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTED, DONE, RECOVERED, FAILED = "started", "done", "recovered", "failed"
KINDS = ("register", "challenger", "shadow", "canary", "promote", "rollback", "quarantine",
         "decision", "freeze")

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,     -- UTC, ISO 8601 with microseconds
    operation    TEXT NOT NULL,     -- one id per operation: its started, done or recovered rows
    model        TEXT NOT NULL,     -- the registered model
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,     -- started, done, recovered, failed
    version      TEXT,              -- the version the operation is about
    actor        TEXT NOT NULL,     -- who decided: a user, a Dagster run, a sensor
    inputs       TEXT NOT NULL,     -- JSON: what the decision was based on
    trace        TEXT NOT NULL,     -- JSON list: the rule's sentences
    plan         TEXT NOT NULL      -- JSON list: the registry writes, in order
);
CREATE INDEX IF NOT EXISTS audit_operation ON audit(operation);
"""


@dataclass(frozen=True)
class Record:
    seq: int
    at: str
    operation: str
    model: str
    kind: str
    status: str
    version: str | None
    actor: str
    inputs: dict[str, Any]
    trace: list[str]
    plan: list[list[Any]]


class AuditLog:
    """Append-only records in the SQLite file ``path`` (created with its folder)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn

    def append(self, *, model: str, kind: str, status: str, version: str | None = None,
               actor: str = "", inputs: Mapping[str, Any] | None = None,
               trace: Sequence[str] = (), plan: Sequence[Sequence[Any]] = (),
               operation: str | None = None) -> Record:
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}; one of {', '.join(KINDS)}")
        row = (dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
               operation or uuid.uuid4().hex, model, kind, status, version,
               actor or _default_actor(), json.dumps(dict(inputs or {}), default=str),
               json.dumps(list(trace)), json.dumps([list(step) for step in plan]))
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO audit (at, operation, model, kind, status, version, actor, inputs, "
                "trace, plan) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            seq = cursor.lastrowid
        assert seq is not None
        return _record((seq, *row))

    def records(self, model: str | None = None) -> list[Record]:
        """Every record, oldest first (of ``model`` if given)."""
        query = "SELECT * FROM audit" + (" WHERE model = ?" if model else "") + " ORDER BY seq"
        with self._connect() as conn:
            return [_record(r) for r in conn.execute(query, (model,) if model else ())]

    def unfinished(self) -> list[Record]:
        """``started`` records whose operation has no later record: interrupted operations."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM audit a WHERE status = ? AND NOT EXISTS (SELECT 1 FROM audit b "
                "WHERE b.operation = a.operation AND b.seq > a.seq) ORDER BY seq", (STARTED,))
            return [_record(r) for r in rows]


def _record(row: Sequence[Any]) -> Record:
    seq, at, operation, model, kind, status, version, actor, inputs, trace, plan = row
    return Record(seq, at, operation, model, kind, status, version, actor, json.loads(inputs),
                  json.loads(trace), json.loads(plan))


def _default_actor() -> str:
    return f"pid {os.getpid()}"
