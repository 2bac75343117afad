"""Where market data comes from: the data bundled with ``arch``, a user's files, or Binance's
public archive. Every source answers two questions: what do you hold (``extents``) and give me
one table for one symbol and time window (``load``), in file order with provenance, unvalidated.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from .formats import Parsed, parse_file
from .rawfile import is_data_file
from .tables import TABLES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extent:
    """A source holds ``table`` rows for ``symbol`` from ``start`` to ``end`` (both inclusive)."""

    table: str
    symbol: str
    start: pd.Timestamp
    end: pd.Timestamp


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

    @property
    def volume_unit(self) -> str:
        units = sorted({f.volume_unit for f in self.files})
        return units[0] if len(units) == 1 else "mixed: " + ", ".join(units)


class MarketSource(Protocol):
    name: str

    def extents(self) -> list[Extent]: ...

    def load(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Loaded: ...


def _window(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    ts = frame["ts"]
    return frame[(ts >= start) & (ts < end)]


def _combine(table: str, symbol: str, parsed: list[Parsed], start, end) -> Loaded:
    """Files in the order of their first row's time, each cut to the window and the symbol."""
    parts, uses = [], []
    for p in sorted(parsed, key=lambda p: (p.frame["ts"].iloc[0], p.path)):
        frame = _window(p.frame[p.frame["symbol"] == symbol], start, end)
        if len(frame):
            parts.append(frame)
            uses.append(FileUse(p.path, p.format, len(frame), p.volume_unit, p.ts_unit))
    frame = pd.concat(parts, ignore_index=True) if parts else TABLES[table].empty()
    return Loaded(table, symbol, frame, uses)


# --------------------------------------------------------------------------------------------
# files


@dataclass(frozen=True)
class _IndexEntry:
    path: str
    size: int
    mtime_ns: int
    format: str
    table: str
    symbols: dict[str, tuple[str, str]]  # symbol -> (first ts, last ts), ISO


class FileSource:
    """A directory, a single file or a glob of a user's exports (formats in ``formats.py``).

    The first look at each file is cached in ``index_path`` (by size and mtime), so planning a
    run does not parse every file again; ``load`` reads only the files that overlap the window.
    """

    name = "files"

    def __init__(self, path: str | Path, *, format: str | None = None, symbol: str | None = None,
                 volume_unit: str | None = None, index_path: str | Path | None = None):
        self.path = str(path)
        self.options = dict(format=format, symbol=symbol, volume_unit=volume_unit)
        self.index_path = Path(index_path) if index_path else None

    def files(self) -> list[Path]:
        path = Path(self.path).expanduser()
        if path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if is_data_file(p)]
        elif path.is_file():
            found = [path]
        else:
            found = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))
                     if is_data_file(Path(p))]
        if not found:
            raise FileNotFoundError(
                f"files source: no data files at {self.path!r} "
                "(expected .csv, .csv.gz, .zip or .parquet files, a directory of them or a glob)"
            )
        return found

    def _parse(self, path: Path) -> Parsed:
        return parse_file(path, **self.options)

    def index(self) -> list[_IndexEntry]:
        cached = self._read_index()
        entries, changed = [], False
        for path in self.files():
            stat = path.stat()
            key = f"{path.absolute()}|{stat.st_size}|{stat.st_mtime_ns}|{json.dumps(self.options)}"
            entry = cached.get(key)
            if entry is None:
                parsed = self._parse(path)
                spans = parsed.frame.groupby("symbol", sort=True)["ts"].agg(["min", "max"])
                entry = _IndexEntry(
                    str(path), stat.st_size, stat.st_mtime_ns, parsed.format, parsed.table,
                    {s: (row["min"].isoformat(), row["max"].isoformat()) for s, row in spans.iterrows()},
                )
                cached[key], changed = entry, True
            entries.append(entry)
        if changed:
            self._write_index(cached)
        return entries

    def extents(self) -> list[Extent]:
        spans: dict[tuple[str, str], tuple[pd.Timestamp, pd.Timestamp]] = {}
        for entry in self.index():
            for symbol, (first, last) in entry.symbols.items():
                first, last = pd.Timestamp(first), pd.Timestamp(last)
                lo, hi = spans.get((entry.table, symbol), (first, last))
                spans[(entry.table, symbol)] = (min(lo, first), max(hi, last))
        return [Extent(t, s, lo, hi) for (t, s), (lo, hi) in sorted(spans.items())]

    def load(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Loaded:
        wanted = [
            Path(e.path) for e in self.index()
            if e.table == table and symbol in e.symbols
            and pd.Timestamp(e.symbols[symbol][0]) < end and pd.Timestamp(e.symbols[symbol][1]) >= start
        ]
        return _combine(table, symbol, [self._parse(p) for p in wanted], start, end)

    def _read_index(self) -> dict[str, _IndexEntry]:
        if not self.index_path or not self.index_path.exists():
            return {}
        try:
            raw = json.loads(self.index_path.read_text())
            return {k: _IndexEntry(**{**v, "symbols": {s: tuple(t) for s, t in v["symbols"].items()}})
                    for k, v in raw.items()}
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring unreadable file index %s", self.index_path)
            return {}

    def _write_index(self, entries: dict[str, _IndexEntry]) -> None:
        if not self.index_path:
            return
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.index_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in entries.items()}, indent=1))
        os.replace(tmp, self.index_path)


# --------------------------------------------------------------------------------------------
# bundled


BUNDLED = {"SP500": "sp500", "NASDAQ": "nasdaq"}


class BundledSource(FileSource):
    """The real daily S&P 500 and NASDAQ Composite bars that ship inside ``arch`` (1999–2018),
    read through the same parser and validation as a user's files."""

    name = "bundled"

    def __init__(self, symbols: list[str] | None = None):
        import arch.data

        root = Path(arch.data.__file__).parent
        chosen = symbols or list(BUNDLED)
        unknown = sorted(set(chosen) - set(BUNDLED))
        if unknown:
            raise ValueError(f"bundled data has no {unknown}; it holds {', '.join(BUNDLED)}")
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
    checksum-verified and cached on disk (``binance.py``)."""

    name = "binance"

    def __init__(self, symbols: list[str], start: str, end: str | None = None, *,
                 market: str = "spot", trades: bool = False, base_url: str | None = None,
                 cache_dir: str | Path, progress: Callable | None = None):
        from .binance import DEFAULT_BASE_URL, BinanceArchive

        if not symbols:
            raise ValueError("binance source: name at least one symbol, e.g. BTCUSDT")
        self.symbols = [s.upper() for s in symbols]
        self.start = pd.Timestamp(start, tz="UTC").normalize()
        today = pd.Timestamp.now(tz="UTC").normalize()
        self.end = min(pd.Timestamp(end, tz="UTC"), today) if end else today
        if self.end <= self.start:
            raise ValueError(f"binance source: empty date range {start} .. {end}")
        self.trades = trades
        self.archive = BinanceArchive(base_url=base_url or DEFAULT_BASE_URL, market=market,
                                      cache_dir=Path(cache_dir), progress=progress)

    def extents(self) -> list[Extent]:
        last = self.end - pd.Timedelta(microseconds=1)
        tables = ["bars", "trades"] if self.trades else ["bars"]
        return [Extent(t, s, self.start, last) for s in self.symbols for t in tables]

    def load(self, table: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Loaded:
        if table not in ("bars", "trades") or (table == "trades" and not self.trades):
            return Loaded(table, symbol, TABLES[table].empty(), notes=[f"binance source has no {table}"])
        lo, hi = max(start, self.start), min(end, self.end)
        if hi <= lo:
            return Loaded(table, symbol, TABLES[table].empty())
        files = self.archive.plan("klines" if table == "bars" else "aggTrades", symbol, lo, hi)
        paths = self.archive.fetch_all(files)
        fmt = "binance_klines" if table == "bars" else "binance_aggtrades"
        parsed = [parse_file(p, format=fmt, symbol=symbol) for p in paths]
        return _combine(table, symbol, parsed, start, end)
