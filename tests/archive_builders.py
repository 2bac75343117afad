"""Binance-archive zips built at test time from the real data in ../shared/data, laid out as on
data.binance.vision, so the archive client and the ``binance`` source are tested on real prices.

The paths are written out here independently of ``bot4_dagster.data.binance`` so that tests
check the client's URL layout instead of repeating it.
"""

from __future__ import annotations

import hashlib
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FTX_BARS = SHARED_DATA / "ftx_btc-perp_1m_2022-01.csv.gz"
TARDIS_TRADES = SHARED_DATA / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
SYMBOL = "BTCUSDT"
ZIP_TIME = (2022, 2, 1, 0, 0, 0)  # fixed member time: the same input gives the same zip bytes

# The tree that build_tree() writes, by role.
KLINES_MONTH = "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2022-01.zip"
KLINES_DAY_US = "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2022-01-15.zip"
KLINES_FEB_1 = "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2022-02-01.zip"
KLINES_CORRUPTED = "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2022-01-16.zip"
KLINES_WRONG_CHECKSUM = "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2022-01-17.zip"
AGGTRADES_DAY = "data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2020-02-22.zip"


def klines_path(cadence: str, stamp: str, market: str = "spot", symbol: str = SYMBOL) -> str:
    """``stamp`` is YYYY-MM (monthly) or YYYY-MM-DD (daily)."""
    root = {"spot": "data/spot", "um": "data/futures/um"}[market]
    return f"{root}/{cadence}/klines/{symbol}/1m/{symbol}-1m-{stamp}.zip"


def ftx_bars() -> pd.DataFrame:
    """FTX BTC-PERP 1-minute bars: ts (UTC), open, high, low, close, volume (quote currency)."""
    bars = pd.read_csv(FTX_BARS)
    bars.insert(0, "ts", pd.to_datetime(bars.pop("timestamp"), utc=True))
    return bars


def tardis_trades() -> pd.DataFrame:
    return pd.read_csv(TARDIS_TRADES)


def klines_csv(bars: pd.DataFrame, *, time_unit: str = "ms") -> bytes:
    """Binance's 12-column headerless kline CSV; open times in ms, or µs as spot uses since 2025."""
    per_ms = {"ms": 1, "us": 1000}[time_unit]
    open_time = bars["ts"].astype("datetime64[ms, UTC]").astype("int64").to_numpy() * per_ms
    volume = bars["volume"].to_numpy() / bars["close"].to_numpy()
    taker_share = np.where(bars["close"] >= bars["open"], 0.6, 0.4)
    frame = pd.DataFrame({
        "open_time": open_time,
        "open": bars["open"], "high": bars["high"], "low": bars["low"], "close": bars["close"],
        "volume": volume,
        "close_time": open_time + 60_000 * per_ms - 1,
        "quote_volume": bars["volume"],
        "count": (bars["volume"] // 2_500 + 1).astype("int64"),
        "taker_buy_volume": volume * taker_share,
        "taker_buy_quote_volume": bars["volume"].to_numpy() * taker_share,
        "ignore": 0,
    })
    return frame.to_csv(header=False, index=False, lineterminator="\n").encode()


def aggtrades_csv(trades: pd.DataFrame) -> bytes:
    """USD-M futures aggTrades CSV (with its header), one aggregate per Tardis trade."""
    frame = pd.DataFrame({
        "agg_trade_id": trades["id"],
        "price": trades["price"],
        "quantity": trades["amount"],
        "first_trade_id": trades["id"],
        "last_trade_id": trades["id"],
        "transact_time": trades["timestamp"] // 1000,
        "is_buyer_maker": np.where(trades["side"] == "sell", "true", "false"),
    })
    return frame.to_csv(index=False, lineterminator="\n").encode()


def write_zip(root: Path, rel_path: str, csv_bytes: bytes) -> Path:
    """A zip holding one CSV named like the zip, plus its correct .CHECKSUM."""
    target = Path(root) / rel_path
    target.parent.mkdir(parents=True, exist_ok=True)
    member = zipfile.ZipInfo(target.name[: -len(".zip")] + ".csv", date_time=ZIP_TIME)
    member.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(member, csv_bytes)
    write_checksum(target)
    return target


def write_checksum(zip_path: Path, digest: str | None = None) -> Path:
    """Binance's ``<sha256>  <name>`` line; ``digest`` overrides the true one (a wrong checksum)."""
    digest = digest or hashlib.sha256(zip_path.read_bytes()).hexdigest()
    checksum = zip_path.with_name(zip_path.name + ".CHECKSUM")
    checksum.write_text(f"{digest}  {zip_path.name}\n")
    return checksum


def bars_of_day(bars: pd.DataFrame, day: date) -> pd.DataFrame:
    return bars[bars["ts"].dt.date == day].reset_index(drop=True)


def build_klines_month(root: Path, rel_path: str = KLINES_MONTH) -> Path:
    """All 45,031 FTX bars (2021-12-31 23:01 .. 2022-02-01 05:31) as the 2022-01 monthly zip."""
    return write_zip(root, rel_path, klines_csv(ftx_bars()))


def build_klines_day(root: Path, day: date, *, time_unit: str = "ms", market: str = "spot") -> Path:
    """The FTX bars of one UTC day as that day's zip."""
    csv_bytes = klines_csv(bars_of_day(ftx_bars(), day), time_unit=time_unit)
    return write_zip(root, klines_path("daily", day.isoformat(), market), csv_bytes)


def build_aggtrades_day(root: Path, rel_path: str = AGGTRADES_DAY) -> Path:
    """The 9,999 Tardis trades of 2020-02-22 as that day's USD-M futures aggTrades zip."""
    return write_zip(root, rel_path, aggtrades_csv(tardis_trades()))


def build_corrupted(root: Path, rel_path: str = KLINES_CORRUPTED) -> Path:
    """A truncated zip whose .CHECKSUM matches the truncated bytes: the checksum passes,
    reading the zip must fail."""
    target = write_zip(root, rel_path, klines_csv(bars_of_day(ftx_bars(), date(2022, 1, 16))))
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    write_checksum(target)
    return target


def build_wrong_checksum(root: Path, rel_path: str = KLINES_WRONG_CHECKSUM) -> Path:
    """A good zip whose .CHECKSUM names other bytes."""
    target = write_zip(root, rel_path, klines_csv(bars_of_day(ftx_bars(), date(2022, 1, 17))))
    write_checksum(target, hashlib.sha256(b"other bytes").hexdigest())
    return target


def build_tree(root: Path) -> Path:
    """Every zip above under ``root``, which can then be served by ``ArchiveServer``."""
    build_klines_month(root)
    build_klines_day(root, date(2022, 1, 15), time_unit="us")
    build_klines_day(root, date(2022, 2, 1))
    build_corrupted(root)
    build_wrong_checksum(root)
    build_aggtrades_day(root)
    return Path(root)
