"""The file formats a user's exports come in, detected from the header, turned into normalised tables.

=================== ============ ==========================================================
format              table        recognised by
=================== ============ ==========================================================
tardis_trades       trades       Tardis.dev header: exchange, symbol, timestamp, local_timestamp, side ...
tardis_quotes       quotes       Tardis.dev header: exchange, symbol, timestamp, local_timestamp, bid_price ...
binance_klines      bars         12 numeric columns (or Binance's kline header); open time ms or µs
binance_aggtrades   trades       7 or 8 columns, agg_trade_id ... is_buyer_maker (header optional)
ohlcv               bars         a timestamp column plus open, high, low, close, volume
=================== ============ ==========================================================

Volume units are recorded, never converted: Binance and Tardis amounts are in the base currency;
a generic OHLCV file's unit comes from the column name (``quote_volume``, ``volume_usd``) or
``volume_unit``; a plain ``volume`` column without it is taken as base, with a note saying so.

``symbol`` (``--symbol``) names the instrument of files that name none. A file that names its
own (a symbol column, or a Binance file name) keeps it, even in a folder read with ``--symbol``
for its unnamed neighbours; when the two differ a note says so, because silently storing a
Binance BTCUSDT export as BTC-PERP would mix two instruments. Every symbol must pass
``symbols.check_symbol`` (rule ``symbol_valid``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import DataError
from .rawfile import RawTable, read_table
from .symbols import ALLOWED, check_symbol, is_valid, problem
from .tables import SOURCE_FILE, SOURCE_ROW, TABLES, conform

FORMATS = ("tardis_trades", "tardis_quotes", "binance_klines", "binance_aggtrades", "ohlcv")
FORMAT_TABLE = {
    "tardis_trades": "trades",
    "tardis_quotes": "quotes",
    "binance_klines": "bars",
    "binance_aggtrades": "trades",
    "ohlcv": "bars",
}
VOLUME_UNITS = ("base", "quote")

TARDIS_KEYS = {"exchange", "symbol", "timestamp", "local_timestamp"}
TARDIS_TRADES = ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"]
TARDIS_QUOTES = ["exchange", "symbol", "timestamp", "local_timestamp",
                 "ask_amount", "ask_price", "bid_price", "bid_amount"]
KLINES = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
          "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore"]
AGGTRADES = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id",
             "transact_time", "is_buyer_maker", "is_best_match"]
TIME_ALIASES = ("timestamp", "time", "datetime", "date", "ts", "open_time")
QUOTE_VOLUME_ALIASES = ("quote_volume", "volume_usd", "volume_quote", "usd_volume")
BINANCE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?:\d+[smhdwM]|aggTrades|trades)-\d{4}-\d{2}(?:-\d{2})?\.csv$"
)
# Text dates that are not ISO 8601, tried in order; a format is used only if it parses every row
# (arch's bundled files write US dates, 1/4/1999).
DATE_FORMATS = ("ISO8601", "%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d.%m.%Y")
# Epoch magnitudes: seconds stay below 1e11 until the year 5138, ms below 1e14, µs below 1e17.
EPOCH_UNITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", np.inf))


@dataclass(frozen=True)
class Parsed:
    """One file as a normalised table, with the facts a user needs to trust it."""

    path: str
    format: str
    table: str  # "bars" | "trades" | "quotes"
    frame: pd.DataFrame  # normalised columns + provenance, in file order
    volume_unit: str  # "base" | "quote"
    ts_unit: str  # epoch "s" | "ms" | "us" | "ns", "iso", or the strftime format of text dates
    notes: tuple[str, ...] = ()  # what a user should know: a symbol other than --symbol, a guessed unit

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frame["symbol"].unique().tolist())


def parse_file(
    path: str | Path,
    *,
    format: str | None = None,
    symbol: str | None = None,
    volume_unit: str | None = None,
) -> Parsed:
    """Read one export, detect (or check) its format and return its normalised table."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (--format, BOT4_FORMAT); choose one of "
                         f"{', '.join(FORMATS)}")
    if volume_unit is not None and volume_unit not in VOLUME_UNITS:
        raise ValueError(f"volume unit must be 'base' or 'quote' (--volume-unit, "
                         f"BOT4_VOLUME_UNIT), not {volume_unit!r}")
    if symbol is not None:
        check_symbol(symbol, where="the symbol option (--symbol, BOT4_SYMBOL)")
    raw = read_table(path)
    fmt = format or detect_format(raw)
    cells = _Cells(raw, fmt)
    frame, ts_unit, unit = _READERS[fmt](cells, symbol, volume_unit)
    frame[SOURCE_FILE] = raw.path
    frame[SOURCE_ROW] = np.arange(raw.first_row, raw.first_row + len(frame), dtype=np.int64)
    _check_symbols(cells, frame["symbol"])
    return Parsed(raw.path, fmt, FORMAT_TABLE[fmt], conform(TABLES[FORMAT_TABLE[fmt]], frame),
                  unit, ts_unit, tuple(cells.notes))


def _check_symbols(cells: _Cells, symbols: pd.Series) -> None:
    """Every distinct symbol of the file must be allowed; the first bad one is reported."""
    codes, uniques = pd.factorize(symbols)
    bad = [i for i, value in enumerate(uniques) if not is_valid(value)]
    if bad:
        position = int(np.flatnonzero(np.isin(codes, bad))[0])
        value = uniques[codes[position]]
        raise DataError.at(cells.raw.path, "symbol_valid",
                           f"symbol {value!r}: {problem(value)}; a symbol may hold {ALLOWED}",
                           row=cells.row_of(position))


def detect_format(raw: RawTable) -> str:
    """The format of a file, from its header (or, without one, its column count)."""
    names = [n.strip().lower() for n in raw.table.column_names]
    found = set(names)
    if not raw.has_header:
        if len(names) == 12:
            return "binance_klines"
        if len(names) in (7, 8):
            return "binance_aggtrades"
    elif TARDIS_KEYS <= found:
        if found & {"side", "price", "amount", "id"}:
            return "tardis_trades"
        if found & {"bid_price", "ask_price", "bid_amount", "ask_amount"}:
            return "tardis_quotes"
    elif "open_time" in found and "taker_buy_volume" in found:
        return "binance_klines"
    elif "agg_trade_id" in found or "is_buyer_maker" in found:
        return "binance_aggtrades"
    elif found & set(TIME_ALIASES) and found & {"open", "high", "low", "close"}:
        return "ohlcv"
    shape = f"header {names}" if raw.has_header else f"{len(names)} unnamed columns"
    raise DataError.at(
        raw.path, "recognised_format",
        f"unrecognised format ({shape}); expected one of {', '.join(FORMATS)}, "
        "or set --format (BOT4_FORMAT)",
    )


class _Cells:
    """Column access by normalised name, with errors that name the file and row."""

    def __init__(self, raw: RawTable, fmt: str):
        self.raw = raw
        self.fmt = fmt
        self.notes: list[str] = []
        names = [n.strip().lower() for n in raw.table.column_names]
        if not raw.has_header:
            expected = {"binance_klines": KLINES, "binance_aggtrades": AGGTRADES}.get(fmt)
            if expected is None:
                raise DataError.at(raw.path, "required_columns",
                                   f"format {fmt} needs a header row, the file has none")
            names = expected[: len(names)]
        self.columns = dict(zip(names, raw.table.columns))

    def require(self, names: list[str]) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise DataError.at(
                self.raw.path, "required_columns",
                f"format {self.fmt} needs column(s) {', '.join(missing)}; "
                f"the file has {', '.join(self.columns)}",
            )

    def first(self, aliases: tuple[str, ...]) -> str | None:
        return next((a for a in aliases if a in self.columns), None)

    def row_of(self, position: int) -> int:
        return self.raw.first_row + int(position)

    def numbers(self, name: str) -> np.ndarray:
        column = self.columns[name]
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        if pa.types.is_boolean(column.type):
            return column.to_numpy(zero_copy_only=False).astype(np.float64)
        values = pd.to_numeric(pd.Series(column.to_pandas()), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() & column.is_valid().to_numpy(False))
        if len(bad):
            cell = column[int(bad[0])].as_py()
            raise DataError.at(self.raw.path, "dtype", f"column {name} holds {cell!r}, not a number",
                               row=self.row_of(bad[0]))
        return values.to_numpy(np.float64)

    def integers(self, name: str) -> np.ndarray:
        values = self.numbers(name)
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if len(bad):
            raise DataError.at(self.raw.path, "dtype",
                               f"column {name} must hold integers, found {values[bad[0]]!r}",
                               row=self.row_of(bad[0]))
        return values.astype(np.int64)

    def epoch(self, name: str, allowed: tuple[str, ...] = ("s", "ms", "us", "ns")) -> tuple[pd.Series, str]:
        """Epoch numbers to UTC; the unit is read from the magnitude and must not change."""
        column = self.columns[name]
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return self.datetimes(name)
        values = self.integers(name)
        if (values <= 0).any():
            bad = int(np.flatnonzero(values <= 0)[0])
            raise DataError.at(self.raw.path, "timestamp_valid",
                               f"{name} = {values[bad]} is not an epoch time", row=self.row_of(bad))
        codes = np.searchsorted([limit for _, limit in EPOCH_UNITS], values, side="right")
        unit = EPOCH_UNITS[codes[0]][0]
        changed = np.flatnonzero(codes != codes[0])
        if len(changed):
            other = EPOCH_UNITS[codes[changed[0]]][0]
            raise DataError.at(
                self.raw.path, "timestamp_unit",
                f"{name} switches from {unit} (row {self.row_of(0)}) to {other} epoch values",
                row=self.row_of(changed[0]),
            )
        if unit not in allowed:
            raise DataError.at(self.raw.path, "timestamp_unit",
                               f"{name} looks like epoch {unit}; format {self.fmt} uses "
                               f"{' or '.join(allowed)}", row=self.row_of(0))
        return pd.Series(pd.to_datetime(values, unit=unit, utc=True)), unit

    def datetimes(self, name: str) -> tuple[pd.Series, str]:
        """ISO timestamps to UTC; a value without a zone is taken as UTC."""
        column = self.columns[name]
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            series = pd.Series(column.to_pandas())
            parsed = pd.to_datetime(series, utc=True)
        else:
            series = pd.Series(column.to_pandas(), dtype="string")
            for fmt in DATE_FORMATS:
                parsed = pd.to_datetime(series, utc=True, format=fmt, errors="coerce")
                if not parsed.isna().any():
                    return parsed, "iso" if fmt == "ISO8601" else fmt
            parsed = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            raise DataError.at(self.raw.path, "timestamp_valid",
                               f"{name} = {series.iloc[bad[0]]!r} is not a timestamp",
                               row=self.row_of(bad[0]))
        return parsed, "iso"

    def text(self, name: str, rule: str = "dtype") -> pd.Series:
        column = self.columns[name]
        if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            return pd.Series(column.to_pandas(), dtype="string").str.strip()
        # Arrow keeps a column as bytes when a cell is not UTF-8 (a Latin-1 export)
        cells = column.to_pylist()
        for position, cell in enumerate(cells):
            try:
                cells[position] = cell.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError.at(self.raw.path, rule, f"column {name} holds {cell!r}, which "
                                   "is not UTF-8 text (re-export the file as UTF-8)",
                                   row=self.row_of(position)) from None
        return pd.Series(cells, dtype="string").str.strip()


def _symbol_from_name(cells: _Cells, symbol: str | None) -> str:
    """A file without a symbol column: its Binance-style name, else the symbol option."""
    match = BINANCE_NAME.match(cells.raw.inner_name) or BINANCE_NAME.match(Path(cells.raw.path).name)
    if match:
        if symbol and match["symbol"] != symbol:
            cells.notes.append(_kept(cells, match["symbol"], symbol))
        return match["symbol"]
    if symbol:
        return symbol
    raise DataError.at(
        cells.raw.path, "symbol_known",
        "the file has no symbol column and its name does not follow Binance's "
        "SYMBOL-1m-YYYY-MM(-DD).csv; set --symbol (BOT4_SYMBOL)",
    )


def _column_symbol(cells: _Cells, symbol: str | None) -> pd.Series:
    """The file's symbol column (a note when the symbol option names another)."""
    named = cells.text("symbol", rule="symbol_valid").str.upper()
    if symbol is not None:
        others = sorted(set(named.dropna().unique()) - {symbol})
        if others:
            cells.notes.append(_kept(cells, ", ".join(others[:5]), symbol))
    return named


def _kept(cells: _Cells, named: str, symbol: str) -> str:
    return (f"{cells.raw.path} names {named}: stored as such; --symbol {symbol} applies only to "
            "files that name no symbol")


def _read_tardis_trades(cells: _Cells, symbol, volume_unit):
    cells.require(TARDIS_TRADES)
    ts, unit = cells.epoch("timestamp", allowed=("us",))
    side = cells.text("side").str.lower().map({"buy": 1, "sell": -1}).fillna(0)
    frame = pd.DataFrame({
        "symbol": _column_symbol(cells, symbol), "ts": ts,
        "price": cells.numbers("price"), "amount": cells.numbers("amount"),
        "side": side.astype(np.int8), "trade_id": cells.integers("id"),
    })
    return frame, unit, "base"


def _read_tardis_quotes(cells: _Cells, symbol, volume_unit):
    cells.require(TARDIS_QUOTES)
    ts, unit = cells.epoch("timestamp", allowed=("us",))
    frame = pd.DataFrame({
        "symbol": _column_symbol(cells, symbol), "ts": ts,
        "bid": cells.numbers("bid_price"), "ask": cells.numbers("ask_price"),
        "bid_size": cells.numbers("bid_amount"), "ask_size": cells.numbers("ask_amount"),
    })
    return frame, unit, "base"


def _read_binance_klines(cells: _Cells, symbol, volume_unit):
    cells.require(KLINES[:11])
    ts, unit = cells.epoch("open_time", allowed=("ms", "us"))
    frame = pd.DataFrame({
        "ts": ts,
        **{k: cells.numbers(k) for k in ("open", "high", "low", "close", "volume")},
        "buy_volume": cells.numbers("taker_buy_volume"),
        "trade_count": cells.integers("count"),
    })
    frame.insert(0, "symbol", _symbol_from_name(cells, symbol))
    return frame, unit, "base"


def _read_binance_aggtrades(cells: _Cells, symbol, volume_unit):
    cells.require(AGGTRADES[:7])
    ts, unit = cells.epoch("transact_time", allowed=("ms", "us"))
    maker = cells.columns["is_buyer_maker"]
    if pa.types.is_boolean(maker.type):
        buyer_is_maker = maker.to_numpy(zero_copy_only=False).astype(bool)
    else:
        buyer_is_maker = cells.text("is_buyer_maker").str.lower().isin(["true", "1"]).to_numpy()
    frame = pd.DataFrame({
        "ts": ts, "price": cells.numbers("price"), "amount": cells.numbers("quantity"),
        # the buyer is the maker: the seller hit the bid, the aggressor sold
        "side": np.where(buyer_is_maker, -1, 1).astype(np.int8),
        "trade_id": cells.integers("agg_trade_id"),
    })
    frame.insert(0, "symbol", _symbol_from_name(cells, symbol))
    return frame, unit, "base"


def _read_ohlcv(cells: _Cells, symbol, volume_unit):
    time_col = cells.first(TIME_ALIASES)
    volume_col = cells.first(("volume", *QUOTE_VOLUME_ALIASES))
    cells.require([time_col or "timestamp", "open", "high", "low", "close", volume_col or "volume"])
    ts, unit = cells.epoch(time_col)
    frame = pd.DataFrame({
        "ts": ts, **{k: cells.numbers(k) for k in ("open", "high", "low", "close")},
        "volume": cells.numbers(volume_col),
    })
    if buy := cells.first(("buy_volume", "taker_buy_volume")):
        frame["buy_volume"] = cells.numbers(buy)
    if count := cells.first(("trade_count", "count", "trades")):
        frame["trade_count"] = cells.integers(count)
    if "symbol" in cells.columns:
        frame.insert(0, "symbol", _column_symbol(cells, symbol))
    else:
        frame.insert(0, "symbol", _symbol_from_name(cells, symbol))
    if volume_unit is None and volume_col not in QUOTE_VOLUME_ALIASES:
        cells.notes.append(f"volume unit of {cells.raw.path} guessed as base; set --volume-unit "
                           "base|quote (BOT4_VOLUME_UNIT) to say so")
    unit_from_name = "quote" if volume_col in QUOTE_VOLUME_ALIASES else None
    return frame, unit, volume_unit or unit_from_name or "base"


_READERS = {
    "tardis_trades": _read_tardis_trades,
    "tardis_quotes": _read_tardis_quotes,
    "binance_klines": _read_binance_klines,
    "binance_aggtrades": _read_binance_aggtrades,
    "ohlcv": _read_ohlcv,
}
