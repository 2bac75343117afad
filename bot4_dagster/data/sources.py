"""Where market data comes from: the data bundled with ``arch``, a user's files, or Binance's
public archive. Every source answers two questions: what do you hold (``extents``) and give me
one table for one symbol and time window (``load``), in file order with provenance, unvalidated.

A source that holds a symbol's trades but no bars also offers bars built from those trades
(``derived.py``; the extent says ``derived_from="trades"``), so a trades-only export runs end to
end. Notes a user should see (a file naming another symbol than --symbol, a guessed volume
unit, how bars were built) travel in ``Loaded.notes`` and are logged on ``bot4_dagster.progress``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from .derived import DEFAULT_INTERVAL, bar_nanos, bars_from_trades, first_bar, trades_window
from .formats import Parsed, parse_file
from .rawfile import is_data_file
from .symbols import check_symbol
from .tables import TABLES

log = logging.getLogger(__name__)
progress_log = logging.getLogger("bot4_dagster.progress")


@dataclass(frozen=True)
class Extent:
    """A source holds ``table`` rows for ``symbol`` from ``start`` to ``end`` (both inclusive).

    ``derived_from``: None for rows the source holds as such; "trades" for bars it builds from
    its trades (show it: the bars are the source's trades, aggregated).
    """

    table: str
    symbol: str
    start: pd.Timestamp
    end: pd.Timestamp
    derived_from: str | None = None


@dataclass(frozen=True)
class FileUse:
    path: str
    format: str
    rows: int
    volume_unit: str
    ts_unit: str


@dataclass
class Loaded:
    """One table for one symbol and window, straight from the files, for validation to judge."""

    table: str
    symbol: str
    frame: pd.DataFrame
    files: list[FileUse] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    derived_from: str | None = None  # "trades": bars built from the source's trades

    @property
    def volume_unit(self) -> str:
        units = sorted({f.volume_unit for f in self.files})
        return units[0] if len(units) == 1 else "mixed: " + ", ".join(units)


class MarketSource(Protocol):
    name: str

    def extents(self) -> list[Extent]: ...

    def load(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Loaded: ...


def ingest_window(source: MarketSource, table: str, symbol: str, start: str | None = None,
                  end: str | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The half-open window [start, end) to ingest: the given bounds (ISO, UTC), else the first
    and just after the last row the source holds of ``table`` for ``symbol``."""
    held = [e for e in source.extents() if e.table == table and e.symbol == symbol]
    if not held and (start is None or end is None):
        raise ValueError(f"the source holds no {table} for {symbol}: nothing to ingest")
    lo = pd.Timestamp(start, tz="UTC") if start else held[0].start
    hi = pd.Timestamp(end, tz="UTC") if end else held[0].end + pd.Timedelta(1, "ns")
    if hi <= lo:
        raise ValueError(f"empty ingest window [{lo}, {hi}) for {table} {symbol}")
    return lo, hi


def _window(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    ts = frame["ts"]
    return frame[(ts >= start) & (ts < end)]


def _combine(table: str, symbol: str, parsed: list[Parsed], start, end) -> Loaded:
    """Files in the order of their first row's time, each cut to the window and the symbol;
    the notes of the files that contributed rows are logged as warnings and kept."""
    parts, uses, notes = [], [], []
    for p in sorted(parsed, key=lambda p: (p.frame["ts"].iloc[0], p.path)):
        frame = _window(p.frame[p.frame["symbol"] == symbol], start, end)
        if len(frame):
            parts.append(frame)
            uses.append(FileUse(p.path, p.format, len(frame), p.volume_unit, p.ts_unit))
            notes.extend(p.notes)
    for note in notes:
        progress_log.warning(note)
    frame = pd.concat(parts, ignore_index=True) if parts else TABLES[table].empty()
    return Loaded(table, symbol, frame, uses, notes)


def _derived_extents(extents: list[Extent], interval: str) -> list[Extent]:
    """Bars built from trades for every symbol with trades and no bars."""
    with_bars = {e.symbol for e in extents if e.table == "bars"}
    return [Extent("bars", e.symbol, first_bar(e.start, interval), first_bar(e.end, interval),
                   derived_from="trades")
            for e in extents if e.table == "trades" and e.symbol not in with_bars]


def _load_derived(load_trades: Callable[..., Loaded], symbol: str, start, end,
                  interval: str) -> Loaded:
    """Bars opening in [start, end), built from the whole bars' trades."""
    trades = load_trades("trades", symbol, *trades_window(start, end, interval))
    bars, report = bars_from_trades(trades.frame, interval)
    built = f"bars built from {report.rows:,} trades at {interval}"
    progress_log.info("%s: %s", symbol, built)
    notes = [*trades.notes, built]
    if report.duplicates_removed:
        notes.append(f"{report.duplicates_removed:,} duplicate trade(s) dropped before building "
                     "bars")
    return Loaded("bars", symbol, bars, trades.files, notes, derived_from="trades")


# --------------------------------------------------------------------------------------------
# files


INDEX_VERSION = 2  # 2: entries keyed by content hash (1 was size + mtime)


@dataclass(frozen=True)
class _IndexEntry:
    path: str
    sha256: str
    format: str
    table: str
    symbols: dict[str, tuple[str, str]]  # symbol -> (first ts, last ts), ISO


def _sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _visible_data_files(root: Path) -> list[Path]:
    """Data files below ``root``, not descending into hidden folders; other files are logged."""
    found, other = [], []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            candidate = Path(folder) / name
            (found if is_data_file(candidate) else other).append(candidate)
    if other:
        log.info("files source: %d file(s) in %s are not .csv, .csv.gz, .zip or .parquet and are "
                 "not read: %s", len(other), root, ", ".join(str(p) for p in sorted(other)[:5]))
    return sorted(found)


class FileSource:
    """A directory, a single file or a glob of a user's exports (formats in ``formats.py``).

    The first look at each file is cached in ``index_path``, keyed by the file's sha256: a file
    rewritten in place is noticed even when its size and mtime are unchanged (a copy that keeps
    timestamps, a tool that restores them), and hashing is far cheaper than parsing again.
    ``load`` reads only the files that overlap the window. A symbol with trades but no bars
    also gets bars built from its trades at ``bar_interval``.
    """

    name = "files"

    def __init__(self, path: str | Path, *, format: str | None = None, symbol: str | None = None,
                 volume_unit: str | None = None, index_path: str | Path | None = None,
                 bar_interval: str = DEFAULT_INTERVAL):
        self.path = str(path)
        if symbol is not None:
            check_symbol(symbol, where="the files source's symbol option (--symbol, BOT4_SYMBOL)")
        self.options = dict(format=format, symbol=symbol, volume_unit=volume_unit)
        self.index_path = Path(index_path) if index_path else None
        bar_nanos(bar_interval)
        self.bar_interval = bar_interval

    def files(self) -> list[Path]:
        """The files to read. In a directory, hidden files and folders (``.git``,
        ``.ipynb_checkpoints``, macOS ``._x.csv``) are skipped: they are copies or tool state,
        never exports, and reading a notebook's checkpoint copy would ingest a file twice."""
        path = Path(self.path).expanduser()
        if path.is_dir():
            found = _visible_data_files(path)
        elif path.is_file():
            found = [path]
        else:
            found = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))
                     if is_data_file(Path(p))]
        if not found:
            raise FileNotFoundError(
                f"files source: no data files at {self.path!r} (--path, BOT4_PATH; expected "
                ".csv, .csv.gz, .zip or .parquet files, a directory of them or a glob)"
            )
        return found

    def _parse(self, path: Path) -> Parsed:
        return parse_file(path, **self.options)

    def index(self) -> list[_IndexEntry]:
        cached = self._read_index()
        hashes = {str(path): _sha256(path) for path in self.files()}
        entries, changed = [], False
        for path, digest in hashes.items():
            key = f"{Path(path).absolute()}|{digest}|{json.dumps(self.options)}"
            entry = cached.get(key)
            if entry is None:
                parsed = self._parse(Path(path))
                spans = parsed.frame.groupby("symbol", sort=True)["ts"].agg(["min", "max"])
                entry = _IndexEntry(
                    path, digest, parsed.format, parsed.table,
                    {s: (row["min"].isoformat(), row["max"].isoformat())
                     for s, row in spans.iterrows()},
                )
                cached[key], changed = entry, True
            entries.append(entry)
        if changed:  # entries of files that have since changed are dropped; others' are kept
            self._write_index({k: e for k, e in cached.items()
                               if hashes.get(e.path, e.sha256) == e.sha256})
        return entries

    def extents(self) -> list[Extent]:
        spans: dict[tuple[str, str], tuple[pd.Timestamp, pd.Timestamp]] = {}
        for entry in self.index():
            for symbol, (first, last) in entry.symbols.items():
                first, last = pd.Timestamp(first), pd.Timestamp(last)
                lo, hi = spans.get((entry.table, symbol), (first, last))
                spans[(entry.table, symbol)] = (min(lo, first), max(hi, last))
        held = [Extent(t, s, lo, hi) for (t, s), (lo, hi) in sorted(spans.items())]
        return sorted(held + _derived_extents(held, self.bar_interval),
                      key=lambda e: (e.table, e.symbol))

    def load(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Loaded:
        index = self.index()
        if table == "bars" and not any(e.table == "bars" and symbol in e.symbols for e in index) \
                and any(e.table == "trades" and symbol in e.symbols for e in index):
            return _load_derived(lambda *window: self._load_held(*window, index), symbol, start,
                                 end, self.bar_interval)
        return self._load_held(table, symbol, start, end, index)

    def _load_held(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp,
                   index: list[_IndexEntry] | None = None) -> Loaded:
        wanted = [
            Path(e.path) for e in (index if index is not None else self.index())
            if e.table == table and symbol in e.symbols
            and pd.Timestamp(e.symbols[symbol][0]) < end
            and pd.Timestamp(e.symbols[symbol][1]) >= start
        ]
        return _combine(table, symbol, [self._parse(p) for p in wanted], start, end)

    def _read_index(self) -> dict[str, _IndexEntry]:
        if not self.index_path or not self.index_path.exists():
            return {}
        try:
            raw = json.loads(self.index_path.read_text())
            if not isinstance(raw, dict) or raw.get("version") != INDEX_VERSION:
                log.info("rebuilding the file index %s (older format)", self.index_path)
                return {}
            return {k: _IndexEntry(**{**v, "symbols": {s: tuple(t)
                                                       for s, t in v["symbols"].items()}})
                    for k, v in raw["entries"].items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ignoring unreadable file index %s", self.index_path)
            return {}

    def _write_index(self, entries: dict[str, _IndexEntry]) -> None:
        if not self.index_path:
            return
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.index_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"version": INDEX_VERSION,
                                   "entries": {k: asdict(v) for k, v in entries.items()}},
                                  indent=1))
        os.replace(tmp, self.index_path)


# --------------------------------------------------------------------------------------------
# bundled


BUNDLED = {"SP500": "sp500", "NASDAQ": "nasdaq"}


class BundledSource(FileSource):
    """The real daily S&P 500 and NASDAQ Composite bars that ship inside ``arch`` (1999-2018),
    read through the same parser and validation as a user's files."""

    name = "bundled"

    def __init__(self, symbols: list[str] | None = None):
        import arch.data

        root = Path(arch.data.__file__).parent
        chosen = [check_symbol(s, where="the bundled source's symbols (--symbols, BOT4_SYMBOLS)")
                  for s in symbols or BUNDLED]
        unknown = sorted(set(chosen) - set(BUNDLED))
        if unknown:
            raise ValueError(f"bundled data has no {', '.join(unknown)} (--symbols, "
                             f"BOT4_SYMBOLS); it holds {', '.join(BUNDLED)}")
        self._paths = {s: root / BUNDLED[s] / f"{BUNDLED[s]}.csv.gz" for s in chosen}
        super().__init__(root, volume_unit="base")

    def files(self) -> list[Path]:
        return list(self._paths.values())

    def _parse(self, path: Path) -> Parsed:
        symbol = next(s for s, p in self._paths.items() if p == path)
        return parse_file(path, format="ohlcv", symbol=symbol, volume_unit="base")


# --------------------------------------------------------------------------------------------
# binance


class BinanceSource:
    """1-minute klines (→ bars) and aggTrades (→ trades) from Binance's public data archive,
    checksum-verified and cached on disk (``binance.py``).

    ``klines=False`` with ``trades=True`` reads aggTrades only and builds the bars from them at
    ``bar_interval`` (klines come in fixed intervals; this gives any interval, and buy volume and
    trade counts that agree with the stored trades).
    """

    name = "binance"

    def __init__(self, symbols: list[str], start: str, end: str | None = None, *,
                 market: str = "spot", trades: bool = False, klines: bool = True,
                 bar_interval: str = DEFAULT_INTERVAL, base_url: str | None = None,
                 cache_dir: str | Path, progress: Callable | None = None):
        from .binance import DEFAULT_BASE_URL, BinanceArchive

        if not symbols:
            raise ValueError("binance source: set --symbols (BOT4_SYMBOLS), e.g. BTCUSDT")
        if not (klines or trades):
            raise ValueError("binance source: without klines it needs --trades (BOT4_TRADES)")
        self.symbols = [check_symbol(s.upper(), where="the binance source's symbols "
                                     "(--symbols, BOT4_SYMBOLS)") for s in symbols]
        self.start = pd.Timestamp(start, tz="UTC").normalize()
        today = pd.Timestamp.now(tz="UTC").normalize()
        self.end = min(pd.Timestamp(end, tz="UTC"), today) if end else today
        if self.end <= self.start:
            raise ValueError(f"binance source: empty date range {start} .. {end} (--start, "
                             "BOT4_START; --end, BOT4_END)")
        self.trades = trades
        self.klines = klines
        bar_nanos(bar_interval)
        self.bar_interval = bar_interval
        self.archive = BinanceArchive(base_url=base_url or DEFAULT_BASE_URL, market=market,
                                      cache_dir=Path(cache_dir), progress=progress)

    def extents(self) -> list[Extent]:
        last = self.end - pd.Timedelta(microseconds=1)
        tables = [t for t, on in (("bars", self.klines), ("trades", self.trades)) if on]
        held = [Extent(t, s, self.start, last) for s in self.symbols for t in tables]
        return held + _derived_extents(held, self.bar_interval)

    def load(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Loaded:
        if table == "bars" and not self.klines:
            return _load_derived(self._load_held, symbol, start, end, self.bar_interval)
        return self._load_held(table, symbol, start, end)

    def _load_held(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Loaded:
        if table not in ("bars", "trades") or (table == "trades" and not self.trades):
            return Loaded(table, symbol, TABLES[table].empty(),
                          notes=[f"binance source has no {table}"])
        lo, hi = max(start, self.start), min(end, self.end)
        if hi <= lo:
            return Loaded(table, symbol, TABLES[table].empty())
        files = self.archive.plan("klines" if table == "bars" else "aggTrades", symbol, lo, hi)
        paths = self.archive.fetch_all(files)
        fmt = "binance_klines" if table == "bars" else "binance_aggtrades"
        parsed = [parse_file(p, format=fmt, symbol=symbol) for p in paths]
        return _combine(table, symbol, parsed, start, end)
