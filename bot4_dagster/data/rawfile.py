"""Opening a user's file: plain, gzip or zip CSV, or Parquet, with damage reported by file and row.

Rows are counted as an editor or a spreadsheet shows them: the file's lines, header included,
starting at 1. A truncated gzip is reported with the last complete row it still holds.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import DataError

SUFFIXES = (".csv", ".csv.gz", ".gz", ".zip", ".parquet", ".pq")


@dataclass(frozen=True)
class RawTable:
    """A file's cells, before any meaning is given to them."""

    path: str
    inner_name: str  # the CSV's own name (inside a zip), used to read a symbol from it
    table: pa.Table
    has_header: bool
    first_row: int  # the file row of the table's first data row (2 with a header, else 1)


def is_data_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and name.endswith(SUFFIXES)


def read_bytes(path: str | Path) -> tuple[bytes, str]:
    """Decompressed CSV bytes and the CSV's own name."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".zip"):
        return _unzip(path)
    data = path.read_bytes()
    if name.endswith(".gz"):
        return _gunzip(path, data), path.name[: -len(".gz")]
    return data, path.name


def _gunzip(path: Path, data: bytes) -> bytes:
    if not data:
        raise DataError.at(str(path), "non_empty", "the file is empty (0 bytes)")
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            # read1, not read: read() drops the chunk it was filling when the stream breaks,
            # which would put the reported damage up to 1 MiB too early
            while chunk := stream.read1(1 << 20):
                out.write(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        complete = out.getvalue().count(b"\n")
        raise DataError.at(
            str(path),
            "gzip_integrity",
            f"the gzip stream is truncated or corrupted ({exc}); "
            f"it holds {complete} complete row(s), the damage starts at row {complete + 1}",
            row=complete + 1,
        ) from None
    return out.getvalue()


def _unzip(path: Path) -> tuple[bytes, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            csvs = [m for m in members if m.lower().endswith(".csv")]
            if len(csvs) != 1:
                raise DataError.at(
                    str(path), "zip_single_csv",
                    f"expected exactly one .csv inside the zip, found {members or 'nothing'}",
                )
            bad = archive.testzip()
            if bad is not None:
                raise DataError.at(str(path), "zip_integrity", f"member {bad} fails its CRC check")
            return archive.read(csvs[0]), Path(csvs[0]).name
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError.at(
            str(path), "zip_integrity", f"not a readable zip archive (truncated or corrupted: {exc})"
        ) from None


def _looks_like_header(first_line: bytes) -> bool:
    """A header has at least one cell that is neither a number nor a boolean (headerless
    aggTrades rows end in ``true``/``false``)."""
    cells = next(csv.reader([first_line.decode("utf-8", "replace")]), [])
    for cell in cells:
        if cell.strip().lower() in ("true", "false"):
            continue
        try:
            float(cell)
        except ValueError:
            return True
    return False


def read_table(path: str | Path) -> RawTable:
    """Parse a data file into an Arrow table; a malformed row is reported by its row number."""
    path = Path(path)
    if path.name.lower().endswith((".parquet", ".pq")):
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError.at(str(path), "parquet_integrity", str(exc)) from None
        if table.num_rows == 0:
            raise DataError.at(str(path), "non_empty", "the Parquet file has no rows")
        return RawTable(str(path), path.name, table, True, 1)

    data, inner = read_bytes(path)
    if not data.strip():
        raise DataError.at(str(path), "non_empty", "the file is empty")
    first_line = data.split(b"\n", 1)[0].rstrip(b"\r")
    has_header = _looks_like_header(first_line)
    ncols = len(next(csv.reader([first_line.decode("utf-8", "replace")])))
    read_options = pacsv.ReadOptions(
        autogenerate_column_names=not has_header, block_size=1 << 24
    )
    convert = pacsv.ConvertOptions(strings_can_be_null=False)
    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=read_options, convert_options=convert)
    except pa.ArrowInvalid as exc:
        row, detail = _locate_bad_row(data, ncols)
        raise DataError.at(str(path), "csv_structure", detail or str(exc), row=row) from None
    if table.num_rows == 0:
        raise DataError.at(str(path), "non_empty", "the file has a header but no data rows")
    return RawTable(str(path), inner, table, has_header, 2 if has_header else 1)


def _locate_bad_row(data: bytes, ncols: int) -> tuple[int | None, str]:
    """The slow path after Arrow refused a file: find the first row with the wrong cell count."""
    text = io.StringIO(data.decode("utf-8", "replace"))
    for number, cells in enumerate(csv.reader(text), start=1):
        if cells and len(cells) != ncols:
            return number, f"expected {ncols} cells as in row 1, found {len(cells)}"
    return None, ""
