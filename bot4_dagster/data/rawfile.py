"""Opening a user's file: plain, gzip or zip CSV, or Parquet, with damage reported by file and row.

Rows are the physical lines of the file as an editor numbers them, header = row 1: blank lines and
line breaks inside quoted cells are counted, so a reported row is the line to look at. A
truncated gzip is reported with the first line it lost.

Reading is bounded: every file is decompressed as a stream and refused once it expands past
``BOT4_MAX_FILE_BYTES`` (rule ``file_size``; a gzip or zip bomb would otherwise end in a
MemoryError), and a line longer than ``MAX_LINE_BYTES`` is refused (rule ``line_length``) before
any CSV parser sees it, since no row of market data is near that long.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import DataError

SUFFIXES = (".csv", ".csv.gz", ".gz", ".zip", ".parquet", ".pq")
MAX_FILE_BYTES_ENV = "BOT4_MAX_FILE_BYTES"
# the whole file is held in memory (bytes, then Arrow, then pandas), so the default leaves room
# for those copies on a 16 GB machine
DEFAULT_MAX_FILE_BYTES = 4 << 30
# half of the csv module's field limit (131,072), so the header sniffing never meets it
MAX_LINE_BYTES = 1 << 16
CHUNK_BYTES = 1 << 20
SCAN_BYTES = 1 << 24  # newline search in slices, so the temporary mask stays small
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
LINE_NOTE = "rows are lines of the file: blank lines and line breaks inside quoted cells count"


@dataclass(frozen=True)
class RawTable:
    """A file's cells, before any meaning is given to them."""

    path: str
    inner_name: str  # the CSV's own name (inside a zip), used to read a symbol from it
    table: pa.Table
    has_header: bool
    lines: np.ndarray  # the file line (1-based) of each data row; Parquet: the row number
    # blank lines or line breaks inside cells sit between data rows: say how rows are counted
    shifted: bool = False
    header_line: int | None = None  # the header's line, None without a header

    @property
    def first_row(self) -> int:
        return int(self.lines[0])

    def row_of(self, position: int) -> int:
        return int(self.lines[int(position)])


def is_data_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and name.endswith(SUFFIXES)


def max_file_bytes() -> int:
    """The per-file cap on decompressed bytes: ``BOT4_MAX_FILE_BYTES``, else 4 GiB."""
    text = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_FILE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{MAX_FILE_BYTES_ENV} must be a positive number of bytes, "
                         f"not {text!r}")
    return value


def read_bytes(path: str | Path) -> tuple[bytearray, str]:
    """Decompressed CSV bytes (at most ``max_file_bytes()``) and the CSV's own name."""
    path = Path(path)
    name = path.name.lower()
    limit = max_file_bytes()
    if name.endswith(".zip"):
        return _unzip(path, limit)
    with _open(path) as stream:
        if name.endswith(".gz"):
            return _gunzip(path, stream, limit), path.name[: -len(".gz")]
        return _drain(path, stream.read, limit), path.name


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataError.at(str(path), "file_readable",
                           f"the file cannot be read: {exc.strerror or exc}") from None


def _drain(path: Path, read: Callable[[int], bytes], limit: int,
           out: bytearray | None = None) -> bytearray:
    """Everything ``read`` yields, appended to ``out``, refused (rule ``file_size``) once it
    passes ``limit``."""
    out = bytearray() if out is None else out
    while chunk := read(CHUNK_BYTES):
        out += chunk
        if len(out) > limit:
            row = out.count(b"\n", 0, limit) + 1
            raise DataError.at(
                str(path), "file_size",
                f"the file expands to more than {limit:,} bytes (BOT4_MAX_FILE_BYTES) by row "
                f"{row}; split it, or raise BOT4_MAX_FILE_BYTES if the machine has the memory",
                row=row,
            )
    return out


def _gunzip(path: Path, stream, limit: int) -> bytearray:
    if os.fstat(stream.fileno()).st_size == 0:
        raise DataError.at(str(path), "non_empty", "the file is empty (0 bytes)")
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=stream) as unzipped:
            # read1, not read: read() drops the chunk it was filling when the stream breaks,
            # which would put the reported damage up to 1 MiB too early
            return _drain(path, unzipped.read1, limit, out)
    except (EOFError, OSError, zlib.error) as exc:
        complete = out.count(b"\n")
        raise DataError.at(
            str(path),
            "gzip_integrity",
            f"the gzip stream is truncated or corrupted ({exc}); "
            f"it holds {complete} complete row(s), the damage starts at row {complete + 1}",
            row=complete + 1,
        ) from None


def _unzip(path: Path, limit: int) -> tuple[bytearray, str]:
    _open(path).close()
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            csvs = [m for m in members if m.lower().endswith(".csv")]
            if len(csvs) != 1:
                raise DataError.at(
                    str(path), "zip_single_csv",
                    f"expected exactly one .csv inside the zip, found {members or 'nothing'}",
                )
            try:
                # streamed: the CRC is checked when the member ends, the size as it grows
                with archive.open(csvs[0]) as stream:
                    return _drain(path, stream.read, limit), Path(csvs[0]).name
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise DataError.at(str(path), "zip_integrity",
                                   f"member {csvs[0]} is damaged ({exc})") from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError.at(str(path), "zip_integrity",
                           f"not a readable zip archive (truncated or corrupted: {exc})") from None


def _looks_like_header(cells: list[str]) -> bool:
    """A header has at least one cell that is neither a number nor a boolean (headerless
    aggTrades rows end in ``true``/``false``)."""
    for cell in cells:
        if cell.strip().lower() in ("true", "false"):
            continue
        try:
            float(cell)
        except ValueError:
            return True
    return False


@dataclass(frozen=True)
class _Lines:
    """Where a CSV's records start: ``records`` holds the file line of every non-blank record."""

    records: np.ndarray
    first_cells: list[str]
    shifted: bool  # a blank line or a multi-line record before the last record
    multiline: bool  # some record spans lines (a line break inside a quoted cell)


def read_table(path: str | Path) -> RawTable:
    """Parse a data file into an Arrow table; a malformed row is reported by its line number."""
    path = Path(path)
    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            return _read_parquet(path)
        return _read_csv(path)
    except MemoryError:  # Arrow's too (ArrowMemoryError): the cap is above what this host holds
        raise DataError.at(str(path), "file_size",
                           f"the machine ran out of memory reading the file; set "
                           f"{MAX_FILE_BYTES_ENV} below {max_file_bytes():,} bytes, or split "
                           "the file") from None


def _read_csv(path: Path) -> RawTable:
    data, inner = read_bytes(path)
    if data.startswith(BOM):  # Excel and some exporters write one; it is not part of a cell
        del data[: len(BOM)]
    if data.startswith(UTF16_BOMS):
        raise DataError.at(str(path), "encoding", "the file is UTF-16 text; re-export it as UTF-8",
                           row=1)
    if not data.strip():
        raise DataError.at(str(path), "non_empty", "the file is empty")
    lines = _scan(str(path), data)
    has_header = _looks_like_header(lines.first_cells)
    header_line = int(lines.records[0]) if has_header else None
    if has_header:
        _check_header(str(path), lines.first_cells, header_line)
    read_options = pacsv.ReadOptions(
        autogenerate_column_names=not has_header, block_size=1 << 24
    )
    parse = pacsv.ParseOptions(newlines_in_values=lines.multiline)
    convert = pacsv.ConvertOptions(strings_can_be_null=False)
    try:
        table = pacsv.read_csv(pa.BufferReader(pa.py_buffer(data)), read_options=read_options,
                               parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        row, detail = _locate_bad_row(str(path), data, len(lines.first_cells), lines.records[0])
        raise DataError.at(str(path), "csv_structure", detail or str(exc), row=row) from None
    rows = lines.records[1:] if has_header else lines.records
    if table.num_rows == 0:
        raise DataError.at(str(path), "non_empty", "the file has a header but no data rows")
    if table.num_rows != len(rows):
        raise DataError.at(str(path), "csv_structure",
                           f"Arrow read {table.num_rows:,} rows where the file has {len(rows):,} "
                           "records (stray quote characters?)")
    return RawTable(str(path), inner, table, has_header, rows, lines.shifted, header_line)


def _check_header(path: str, cells: list[str], line: int) -> None:
    if any("\ufffd" in cell for cell in cells):
        raise DataError.at(path, "encoding", "the header is not UTF-8 text (a Latin-1 or "
                           "Windows-1252 export?); re-export the file as UTF-8", row=line)
    _check_unique(path, cells, line)


def _check_unique(path: str, names: list[str], line: int | None) -> None:
    """Two columns of one name (also after case and spaces) would leave one of them unread."""
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        key = name.strip().lower()
        if key in seen:
            raise DataError.at(path, "unique_columns",
                               f"column {name.strip()!r} appears twice in the header (columns "
                               f"{seen[key]} and {number}); which one holds the data is unknown",
                               row=line)
        seen[key] = number


def _read_parquet(path: Path) -> RawTable:
    _open(path).close()
    try:
        metadata = pq.ParquetFile(path).metadata
        size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        limit = max_file_bytes()
        if size > limit:
            raise DataError.at(str(path), "file_size",
                               f"the Parquet file expands to {size:,} bytes, more than "
                               f"{limit:,} (BOT4_MAX_FILE_BYTES); split it or raise the limit")
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError.at(str(path), "parquet_integrity", str(exc)) from None
    if table.num_rows == 0:
        raise DataError.at(str(path), "non_empty", "the Parquet file has no rows")
    _check_unique(str(path), table.column_names, None)
    return RawTable(str(path), path.name, table, True, np.arange(1, table.num_rows + 1))


# --------------------------------------------------------------------------------------------
# lines


def _scan(path: str, data: bytearray) -> _Lines:
    """The file line of every record. Without quotes or lone carriage returns (nearly every
    export), newline positions say it all; otherwise the csv module walks the records."""
    lone_cr = b"\r" in data and data.count(b"\r") != data.count(b"\r\n")
    if b'"' in data or lone_cr:
        return _scan_records(path, data)
    buf = np.frombuffer(data, dtype=np.uint8)
    stops = np.concatenate([np.flatnonzero(buf[i:i + SCAN_BYTES] == 10) + i
                            for i in range(0, len(buf), SCAN_BYTES)])
    if not len(stops) or stops[-1] != len(buf) - 1:  # a last line without a newline
        stops = np.append(stops, len(buf))
    length = np.diff(stops, prepend=-1) - 1  # bytes between the newlines
    length -= (length > 0) & (buf[np.maximum(stops - 1, 0)] == 13)  # the \r of \r\n
    long = np.flatnonzero(length > MAX_LINE_BYTES)
    if len(long):
        _too_long(path, int(long[0]) + 1, int(length[long[0]]))
    filled = np.flatnonzero(length > 0)
    start = int(stops[filled[0] - 1]) + 1 if filled[0] else 0
    first = bytes(data[start:start + int(length[filled[0]])])
    cells = next(csv.reader([first.decode("utf-8", "replace")]), [])
    return _Lines(filled + 1, cells, bool(filled[-1] + 1 > len(filled)), False)


def _scan_records(path: str, data: bytearray) -> _Lines:
    text = data.decode("utf-8", "replace")
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        if len(line.rstrip("\r\n")) > MAX_LINE_BYTES:
            _too_long(path, number, len(line.rstrip("\r\n").encode()))
    starts, first, multiline = [], None, False
    for start, end, cells in _records(path, text):
        starts.append(start)
        first = cells if first is None else first
        multiline = multiline or end > start
    records = np.asarray(starts, dtype=np.int64)
    shifted = bool(len(records)) and int(records[-1]) != int(records[0]) + len(records) - 1
    return _Lines(records, first or [], shifted, multiline)


def _records(path: str, text: str) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of every non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if cells:
                yield start, line, cells
    except csv.Error as exc:
        raise DataError.at(path, "csv_structure",
                           f"the record starting on this line cannot be read ({exc}): an "
                           "unclosed quote?", row=line + 1) from None


def _too_long(path: str, line: int, length: int) -> None:
    raise DataError.at(path, "line_length",
                       f"the line is {length:,} bytes long, more than the {MAX_LINE_BYTES:,} a "
                       "row of market data could need (a broken export, or not a CSV file)",
                       row=line)


def _locate_bad_row(path: str, data: bytearray, ncols: int, first: int) -> tuple[int | None, str]:
    """The slow path after Arrow refused a file: find the first row with the wrong cell count."""
    for start, _, cells in _records(path, data.decode("utf-8", "replace")):
        if len(cells) != ncols:
            return start, f"expected {ncols} cells as in row {first}, found {len(cells)}"
    return None, ""
