"""Binance's public data archive (data.binance.vision): which zips cover a date range, and a
download cache that resumes interrupted transfers and verifies every zip against the sha256 that
Binance publishes beside it, so a truncated or tampered download never reaches the parsers.

Layout (``{base}/{market path}/{cadence}/...``)::

    klines     .../klines/{SYMBOL}/{interval}/{SYMBOL}-{interval}-{YYYY-MM | YYYY-MM-DD}.zip
    aggTrades  .../aggTrades/{SYMBOL}/{SYMBOL}-aggTrades-{YYYY-MM | YYYY-MM-DD}.zip

Each zip has a sibling ``<zip>.CHECKSUM`` holding ``<sha256 hex>  <zip name>``.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

from .errors import DataError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://data.binance.vision"
MARKETS = {"spot": "data/spot", "um": "data/futures/um"}
KINDS = ("klines", "aggTrades")
CADENCES = ("monthly", "daily")
USER_AGENT = "bot4_dagster (+https://data.binance.vision)"
CHUNK_BYTES = 1 << 16
PROGRESS_BYTES = 1 << 20
PROGRESS_SECONDS = 0.5
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")
# Network failures worth another attempt; local disk errors (plain OSError) are not among them.
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class ArchiveFileMissing(LookupError):
    """The archive has no such file (HTTP 404): not published yet, or no data for that period.

    Callers catch this to fall back (a monthly zip to its daily zips) or to skip a day.
    """

    def __init__(self, url: str):
        self.url = url
        super().__init__(f"{url} is not in the Binance archive (HTTP 404)")


@dataclass(frozen=True)
class ArchiveFile:
    """One zip of the archive and the UTC days [start, end) it covers."""

    url: str
    path: str  # below the base URL; also where the zip lives below the cache directory
    start: date
    end: date  # exclusive
    cadence: str  # "monthly" | "daily"
    kind: str  # "klines" | "aggTrades"
    symbol: str
    market: str = "spot"
    interval: str | None = "1m"  # klines only

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def checksum_url(self) -> str:
        return self.url + ".CHECKSUM"

    @property
    def base_url(self) -> str:
        return self.url[: -len(self.path)].rstrip("/")


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download stands; the last event of a file has ``done == total``."""

    name: str
    done: int
    total: int | None
    index: int | None = None  # 1-based position when fetching many files
    count: int | None = None

    def __str__(self) -> str:
        of = f" of {self.total / 2**20:.1f}" if self.total is not None else ""
        where = f" [{self.index}/{self.count}]" if self.index is not None else ""
        return f"{self.name}: {self.done / 2**20:.1f}{of} MiB{where}"


ProgressCallback = Callable[[DownloadProgress], None]


# --------------------------------------------------------------------------------------------
# planning


def archive_file(
    kind: str,
    symbol: str,
    cadence: str,
    start: date,
    *,
    market: str = "spot",
    interval: str = "1m",
    base_url: str = DEFAULT_BASE_URL,
) -> ArchiveFile:
    """The zip of ``kind`` for the month (``cadence="monthly"``) or day that holds ``start``."""
    _check_choice("kind", kind, KINDS)
    _check_choice("cadence", cadence, CADENCES)
    _check_choice("market (--market, BOT4_MARKET)", market, tuple(MARKETS))
    symbol = symbol.upper()
    if cadence == "monthly":
        start = start.replace(day=1)
        end, stamp = _next_month(start), f"{start:%Y-%m}"
    else:
        end, stamp = start + timedelta(days=1), start.isoformat()
    if kind == "klines":
        folder, name = f"klines/{symbol}/{interval}", f"{symbol}-{interval}-{stamp}.zip"
    else:
        folder, name = f"aggTrades/{symbol}", f"{symbol}-aggTrades-{stamp}.zip"
    path = f"{MARKETS[market]}/{cadence}/{folder}/{name}"
    return ArchiveFile(f"{base_url.rstrip('/')}/{path}", path, start, end, cadence, kind, symbol,
                       market, interval if kind == "klines" else None)


def plan(
    kind: str,
    symbol: str,
    start: date,
    end: date,
    *,
    today: date | None = None,
    market: str = "spot",
    interval: str = "1m",
    base_url: str = DEFAULT_BASE_URL,
) -> list[ArchiveFile]:
    """The zips covering the UTC days [start, end), oldest first.

    A whole month that ended before ``today``'s month is one monthly zip (one request instead of
    ~30); partial months at the edges and the current month use daily zips. Days from ``today``
    on are left out: Binance publishes a day's zip only after the day is over.
    """
    today = today or datetime.now(UTC).date()
    start, end = _day(start), _day(end, ceil=True)
    stop, this_month = min(end, today), today.replace(day=1)
    where = {"market": market, "interval": interval, "base_url": base_url}
    files: list[ArchiveFile] = []
    month = start.replace(day=1)
    while month < stop:
        following = _next_month(month)
        if start <= month and following <= end and following <= this_month:
            files.append(archive_file(kind, symbol, "monthly", month, **where))
        else:
            days = _days(max(start, month), min(stop, following))
            files.extend(archive_file(kind, symbol, "daily", d, **where) for d in days)
        month = following
    return files


def daily_files(file: ArchiveFile) -> list[ArchiveFile]:
    """The daily zips of a monthly zip's days, for when the monthly one is not (yet) published."""
    return [
        archive_file(file.kind, file.symbol, "daily", day, market=file.market,
                     interval=file.interval or "1m", base_url=file.base_url)
        for day in _days(file.start, file.end)
    ]


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _day(value: date, *, ceil: bool = False) -> date:
    """A date, or the UTC day of a datetime (rounded up for an exclusive end inside a day)."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    day = value.date()
    return day + timedelta(days=1) if ceil and value.time() != clock() else day


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days)]


# --------------------------------------------------------------------------------------------
# downloading


class BinanceArchive:
    """Fetches archive zips into ``cache_dir`` (mirroring the URL paths), verified by sha256.

    ``base_url`` and ``market`` say where files come from: ``fetch`` downloads a planned file
    from this archive's base URL and market, whatever base and market it was planned with.
    ``retries`` is the number of further attempts after a network failure; each resumes the
    partial download. ``backoff`` seconds times the attempt number are waited in between.
    """

    def __init__(
        self,
        *,
        cache_dir: str | Path,
        base_url: str = DEFAULT_BASE_URL,
        market: str = "spot",
        progress: ProgressCallback | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
    ):
        _check_choice("market (--market, BOT4_MARKET)", market, tuple(MARKETS))
        self.cache_dir = Path(cache_dir)
        self.base_url = base_url.rstrip("/")
        self.market = market
        self.progress = progress
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff

    def plan(self, kind: str, symbol: str, start: date, end: date, *,
             today: date | None = None, interval: str = "1m") -> list[ArchiveFile]:
        """``plan()`` at this archive's base URL and market."""
        return plan(kind, symbol, start, end, today=today, market=self.market,
                    interval=interval, base_url=self.base_url)

    def locate(self, file: ArchiveFile) -> ArchiveFile:
        """The same zip at this archive's base URL and market."""
        return archive_file(file.kind, file.symbol, file.cadence, file.start, market=self.market,
                            interval=file.interval or "1m", base_url=self.base_url)

    def cache_path(self, file: ArchiveFile) -> Path:
        return self.cache_dir / self.locate(file).path

    def fetch(self, file: ArchiveFile, *, index: int | None = None,
              count: int | None = None) -> Path:
        """The path of the verified zip, downloaded unless a verified copy is already cached.

        Raises ``ArchiveFileMissing`` on HTTP 404, ``DataError`` (rule ``checksum``) when the
        download does not match its .CHECKSUM, ``ConnectionError`` when retries run out.
        """
        file = self.locate(file)
        target = self.cache_dir / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        locks = self.cache_dir / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / (file.path.replace("/", "__") + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs share the cache: one writer per zip
            try:
                reporter = _Reporter(self.progress, file.name, index, count)
                return self._fetch_locked(file, target, reporter)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _fetch_locked(self, file: ArchiveFile, target: Path, report: _Reporter) -> Path:
        if self._cached(target):
            report.finish(target.stat().st_size)
            return target
        expected, checksum_text = self._checksum(file)
        part = target.with_name(target.name + ".part")
        self._retrying(file.url, lambda: self._download(file.url, part, report))
        actual = _sha256(part)
        if actual != expected:
            part.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
            raise DataError.at(file.url, "checksum", f"sha256 of the download is {actual}, "
                               f"the .CHECKSUM says {expected}")
        _write_atomic(_checksum_path(target), checksum_text)
        os.replace(part, target)
        log.info("fetched %s (%d bytes, sha256 verified)", file.url, target.stat().st_size)
        report.finish(target.stat().st_size)
        return target

    def fetch_all(self, files: Iterable[ArchiveFile]) -> list[Path]:
        """Fetch one after another; a missing monthly zip is replaced by its daily zips and a
        missing daily zip is skipped with a warning (a day not yet published, or without data)."""
        queue = list(files)
        paths: list[Path] = []
        position = 0
        while position < len(queue):
            file = queue[position]
            position += 1
            try:
                paths.append(self.fetch(file, index=position, count=len(queue)))
            except ArchiveFileMissing as missing:
                if file.cadence == "monthly":
                    log.warning("%s is not published (yet); fetching its daily files instead",
                                missing.url)
                    queue[position:position] = daily_files(self.locate(file))
                else:
                    log.warning("skipping %s: not in the archive (not published yet, or no "
                                "data that day)", missing.url)
        return paths

    def _cached(self, target: Path) -> bool:
        """A cached zip counts only if it still matches the checksum it was verified with."""
        checksum = _checksum_path(target)
        if not (target.is_file() and checksum.is_file()):
            return False
        try:
            expected = _parse_checksum(checksum.read_text(), str(checksum))
        except DataError:
            expected = None
        if expected == _sha256(target):
            return True
        log.warning("cached %s no longer matches its .CHECKSUM; downloading it again", target)
        target.unlink()
        checksum.unlink()
        return False

    def _checksum(self, file: ArchiveFile) -> tuple[str, str]:
        """The expected sha256 and the .CHECKSUM text it came from."""
        url = file.checksum_url
        try:
            text = self._retrying(url, lambda: self._get(url)).decode("utf-8", "replace")
        except ArchiveFileMissing:
            raise ArchiveFileMissing(file.url) from None  # no checksum: the zip is not published
        return _parse_checksum(text, url), text

    def _get(self, url: str) -> bytes:
        with self._open(url) as response:
            return response.read()

    def _open(self, url: str, headers: dict[str, str] | None = None):
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
        return urllib.request.urlopen(request, timeout=self.timeout)

    def _download(self, url: str, part: Path, report: _Reporter) -> None:
        """One attempt: append to ``part`` from where it stops (or restart if the server
        ignores the range); an early end of the stream raises to trigger another attempt."""
        offset = part.stat().st_size if part.exists() else 0
        try:
            response = self._open(url, {"Range": f"bytes={offset}-"} if offset else None)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            _, total = _content_range(exc.headers.get("Content-Range"))
            exc.close()
            if total == offset:  # the part is already complete
                return
            part.unlink()
            return self._download(url, part, report)
        with response:
            if response.status == 206:
                first, total = _content_range(response.headers.get("Content-Range"))
                if first != offset:
                    part.unlink()
                    raise http.client.HTTPException(
                        f"the server sent bytes from {first}, not the {offset} asked for")
            else:
                offset, total = 0, _int_or_none(response.headers.get("Content-Length"))
            done = _copy(response, part, offset, total, report)
        if total is not None and done < total:
            raise http.client.IncompleteRead(b"", total - done)

    def _retrying(self, url: str, attempt: Callable):
        """Run ``attempt`` until it succeeds, a 404 or client error ends it, or retries run out."""
        failure = ""
        for number in range(1, self.retries + 2):
            try:
                return attempt()
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code == 404:
                    raise ArchiveFileMissing(url) from None
                failure = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500 and exc.code != 429:
                    break
            except _TRANSIENT as exc:
                failure = f"{type(exc).__name__}: {exc}"
            if number <= self.retries:
                log.warning("download of %s failed (%s); attempt %d of %d", url, failure,
                            number + 1, self.retries + 1)
                time.sleep(self.backoff * number)
        raise ConnectionError(
            f"could not download {url} ({failure}) after {number} attempt(s). The archive's base "
            f"URL is {self.base_url}: set --base-url (BOT4_BINANCE_URL) to a reachable mirror, "
            "or check the network and run again to resume."
        )


class _Reporter:
    """Calls the progress callback at most every 0.5 s or 1 MiB, and once at completion."""

    def __init__(self, callback: ProgressCallback | None, name: str,
                 index: int | None, count: int | None):
        self.callback, self.name, self.index, self.count = callback, name, index, count
        self.last_time, self.last_done = time.monotonic(), 0

    def update(self, done: int, total: int | None) -> None:
        if self.callback is None or done == total:
            return
        now = time.monotonic()
        if now - self.last_time >= PROGRESS_SECONDS or done - self.last_done >= PROGRESS_BYTES:
            self.last_time, self.last_done = now, done
            self._emit(done, total)

    def finish(self, size: int) -> None:
        if self.callback is not None:
            self._emit(size, size)

    def _emit(self, done: int, total: int | None) -> None:
        self.callback(DownloadProgress(self.name, done, total, self.index, self.count))


def _copy(response, part: Path, offset: int, total: int | None, report: _Reporter) -> int:
    """Stream the body into ``part`` (appending after ``offset`` bytes); returns its size."""
    done = offset
    with part.open("ab" if offset else "wb") as out:
        while chunk := response.read(CHUNK_BYTES):
            out.write(chunk)
            done += len(chunk)
            report.update(done, total)
    return done


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range`` header; None where it does not say."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        return None, None
    return _int_or_none(match[1]), _int_or_none(match[2])


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _parse_checksum(text: str, source: str) -> str:
    words = text.split()
    if not words or not _SHA256.fullmatch(words[0]):
        raise DataError.at(source, "checksum",
                           f"expected '<sha256 hex>  <file name>', found {text[:100]!r}")
    return words[0].lower()


def _checksum_path(target: Path) -> Path:
    return target.with_name(target.name + ".CHECKSUM")


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
