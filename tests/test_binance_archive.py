"""The Binance archive client against a loopback server serving zips built from real data."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from archive_builders import (
    AGGTRADES_DAY,
    KLINES_CORRUPTED,
    KLINES_DAY_US,
    KLINES_FEB_1,
    KLINES_MONTH,
    KLINES_WRONG_CHECKSUM,
    bars_of_day,
    build_tree,
    ftx_bars,
    klines_csv,
    klines_path,
    tardis_trades,
    write_zip,
)
from archive_server import ArchiveServer

from bot4_dagster.data.binance import (
    ArchiveFile,
    ArchiveFileMissing,
    BinanceArchive,
    DownloadProgress,
    archive_file,
    plan,
)
from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.sources import BinanceSource
from bot4_dagster.data.validation import prepare

TODAY = date(2022, 3, 10)  # every file of the tree is published by then


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    return build_tree(tmp_path_factory.mktemp("archive"))


@pytest.fixture
def server(tree):
    with ArchiveServer(tree) as running:
        yield running


@pytest.fixture
def archive(server, tmp_path) -> BinanceArchive:
    return BinanceArchive(base_url=server.url, cache_dir=tmp_path / "cache", backoff=0)


def one(archive: BinanceArchive, kind: str, cadence: str, day: date) -> ArchiveFile:
    return archive_file(kind, "BTCUSDT", cadence, day, market=archive.market,
                        base_url=archive.base_url)


def served_bytes(tree: Path, rel_path: str) -> bytes:
    return (tree / rel_path).read_bytes()


# --------------------------------------------------------------------------------------------
# plan


def test_plan_uses_monthly_zips_for_complete_past_months_and_daily_zips_for_the_rest():
    files = plan("klines", "btcusdt", date(2021, 11, 28), date(2022, 3, 1), today=date(2022, 2, 4))
    assert [(f.cadence, f.start, f.end) for f in files] == [
        ("daily", date(2021, 11, 28), date(2021, 11, 29)),
        ("daily", date(2021, 11, 29), date(2021, 11, 30)),
        ("daily", date(2021, 11, 30), date(2021, 12, 1)),
        ("monthly", date(2021, 12, 1), date(2022, 1, 1)),
        ("monthly", date(2022, 1, 1), date(2022, 2, 1)),
        ("daily", date(2022, 2, 1), date(2022, 2, 2)),
        ("daily", date(2022, 2, 2), date(2022, 2, 3)),
        ("daily", date(2022, 2, 3), date(2022, 2, 4)),
    ]
    assert files[3].url == ("https://data.binance.vision/data/spot/monthly/klines/BTCUSDT/1m/"
                            "BTCUSDT-1m-2021-12.zip")
    assert files[3].path == "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-12.zip"
    assert files[-1].url == ("https://data.binance.vision/data/spot/daily/klines/BTCUSDT/1m/"
                             "BTCUSDT-1m-2022-02-03.zip")
    assert files[-1].checksum_url == files[-1].url + ".CHECKSUM"


def test_plan_aggtrades_on_usdm_futures_and_a_custom_base_url():
    files = plan("aggTrades", "BTCUSDT", date(2020, 2, 22), date(2020, 2, 23), market="um",
                 base_url="http://mirror.example/binance/", today=TODAY)
    assert [f.url for f in files] == [
        "http://mirror.example/binance/data/futures/um/daily/aggTrades/BTCUSDT/"
        + "BTCUSDT-aggTrades-2020-02-22.zip"
    ]
    assert files[0].path == AGGTRADES_DAY


def test_plan_never_reaches_today_and_a_month_ending_today_is_monthly():
    assert plan("klines", "BTCUSDT", date(2022, 3, 10), date(2022, 4, 1), today=TODAY) == []
    assert plan("klines", "BTCUSDT", date(2022, 3, 5), date(2022, 3, 5), today=TODAY) == []
    files = plan("klines", "BTCUSDT", date(2022, 1, 1), date(2022, 3, 1), today=date(2022, 2, 1))
    assert [(f.cadence, f.start) for f in files] == [("monthly", date(2022, 1, 1))]


def test_plan_takes_datetimes_as_their_utc_days():
    start = datetime(2022, 1, 30, 12, tzinfo=UTC)
    end = datetime(2022, 2, 1, 6, tzinfo=UTC)
    files = plan("klines", "BTCUSDT", start, end, today=TODAY)
    assert [f.start for f in files] == [date(2022, 1, 30), date(2022, 1, 31), date(2022, 2, 1)]


def test_plan_rejects_unknown_kinds_and_markets():
    with pytest.raises(ValueError, match="kind"):
        plan("trades", "BTCUSDT", date(2022, 1, 1), date(2022, 1, 2), today=TODAY)
    with pytest.raises(ValueError, match="market"):
        BinanceArchive(cache_dir=Path("unused"), market="cm")


# --------------------------------------------------------------------------------------------
# fetch: verification, cache, resume


def test_fetch_verifies_caches_and_mirrors_the_url_path(archive, server, tree):
    [month] = archive.plan("klines", "BTCUSDT", date(2022, 1, 1), date(2022, 2, 1), today=TODAY)
    path = archive.fetch(month)
    assert path == archive.cache_dir / KLINES_MONTH
    assert path.read_bytes() == served_bytes(tree, KLINES_MONTH)
    assert path.with_name(path.name + ".CHECKSUM").is_file()
    assert len(server.requests) == 2  # the .CHECKSUM and the zip
    assert archive.fetch(month) == path
    assert len(server.requests) == 2  # served from the cache


def test_a_cached_zip_that_no_longer_matches_is_downloaded_again(archive, server, tree):
    file = one(archive, "klines", "daily", date(2022, 2, 1))
    path = archive.fetch(file)
    path.write_bytes(b"damaged on disk")
    assert archive.fetch(file).read_bytes() == served_bytes(tree, KLINES_FEB_1)
    assert len(server.requested(KLINES_FEB_1)) == 2


def test_a_cut_connection_is_resumed_with_a_range_request(archive, server, tree):
    server.cut(KLINES_MONTH, after=100_000)
    path = archive.fetch(one(archive, "klines", "monthly", date(2022, 1, 1)))
    assert path.read_bytes() == served_bytes(tree, KLINES_MONTH)
    log = server.requested(KLINES_MONTH)
    assert [(r.range, r.status) for r in log] == [(None, 200), ("bytes=100000-", 206)]
    assert not path.with_name(path.name + ".part").exists()


def test_a_part_left_by_an_earlier_run_is_resumed(archive, server, tree):
    data = served_bytes(tree, KLINES_MONTH)
    part = archive.cache_dir / (KLINES_MONTH + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:12_345])
    path = archive.fetch(one(archive, "klines", "monthly", date(2022, 1, 1)))
    assert path.read_bytes() == data
    assert [r.range for r in server.requested(KLINES_MONTH)] == ["bytes=12345-"]


def test_a_complete_part_is_verified_without_downloading_again(archive, server, tree):
    data = served_bytes(tree, KLINES_FEB_1)
    part = archive.cache_dir / (KLINES_FEB_1 + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    assert archive.fetch(one(archive, "klines", "daily", date(2022, 2, 1))).read_bytes() == data
    assert [r.status for r in server.requested(KLINES_FEB_1)] == [416]


def test_a_server_ignoring_ranges_restarts_from_zero(archive, server, tree):
    data = served_bytes(tree, KLINES_MONTH)
    server.ranges = False
    server.cut(KLINES_MONTH, after=50_000)
    path = archive.fetch(one(archive, "klines", "monthly", date(2022, 1, 1)))
    assert path.read_bytes() == data
    assert [r.status for r in server.requested(KLINES_MONTH)] == [200, 200]


def test_a_server_error_is_retried(archive, server, tree):
    server.fail(KLINES_FEB_1, 503)
    path = archive.fetch(one(archive, "klines", "daily", date(2022, 2, 1)))
    assert path.read_bytes() == served_bytes(tree, KLINES_FEB_1)
    assert [r.status for r in server.requested(KLINES_FEB_1)] == [503, 200]


def test_running_out_of_retries_names_the_url_and_the_base_url_setting(archive, server):
    server.cut(KLINES_MONTH, after=10_000, times=10)
    file = one(archive, "klines", "monthly", date(2022, 1, 1))
    with pytest.raises(ConnectionError, match=r"--base-url \(BOT4_BINANCE_URL\)") as raised:
        archive.fetch(file)
    assert file.url in str(raised.value)
    assert len(server.requested(KLINES_MONTH)) == archive.retries + 1
    assert (archive.cache_dir / (KLINES_MONTH + ".part")).stat().st_size == 40_000  # kept


def test_an_unreachable_server_raises_connection_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    archive = BinanceArchive(base_url=f"http://127.0.0.1:{port}", cache_dir=tmp_path,
                             retries=1, backoff=0, timeout=5)
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}.*--base-url"):
        archive.fetch(one(archive, "klines", "daily", date(2022, 2, 1)))


def test_a_wrong_checksum_raises_and_leaves_nothing_in_the_cache(archive):
    file = one(archive, "klines", "daily", date(2022, 1, 17))
    with pytest.raises(DataError) as raised:
        archive.fetch(file)
    assert raised.value.first.rule == "checksum"
    assert raised.value.first.file == file.url
    folder = (archive.cache_dir / KLINES_WRONG_CHECKSUM).parent
    assert not [p.name for p in folder.iterdir()]


def test_a_malformed_checksum_file_is_a_checksum_error(tmp_path):
    zip_path = write_zip(tmp_path / "tree", KLINES_FEB_1, b"1,2,3\n")
    zip_path.with_name(zip_path.name + ".CHECKSUM").write_text("<html>not found</html>")
    with ArchiveServer(tmp_path / "tree") as server:
        archive = BinanceArchive(base_url=server.url, cache_dir=tmp_path / "cache")
        with pytest.raises(DataError, match="sha256 hex") as raised:
            archive.fetch(one(archive, "klines", "daily", date(2022, 2, 1)))
    assert raised.value.first.rule == "checksum"
    assert not (tmp_path / "cache" / KLINES_FEB_1).exists()


def test_a_corrupted_zip_with_a_matching_checksum_fails_when_parsed(archive, tree):
    path = archive.fetch(one(archive, "klines", "daily", date(2022, 1, 16)))
    assert path.read_bytes() == served_bytes(tree, KLINES_CORRUPTED)
    with pytest.raises(DataError) as raised:
        parse_file(path)
    assert raised.value.first.rule == "zip_integrity"


def test_a_missing_file_raises_archive_file_missing(archive):
    file = one(archive, "klines", "daily", date(2022, 1, 18))
    with pytest.raises(ArchiveFileMissing) as raised:
        archive.fetch(file)
    assert isinstance(raised.value, LookupError)
    assert raised.value.url == file.url


def test_fetch_uses_the_archives_base_url_and_market(archive, tree):
    [file] = plan("aggTrades", "BTCUSDT", date(2020, 2, 22), date(2020, 2, 23), today=TODAY)
    futures = BinanceArchive(base_url=archive.base_url, market="um", cache_dir=archive.cache_dir,
                             backoff=0)
    assert futures.fetch(file).read_bytes() == served_bytes(tree, AGGTRADES_DAY)


# --------------------------------------------------------------------------------------------
# fetch_all and progress


def test_fetch_all_falls_back_from_a_missing_month_to_its_published_days(archive, server, caplog):
    files = archive.plan("klines", "BTCUSDT", date(2022, 1, 1), date(2022, 3, 1), today=TODAY)
    assert [f.cadence for f in files] == ["monthly", "monthly"]
    with caplog.at_level(logging.WARNING, logger="bot4_dagster.data.binance"):
        paths = archive.fetch_all(files)
    assert paths == [archive.cache_dir / KLINES_MONTH, archive.cache_dir / KLINES_FEB_1]
    assert "BTCUSDT-1m-2022-02.zip is not published" in caplog.text
    assert "skipping" in caplog.text and "BTCUSDT-1m-2022-02-28.zip" in caplog.text


def test_progress_ends_with_a_complete_event_per_file(server, tree, tmp_path):
    events: list[DownloadProgress] = []
    archive = BinanceArchive(base_url=server.url, cache_dir=tmp_path, progress=events.append)
    files = archive.plan("klines", "BTCUSDT", date(2022, 1, 1), date(2022, 2, 2), today=TODAY)
    archive.fetch_all(files)
    month, day = served_bytes(tree, KLINES_MONTH), served_bytes(tree, KLINES_FEB_1)
    finals = [e for e in events if e.done == e.total]
    assert finals == [
        DownloadProgress("BTCUSDT-1m-2022-01.zip", len(month), len(month), 1, 2),
        DownloadProgress("BTCUSDT-1m-2022-02-01.zip", len(day), len(day), 2, 2),
    ]
    assert events[-1] == finals[-1]
    assert all(e.done <= len(month) and e.total == len(month) for e in events[:-1]
               if e.name == "BTCUSDT-1m-2022-01.zip")
    assert "BTCUSDT-1m-2022-02-01.zip" in str(events[-1])


# --------------------------------------------------------------------------------------------
# what was fetched parses as the data it was built from


def test_fetched_klines_parse_to_the_ftx_bars(archive):
    path = archive.fetch(one(archive, "klines", "monthly", date(2022, 1, 1)))
    parsed = parse_file(path)
    bars = ftx_bars()
    assert parsed.format == "binance_klines"
    assert parsed.symbols == ["BTCUSDT"]
    assert parsed.ts_unit == "ms"
    assert len(parsed.frame) == len(bars) == 45_031
    np.testing.assert_array_equal(parsed.frame["close"].to_numpy(), bars["close"].to_numpy())
    assert (parsed.frame["ts"].reset_index(drop=True) == bars["ts"]).all()
    assert (parsed.frame["buy_volume"] <= parsed.frame["volume"]).all()


def test_microsecond_klines_give_the_same_ts_as_millisecond_klines(archive):
    monthly = parse_file(archive.fetch(one(archive, "klines", "monthly", date(2022, 1, 1))))
    path = archive.fetch(one(archive, "klines", "daily", date(2022, 1, 15)))
    assert path == archive.cache_dir / KLINES_DAY_US
    daily = parse_file(path)
    assert (monthly.ts_unit, daily.ts_unit) == ("ms", "us")
    same_day = monthly.frame[monthly.frame["ts"].dt.date == date(2022, 1, 15)]
    assert len(daily.frame) == 1440
    assert (daily.frame["ts"].to_numpy() == same_day["ts"].to_numpy()).all()
    np.testing.assert_array_equal(daily.frame["close"].to_numpy(), same_day["close"].to_numpy())
    assert len(daily.frame) == len(bars_of_day(ftx_bars(), date(2022, 1, 15)))


def test_fetched_aggtrades_parse_to_the_tardis_trades(tree, server, tmp_path):
    archive = BinanceArchive(base_url=server.url, market="um", cache_dir=tmp_path, backoff=0)
    [file] = archive.plan("aggTrades", "BTCUSDT", date(2020, 2, 22), date(2020, 2, 23), today=TODAY)
    parsed = parse_file(archive.fetch(file))
    trades = tardis_trades()
    assert parsed.format == "binance_aggtrades"
    assert parsed.symbols == ["BTCUSDT"]
    assert len(parsed.frame) == len(trades) == 9_999
    np.testing.assert_array_equal(parsed.frame["side"].to_numpy(),
                                  np.where(trades["side"] == "buy", 1, -1))
    np.testing.assert_array_equal(parsed.frame["trade_id"].to_numpy(), trades["id"].to_numpy())


def test_a_kline_zip_whose_csv_starts_with_a_bom(tmp_path):
    """A re-packed archive may put a UTF-8 BOM before the headerless klines: the first row is
    still data (not a header), read from row 1, through the same source the ingest uses."""
    day = date(2022, 1, 20)
    bars = bars_of_day(ftx_bars(), day)
    write_zip(tmp_path / "tree", klines_path("daily", day.isoformat()),
              b"\xef\xbb\xbf" + klines_csv(bars))
    with ArchiveServer(tmp_path / "tree") as server:
        source = BinanceSource(["BTCUSDT"], "2022-01-20", "2022-01-21", base_url=server.url,
                               cache_dir=tmp_path / "cache")
        loaded = source.load("bars", "BTCUSDT", pd.Timestamp("2022-01-20", tz="UTC"),
                             pd.Timestamp("2022-01-21", tz="UTC"))
    frame, report = prepare(loaded.frame, "bars")
    report.raise_for_errors()
    assert len(frame) == len(bars) == 1_440
    assert (frame["ts"].to_numpy() == bars["ts"].to_numpy()).all()
    np.testing.assert_array_equal(frame["close"].to_numpy(), bars["close"].to_numpy())
    assert frame["_source_row"].iloc[0] == 1
