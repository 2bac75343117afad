"""The file formats a user's exports come in, detected from the header, turned into normalised
tables.

=================== ============ ==========================================================
format              table        recognised by
=================== ============ ==========================================================
tardis_trades       trades       Tardis.dev header: exchange, symbol, timestamp, ..., side
tardis_quotes       quotes       Tardis.dev header: exchange, symbol, timestamp, ..., bid_price
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

Values are read exactly or refused, never guessed: integers (trade ids, epoch times) stay int64,
because a float rounds past 2^53; an integer date such as 20220103 (1970 as epoch seconds), text
dates that read both month first and day first, and a file mixing zoned and naive times are
ambiguous (``timestamp_ambiguous``, ``timestamp_zone_consistent``); a time outside pandas'
nanosecond range (``timestamp_in_range``) is no market data; ``is_buyer_maker`` must be a boolean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import DataError
from .rawfile import LINE_NOTE, RawTable, read_table
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
TARDIS_TRADES = ["exchange", "symbol", "timestamp", "local_timestamp",
                 "id", "side", "price", "amount"]
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
# Text dates that are not ISO 8601, as (month first, day first) pairs: a file is read with the
# one that parses every row, and refused when both do and disagree (arch's bundled files write
# US dates, 1/4/1999, and their 13th days decide).
DATE_ORDERS = tuple((f"%m{sep}%d{sep}%Y{clock}", f"%d{sep}%m{sep}%Y{clock}")
                    for sep in "/.-" for clock in ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f"))
# A time of day followed by a zone: Z, UTC or an offset such as +01:00
ZONED = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$",
                   re.IGNORECASE)
# Epoch magnitudes: seconds stay below 1e11 until the year 5138, ms below 1e14, µs below 1e17.
EPOCH_UNITS = (("s", 10**11), ("ms", 10**14), ("us", 10**17), ("ns", None))
EPOCH_LIMITS = np.array([limit for _, limit in EPOCH_UNITS[:-1]], dtype=np.int64)
NANOS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
EPOCH_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
# Integers that are calendar dates written without separators (20220103): read as epoch values
# they land in 1970 or past 2262, so such a column is ambiguous, never a plausible epoch
COMPACT_DATES = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S", 17: "%Y%m%d%H%M%S%f"}
NS_MIN = pd.Timestamp.min.ceil("us").to_pydatetime()
NS_MAX = pd.Timestamp.max.floor("us").to_pydatetime()
NS_RANGE = f"{NS_MIN:%Y-%m-%d} .. {NS_MAX:%Y-%m-%d}"
INT64_MAX = np.iinfo(np.int64).max
POWERS_OF_TEN = np.array([10**k for k in range(19)], dtype=np.int64)  # digits, exactly
FLOAT_EXACT = 2**53  # from here on a float no longer holds every integer
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class Parsed:
    """One file as a normalised table, with the facts a user needs to trust it."""

    path: str
    format: str
    table: str  # "bars" | "trades" | "quotes"
    frame: pd.DataFrame  # normalised columns + provenance, in file order
    volume_unit: str  # "base" | "quote"
    ts_unit: str  # epoch "s" | "ms" | "us" | "ns", "iso", or the strftime format of text dates
    # what a user should know: a symbol other than --symbol, a guessed unit, dropped digits
    notes: tuple[str, ...] = ()

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
    frame[SOURCE_ROW] = raw.lines.astype(np.int64)
    _check_symbols(cells, frame["symbol"])
    if raw.shifted:
        cells.notes.append(f"{raw.path} has blank lines or line breaks inside quoted cells; "
                           f"{LINE_NOTE}")
    return Parsed(raw.path, fmt, FORMAT_TABLE[fmt], conform(TABLES[FORMAT_TABLE[fmt]], frame),
                  unit, ts_unit, tuple(cells.notes))


def _check_symbols(cells: _Cells, symbols: pd.Series) -> None:
    """Every distinct symbol of the file must be allowed; the first bad one is reported."""
    codes, uniques = pd.factorize(symbols)
    bad = [i for i, value in enumerate(uniques) if not is_valid(value)]
    if bad:
        position = int(np.flatnonzero(np.isin(codes, bad))[0])
        value = uniques[codes[position]]
        cells.fail("symbol_valid", f"symbol {value!r}: {problem(value)}; a symbol may hold "
                   f"{ALLOWED}", position)


def detect_format(raw: RawTable) -> str:
    """The format of a file, from its header (or, without one, its column count)."""
    names = [n.strip().lower() for n in raw.table.column_names]
    found = set(names)
    if not raw.has_header:
        if len(names) == 12:
            return "binance_klines"
        if len(names) in (7, 8):
            return "binance_aggtrades"
    elif found >= TARDIS_KEYS:
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


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_bytes(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


class _Cells:
    """Column access by normalised name, with errors that name the file and row.

    Values are converted exactly or refused: integers stay int64 (never through float, which
    rounds above 2^53), epoch times become nanoseconds by integer arithmetic, and text that is
    not UTF-8 is reported at its row instead of being read as bytes.
    """

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
        self.columns = dict(zip(names, raw.table.columns, strict=False))

    def fail(self, rule: str, detail: str, position: int | None = None) -> NoReturn:
        """Refuse the file at the row of ``position`` (None: the whole file)."""
        row = None if position is None else self.row_of(position)
        if row is not None and self.raw.shifted:
            detail += f" ({LINE_NOTE})"
        raise DataError.at(self.raw.path, rule, detail, row=row)

    def require(self, names: list[str]) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            self.fail("required_columns", f"format {self.fmt} needs column(s) "
                      f"{', '.join(missing)}; the file has {', '.join(self.columns)}")

    def first(self, aliases: tuple[str, ...]) -> str | None:
        return next((a for a in aliases if a in self.columns), None)

    def row_of(self, position: int) -> int:
        return self.raw.row_of(position)

    def strings(self, name: str, rule: str = "encoding") -> pd.Series:
        """A column as stripped text; a cell that is not UTF-8 breaks ``rule`` at its row."""
        column = self.columns[name]
        if _is_bytes(column.type):  # Arrow keeps a column as bytes when a cell is not UTF-8
            cells = column.to_pylist()
            for position, cell in enumerate(cells):
                try:
                    cells[position] = None if cell is None else cell.decode("utf-8")
                except UnicodeDecodeError:
                    self.fail(rule, f"column {name} holds {cell!r}, which is not UTF-8 text "
                              "(re-export the file as UTF-8)", position)
            return pd.Series(cells, dtype="string").str.strip()
        if _is_text(column.type):
            return pd.Series(column.to_pandas(), dtype="string").str.strip()
        return pd.Series(column.to_pandas()).astype("string").str.strip()

    def numbers(self, name: str) -> np.ndarray:
        column = self.columns[name]
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        if pa.types.is_boolean(kind):
            return column.to_numpy(zero_copy_only=False).astype(np.float64)
        strings = self.strings(name)
        values = pd.to_numeric(strings, errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() & strings.notna().to_numpy())
        if len(bad):
            self.fail("dtype", f"column {name} holds {strings.iloc[bad[0]]!r}, not a number",
                      bad[0])
        return values.to_numpy(np.float64, na_value=np.nan)

    def integers(self, name: str) -> np.ndarray:
        """Exact int64: from integer cells as they are, from float cells only while a float
        still holds every integer (below 2^53), from text digit by digit."""
        column = self.columns[name]
        kind = column.type
        if pa.types.is_integer(kind):
            self._no_empty(name, column)
            values = column.to_numpy(zero_copy_only=False)
            if values.dtype == np.uint64:
                big = np.flatnonzero(values > INT64_MAX)
                if len(big):
                    self.fail("dtype", f"column {name} holds {int(values[big[0]])}, above "
                              f"int64's {INT64_MAX:,}", big[0])
            return values.astype(np.int64)
        if pa.types.is_floating(kind) or pa.types.is_null(kind):
            values = self.numbers(name)
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(values) | (values != np.round(values))
            if bad.any():
                at = int(np.flatnonzero(bad)[0])
                self.fail("dtype", f"column {name} must hold integers, found {float(values[at])!r}",
                          at)
            inexact = np.flatnonzero(np.abs(values) >= FLOAT_EXACT)
            if len(inexact):
                value = values[inexact[0]]
                where = ("outside int64" if abs(value) >= 2.0**63 else
                         "written as a decimal number at or above 2^53, where a float no longer "
                         "holds every integer, so its exact value is lost")
                self.fail("dtype", f"column {name} holds {float(value)!r}, {where}", inexact[0])
            return values.astype(np.int64)
        strings = self.strings(name)
        digits = strings.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(bool)
        if not digits.all():
            at = int(np.flatnonzero(~digits)[0])
            self.fail("dtype", f"column {name} holds {strings.iloc[at]!r}, not an integer", at)
        try:
            return pa.array(strings.to_numpy(object)).cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, OverflowError):
            at = next(i for i, s in enumerate(strings) if abs(int(s)) > INT64_MAX)
            self.fail("dtype", f"column {name} holds {strings.iloc[at]}, outside int64", at)

    def booleans(self, name: str) -> np.ndarray:
        """true/false (any case) or 1/0; anything else is refused, never read as false."""
        column = self.columns[name]
        if pa.types.is_boolean(column.type):
            self._no_empty(name, column)
            return column.to_numpy(zero_copy_only=False).astype(bool)
        words = self.strings(name).str.lower()
        values = words.map(BOOLEANS)
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            cell = words.iloc[bad[0]]
            if pd.isna(cell) or not cell:
                self.fail("dtype", f"column {name} has an empty cell", bad[0])
            self.fail("dtype", f"column {name} holds {cell!r}, not true or false", bad[0])
        return values.to_numpy(bool)

    def _no_empty(self, name: str, column: pa.ChunkedArray, rule: str = "dtype") -> None:
        if column.null_count:
            at = int(np.flatnonzero(~column.is_valid().to_numpy(zero_copy_only=False))[0])
            self.fail(rule, f"column {name} has an empty cell", at)

    def epoch(self, name: str,
              allowed: tuple[str, ...] = ("s", "ms", "us", "ns")) -> tuple[pd.Series, str]:
        """Times to UTC: epoch numbers (unit read from the magnitude, the same for every row),
        typed timestamps, or text (``datetimes``)."""
        column = self.columns[name]
        kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return self._typed(name, column), "iso"
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return self.datetimes(name)
        self._no_empty(name, column, "timestamp_valid")
        values = self.integers(name)
        if (values <= 0).any():
            bad = int(np.flatnonzero(values <= 0)[0])
            self.fail("timestamp_valid", f"{name} = {values[bad]} is not an epoch time", bad)
        self._not_compact_dates(name, values)
        codes = np.searchsorted(EPOCH_LIMITS, values, side="right")
        unit = EPOCH_UNITS[codes[0]][0]
        changed = np.flatnonzero(codes != codes[0])
        if len(changed):
            other = EPOCH_UNITS[codes[changed[0]]][0]
            self.fail("timestamp_unit", f"{name} switches from {unit} (row {self.row_of(0)}) to "
                      f"{other} epoch values", changed[0])
        if unit not in allowed:
            self.fail("timestamp_unit", f"{name} looks like epoch {unit}; format {self.fmt} uses "
                      f"{' or '.join(allowed)}", 0)
        return self._nanoseconds(name, values, unit), unit

    def _nanoseconds(self, name: str, values: np.ndarray, unit: str) -> pd.Series:
        """Epoch integers in ``unit`` to UTC times, by integer arithmetic (exact); a value
        outside pandas' nanosecond range breaks ``timestamp_in_range``."""
        factor = NANOS[unit]
        lo, hi = -(-pd.Timestamp.min.value // factor), pd.Timestamp.max.value // factor
        outside = np.flatnonzero((values < lo) | (values > hi))
        if len(outside):
            value = int(values[outside[0]])
            when = np.datetime_as_string(np.datetime64(value, unit), unit="s")
            self.fail("timestamp_in_range", f"{name} = {value} ({EPOCH_NAMES[unit]} since 1970) "
                      f"is {when}, outside {NS_RANGE}, the range of pandas' nanosecond "
                      "timestamps; no market data is from then", outside[0])
        return pd.Series(pd.to_datetime(values * factor, unit="ns", utc=True))

    def _typed(self, name: str, column: pa.ChunkedArray) -> pd.Series:
        """Arrow timestamps and dates (Parquet, or CSV cells Arrow recognised) to UTC."""
        self._no_empty(name, column, "timestamp_valid")
        kind = column.type
        if pa.types.is_date32(kind):
            return self._nanoseconds(name, column.cast(pa.int32()).to_numpy().astype(np.int64)
                                     * 86_400, "s")
        if pa.types.is_date64(kind):
            return self._nanoseconds(name, column.cast(pa.int64()).to_numpy(), "ms")
        # tz-aware values are stored as UTC; naive ones are taken as UTC, as text times are
        return self._nanoseconds(name, column.cast(pa.int64()).to_numpy(), kind.unit)

    def _not_compact_dates(self, name: str, values: np.ndarray) -> None:
        """20220103 is a date to a person and 1970-08-23 01:41:43 as epoch seconds: refused."""
        digits = np.searchsorted(POWERS_OF_TEN, values, side="right")
        for length, pattern in COMPACT_DATES.items():
            candidates = np.flatnonzero(digits == length)
            if not len(candidates):
                continue
            text = pd.Series(values[candidates].astype(str))
            dates = pd.to_datetime(text, format=pattern, errors="coerce")
            hit = np.flatnonzero(dates.notna().to_numpy() & (dates.dt.year >= 1900).to_numpy()
                                 & (dates.dt.year < 2100).to_numpy())
            if len(hit):
                at = int(candidates[hit[0]])
                unit = EPOCH_UNITS[int(np.searchsorted(EPOCH_LIMITS, values[at], side="right"))][0]
                epoch = pd.Timestamp(np.datetime64(int(values[at]), unit))
                shown = dates.iloc[hit[0]].strftime("%Y-%m-%d" if length == 8 else
                                                    "%Y-%m-%d %H:%M:%S")
                self.fail("timestamp_ambiguous",
                          f"{name} = {values[at]} reads as {shown} ({pattern}) or as epoch "
                          f"{EPOCH_NAMES[unit]}, {epoch:%Y-%m-%d %H:%M:%S} "
                          "UTC; write dates as ISO 8601 text (2022-01-03) or epoch milliseconds",
                          at)

    def datetimes(self, name: str) -> tuple[pd.Series, str]:
        """Text times to UTC: ISO 8601, else a day/month order that is the only one to parse
        every row. A value without a zone is taken as UTC, so a file must give a zone on every
        row or on none."""
        series = self.strings(name)
        zoned = series.str.contains(ZONED).fillna(False).to_numpy(bool)
        if zoned.any() and not zoned.all():
            at = int(np.flatnonzero(zoned != zoned[0])[0])
            this, that = ("has a zone", "has none") if zoned[at] else ("has no zone", "has one")
            self.fail("timestamp_zone_consistent",
                      f"{name} = {series.iloc[at]!r} {this}, row {self.row_of(0)} "
                      f"({series.iloc[0]!r}) {that}: a time without a zone is taken as UTC, so "
                      "the file mixes clocks; give every row an offset (or Z), or none", at)
        best, best_format = self._parse(series, "ISO8601"), "ISO8601"
        if best.notna().all():
            return best, "iso"
        for month_first, day_first in DATE_ORDERS:
            by_month, by_day = self._parse(series, month_first), self._parse(series, day_first)
            full = [(p, f) for p, f in ((by_month, month_first), (by_day, day_first))
                    if p.notna().all()]
            if len(full) == 2 and not by_month.equals(by_day):
                at = int(np.flatnonzero((by_month != by_day).to_numpy())[0])
                self.fail("timestamp_ambiguous",
                          f"{name} = {series.iloc[at]!r} reads as {by_month.iloc[at]:%Y-%m-%d} "
                          f"(month first, {month_first}) and as {by_day.iloc[at]:%Y-%m-%d} (day "
                          f"first, {day_first}), and no row of the file decides (none has a "
                          "day above 12); write dates as ISO 8601 (2022-01-03)", at)
            if full:
                return full[0][0], full[0][1]
            for parsed, fmt in ((by_month, month_first), (by_day, day_first)):
                if parsed.notna().sum() > best.notna().sum():
                    best, best_format = parsed, fmt
        # no format reads every row: the first row the most successful one cannot read
        at = int(np.flatnonzero(best.isna().to_numpy())[0])
        value = series.iloc[at]
        if _outside_ns_range(value, best_format):
            self.fail("timestamp_in_range", f"{name} = {value!r} is outside {NS_RANGE}, the "
                      "range of pandas' nanosecond timestamps; no market data is from then", at)
        self.fail("timestamp_valid", f"{name} = {value!r} is not a timestamp", at)

    @staticmethod
    def _parse(series: pd.Series, fmt: str) -> pd.Series:
        return pd.to_datetime(series, utc=True, format=fmt, errors="coerce")


def _outside_ns_range(value, fmt: str) -> bool:
    """Whether ``value`` is a valid calendar time that only pandas' range refused (year 3000)."""
    if value is None or value is pd.NA:
        return False
    try:
        when = (datetime.fromisoformat(str(value)) if fmt == "ISO8601"
                else datetime.strptime(str(value), fmt))
    except ValueError:
        return False
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return not NS_MIN <= when <= NS_MAX


def _symbol_from_name(cells: _Cells, symbol: str | None) -> str:
    """A file without a symbol column: its Binance-style name, else the symbol option."""
    match = (BINANCE_NAME.match(cells.raw.inner_name)
             or BINANCE_NAME.match(Path(cells.raw.path).name))
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
    named = cells.strings("symbol", rule="symbol_valid").str.upper()
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
    side = cells.strings("side").str.lower().map({"buy": 1, "sell": -1}).fillna(0)
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
    buyer_is_maker = cells.booleans("is_buyer_maker")
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
