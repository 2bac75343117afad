"""Waiting for the warehouse, and saying who it is waiting for.

Two locks guard the DuckDB file. Our own ``flock`` on ``<database>.lock`` queues bot4 processes;
its holder writes its PID into the lock file so that a waiter can name it. DuckDB's own lock on
the database file is held by anything that opened it for writing outside our flock (a ``duckdb``
shell, a notebook); DuckDB's error names that process (``Conflicting lock is held in <program>
(PID 1234)``). Either way the waiter logs once who holds it, keeps trying, and after its timeout
raises ``WarehouseLocked`` with the same words, so a stuck run says what to close.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger("bot4_dagster.warehouse")

TIMEOUT_ENV = "BOT4_WAREHOUSE_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
_DUCKDB_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


class WarehouseLocked(TimeoutError):
    """The warehouse stayed locked by another process for the whole timeout."""

    def __init__(self, path: Path, pid: int | None, waited_s: float, holder: str):
        self.path, self.pid, self.waited_s = path, pid, waited_s
        super().__init__(f"warehouse locked by {_who(pid)}: gave up after {waited_s:.1f} s "
                         f"({path}: {holder}; set {TIMEOUT_ENV} to wait longer)")


def default_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if value < 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds >= 0")
    return value


def duckdb_holder(error: Exception) -> tuple[int | None, str] | None:
    """(PID, description) of the process holding DuckDB's file lock, if ``error`` is that lock."""
    text = str(error)
    if "lock" not in text.lower():
        return None
    match = _DUCKDB_HOLDER.search(text)
    pid = int(match["pid"]) if match else None
    program = match["program"] if match else "a process"
    return pid, f"{program} has the DuckDB file open outside bot4's lock"


def _who(pid: int | None) -> str:
    if pid is None:
        return "another process (PID unknown)"
    return f"PID {pid}" + (" (this process)" if pid == os.getpid() else "")


OWN_LOCK_QUIET_S = 5.0  # concurrent bot4 writes queue briefly: say so only if it lasts


class Wait:
    """One attempt to get the warehouse: a deadline, and one warning naming the holder."""

    def __init__(self, path: Path, timeout_s: float):
        self.path = path
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self.warned = False
        self.delay = 0.05

    def blocked(self, pid: int | None, holder: str, quiet_s: float = 0.0) -> None:
        """Called after each failed attempt: warn once (not before ``quiet_s``, capped at half
        the timeout), raise past the deadline, else sleep."""
        waited = time.monotonic() - self.started
        quiet_s = min(quiet_s, self.timeout_s / 2)
        if not self.warned and waited >= quiet_s and (pid is not None or waited > 0.5):
            self.warned = True
            log.warning("warehouse locked by %s, waiting… (%s: %s; giving up after %g s, "
                        "set by %s)", _who(pid), self.path, holder, self.timeout_s, TIMEOUT_ENV)
        if waited >= self.timeout_s:
            raise WarehouseLocked(self.path, pid, waited, holder)
        time.sleep(min(self.delay, max(self.timeout_s - waited, 0.0)))
        self.delay = min(self.delay * 1.5, 1.0)


class PidLock:
    """An exclusive ``flock`` on ``path`` whose holder's PID is in the file."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: Wait) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:  # another bot4 write, usually over in a moment
                    wait.blocked(self.holder(), f"another bot4 process holds {self.path.name}",
                                 quiet_s=OWN_LOCK_QUIET_S)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None
