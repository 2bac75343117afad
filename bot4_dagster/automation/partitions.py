"""Partitions: one per symbol, for every per-instrument asset.

Why not symbol x month or symbol x day: histories differ by decades (the S&P 500 since 1999, a
perpetual future since last month), and a symbol x time grid shows every month a symbol never
traded as "missing". A symbol partition is materialized or not, which is true; within it, ingests
merge by key (``Warehouse.merge``), so any window can be (re)ingested without touching the rest,
and a scheduled run reads only the newest window (run config ``start``/``end``). README,
"Partitions".
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable

import dagster as dg

from ..data.symbols import check_symbol
from ..settings import state_dir

SYMBOLS = dg.DynamicPartitionsDefinition(name="symbol")


def register_symbols(instance: dg.DagsterInstance, symbols: Iterable[str]) -> list[str]:
    """Add the symbols that are not partitions yet; returns the ones added.

    Concurrent ``bot4 run`` processes serialise on a lock file in BOT4_HOME; the daemon's
    ``symbol_sensor`` takes no such lock, so a key that appears between our read and our write
    (Dagster's ``UNIQUE constraint``) is accepted when a re-read shows it there.
    """
    wanted = [check_symbol(s, where="symbol partition") for s in symbols]
    lock_path = state_dir() / "locks" / "symbol-partitions.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = set(instance.get_dynamic_partitions(SYMBOLS.name))
        missing = sorted(set(wanted) - known)
        if missing:
            try:
                instance.add_dynamic_partitions(SYMBOLS.name, missing)
            except Exception:
                if not set(missing) <= set(instance.get_dynamic_partitions(SYMBOLS.name)):
                    raise
    return missing
