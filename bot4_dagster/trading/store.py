"""Where order, list and position state lives between processes: one transaction per change.

The manager writes every state change (all touched orders, lists, positions and fills of one
command or event) in ONE transaction, and only then talks to the venue. A crash therefore leaves
either the state before the change or the state after it, never a mixture, and never a venue
order the store does not know about.

Why SQLite (stdlib) and not the DuckDB warehouse: this is OLTP, a handful of rows upserted per
event with a durable commit each time, from one long-lived trading process. SQLite in WAL mode
commits such a transaction in microseconds plus one fsync; DuckDB is a columnar engine built for
bulk scans, and the warehouse file is held under an exclusive lock by Dagster asset writers and
backfills, which the live order path must never queue behind. The store file is separate and is
owned by exactly one manager (an ``flock`` enforces it; the OS drops the lock if the process dies).
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from .orders import (
    ContingencyType,
    ListKind,
    ListStatus,
    Order,
    OrderList,
    OrderStatus,
    OrderType,
    OtoTrigger,
    PartialFillPolicy,
    Role,
    Side,
)

FillRow = tuple[str, str | None, Decimal, Decimal, Decimal, int]
"""(order_id, trade_id, qty, price, fee, ts)"""


@dataclass
class Snapshot:
    """Everything a store holds, as rows (``Order.row()`` / ``OrderList.row()`` tuples)."""

    orders: dict[str, tuple] = field(default_factory=dict)
    lists: dict[str, tuple] = field(default_factory=dict)
    positions: dict[str, Decimal] = field(default_factory=dict)
    trade_keys: set[tuple[str, str]] = field(default_factory=set)


class OrderStore(Protocol):
    def load(self) -> Snapshot: ...

    def commit(self, orders: list[tuple], lists: list[tuple],
               positions: list[tuple[str, Decimal]], fills: list[FillRow]) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """The hot-path store: rows kept in dicts (rows are immutable tuples, so no copies)."""

    def __init__(self) -> None:
        self._snapshot = Snapshot()

    def load(self) -> Snapshot:
        s = self._snapshot
        return Snapshot(dict(s.orders), dict(s.lists), dict(s.positions), set(s.trade_keys))

    def commit(self, orders: list[tuple], lists: list[tuple],
               positions: list[tuple[str, Decimal]], fills: list[FillRow]) -> None:
        s = self._snapshot
        for row in orders:
            s.orders[row[0]] = row
        for row in lists:
            s.lists[row[0]] = row
        for instrument, qty in positions:
            s.positions[instrument] = qty
        for f in fills:
            if f[1] is not None:
                s.trade_keys.add((f[0], f[1]))

    def close(self) -> None:
        """Nothing to release."""


# --- SQLite -------------------------------------------------------------------------------------

def _dec(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def _undec(v: str | None) -> Decimal | None:
    return None if v is None else Decimal(v)


def _enum(cls: type) -> tuple[Callable, Callable]:
    return (lambda v: v.value), (lambda v: cls(v))


def _ident() -> tuple[Callable, Callable]:
    return (lambda v: v), (lambda v: v)


_IDS = (lambda v: json.dumps(list(v))), (lambda v: tuple(json.loads(v)))
_BOOL = (lambda v: int(v)), (lambda v: bool(v))
_DEC = _dec, _undec

_ORDER_TYPES = {
    "id": ("TEXT PRIMARY KEY", _ident()), "instrument": ("TEXT", _ident()),
    "side": ("TEXT", _enum(Side)), "type": ("TEXT", _enum(OrderType)),
    "qty": ("TEXT", _DEC), "price": ("TEXT", _DEC), "trigger_price": ("TEXT", _DEC),
    "reduce_only": ("INTEGER", _BOOL), "status": ("TEXT", _enum(OrderStatus)),
    "filled_qty": ("TEXT", _DEC), "avg_price": ("TEXT", _DEC), "parent_id": ("TEXT", _ident()),
    "linked_ids": ("TEXT", _IDS), "list_id": ("TEXT", _ident()),
    "contingency": ("INTEGER", _enum(ContingencyType)), "role": ("TEXT", _enum(Role)),
    "venue": ("TEXT", _ident()), "position_id": ("TEXT", _ident()),
    "expire_ts": ("INTEGER", _ident()), "planned_qty": ("TEXT", _DEC),
    "retry_of": ("TEXT", _ident()), "reason": ("TEXT", _ident()),
    "ts_init": ("INTEGER", _ident()), "ts_last": ("INTEGER", _ident()),
    "venue_qty": ("TEXT", _DEC), "venue_price": ("TEXT", _DEC),
}
_LIST_TYPES = {
    "id": ("TEXT PRIMARY KEY", _ident()), "kind": ("TEXT", _enum(ListKind)),
    "instrument": ("TEXT", _ident()), "order_ids": ("TEXT", _IDS),
    "status": ("TEXT", _enum(ListStatus)), "oto_trigger": ("TEXT", _enum(OtoTrigger)),
    "on_partial_fill": ("TEXT", _enum(PartialFillPolicy)), "reduced_qty": ("TEXT", _DEC),
    "cancel_requested": ("INTEGER", _BOOL), "rejected": ("INTEGER", _BOOL),
    "released": ("INTEGER", _BOOL), "ts_init": ("INTEGER", _ident()),
    "ts_last": ("INTEGER", _ident()),
}


def _columns(cls: type, types: dict) -> tuple[tuple[str, str, tuple[Callable, Callable]], ...]:
    """(name, SQL type, codecs) in the dataclass's field order, which is the row order."""
    return tuple((f.name, *types[f.name]) for f in fields(cls))


ORDER_COLUMNS = _columns(Order, _ORDER_TYPES)
LIST_COLUMNS = _columns(OrderList, _LIST_TYPES)


def _encode(columns, row: tuple) -> tuple:
    return tuple(codec[0](v) if v is not None else None for (_, _, codec), v in
                 zip(columns, row, strict=True))


def _decode(columns, row: Iterable) -> tuple:
    return tuple(codec[1](v) if v is not None else None for (_, _, codec), v in
                 zip(columns, row, strict=True))


def _ddl(table: str, columns) -> str:
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{n} {t}' for n, t, _ in columns)})"


def _upsert(table: str, columns) -> str:
    return f"INSERT OR REPLACE INTO {table} VALUES ({', '.join('?' for _ in columns)})"


def _upgrade(conn: sqlite3.Connection, path: Path, table: str, columns) -> None:
    """Add the columns a newer version appended (as NULL: "not recorded"); refuse any other
    difference, naming the file, rather than fail later on a row of the wrong width."""
    have = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    want = [name for name, _, _ in columns]
    if have == want:
        return
    if have != want[: len(have)]:
        raise ValueError(f"order store {path}: table {table} has the columns {have}; this "
                         f"version expects {want}. Move the file away or open it with the "
                         "version that wrote it.")
    for name, sql_type, _ in columns[len(have):]:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")


class StoreLocked(RuntimeError):
    """Another live process owns this order store."""


class SQLiteStore:
    """Durable store in one SQLite file (WAL). ``synchronous="FULL"`` (default) survives power
    loss; ``"NORMAL"`` survives a process crash only and skips the per-commit fsync."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(f"{self.path}.lock", "a+")  # noqa: SIM115 (held for the store's life)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StoreLocked(f"order store {self.path} is owned by another live process") from None
        self._conn = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            self._open(synchronous)
        except BaseException:
            self.close()
            raise
        self._order_sql = _upsert("orders", ORDER_COLUMNS)
        self._list_sql = _upsert("lists", LIST_COLUMNS)

    def _open(self, synchronous: str) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        for ddl in (_ddl("orders", ORDER_COLUMNS), _ddl("lists", LIST_COLUMNS),
                    "CREATE TABLE IF NOT EXISTS positions (instrument TEXT PRIMARY KEY, qty TEXT)",
                    ("CREATE TABLE IF NOT EXISTS fills (order_id TEXT, trade_id TEXT, qty TEXT, "
                     "price TEXT, fee TEXT, ts INTEGER, UNIQUE (order_id, trade_id))")):
            conn.execute(ddl)
        _upgrade(conn, self.path, "orders", ORDER_COLUMNS)
        _upgrade(conn, self.path, "lists", LIST_COLUMNS)

    def load(self) -> Snapshot:
        c = self._conn
        orders = {r[0]: _decode(ORDER_COLUMNS, r) for r in c.execute("SELECT * FROM orders")}
        lists = {r[0]: _decode(LIST_COLUMNS, r) for r in c.execute("SELECT * FROM lists")}
        positions = {i: Decimal(q) for i, q in c.execute("SELECT instrument, qty FROM positions")}
        keys = set(c.execute("SELECT order_id, trade_id FROM fills WHERE trade_id IS NOT NULL"))
        return Snapshot(orders, lists, positions, keys)

    def commit(self, orders: list[tuple], lists: list[tuple],
               positions: list[tuple[str, Decimal]], fills: list[FillRow]) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(self._order_sql, [_encode(ORDER_COLUMNS, r) for r in orders])
            c.executemany(self._list_sql, [_encode(LIST_COLUMNS, r) for r in lists])
            c.executemany("INSERT OR REPLACE INTO positions VALUES (?, ?)",
                          [(i, str(q)) for i, q in positions])
            c.executemany("INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?)",
                          [(o, t, str(q), str(p), str(f), ts) for o, t, q, p, f, ts in fills])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()
