"""The market-data source as one Dagster resource: ``bundled`` (default), ``files`` or ``binance``.

Configure it in the launchpad, or for every run with environment variables (``BOT4_SOURCE``,
``BOT4_PATH``, ``BOT4_SYMBOLS``, ... see README, "Sources"). ``bot4 run`` passes its flags as the
run's resource config, so a run re-executed from the UI reads the same source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum, StrEnum

import dagster as dg
from pydantic import Field

from ..data.formats import FORMATS
from ..data.sources import BinanceSource, BundledSource, FileSource, MarketSource
from ..settings import cache_dir


class Source(StrEnum):
    bundled = "bundled"
    files = "files"
    binance = "binance"


class VolumeUnit(StrEnum):
    base = "base"
    quote = "quote"


class Market(StrEnum):
    spot = "spot"
    um = "um"


Format = Enum("Format", {name: name for name in FORMATS}, type=str)

# field -> (environment variable, `bot4 run` flag)
SETTINGS = {
    "source": ("BOT4_SOURCE", "--source"),
    "path": ("BOT4_PATH", "--path"),
    "format": ("BOT4_FORMAT", "--format"),
    "symbol": ("BOT4_SYMBOL", "--symbol"),
    "volume_unit": ("BOT4_VOLUME_UNIT", "--volume-unit"),
    "symbols": ("BOT4_SYMBOLS", "--symbols"),
    "start": ("BOT4_START", "--start"),
    "end": ("BOT4_END", "--end"),
    "market": ("BOT4_MARKET", "--market"),
    "trades": ("BOT4_TRADES", "--trades"),
    "klines": ("BOT4_KLINES", "--no-klines"),
    "base_url": ("BOT4_BINANCE_URL", "--base-url"),
    "bar_interval": ("BOT4_BAR_INTERVAL", "--bar-interval"),
}


def setting(name: str) -> str:
    """How a user sets a field: the flag, then the environment variable."""
    var, flag = SETTINGS[name]
    return f"{flag} ({var})"


class MarketDataResource(dg.ConfigurableResource):
    """Where the ingest assets read market data from."""

    source: Source = Field(
        default=Source.bundled, description="bundled: arch's S&P 500 / NASDAQ daily bars "
        "(offline); files: your exports; binance: Binance's public data archive")
    path: str | None = Field(default=None, description="files: a directory, file or glob")
    format: Format | None = Field(default=None,
                                  description="files: force a format (default: detect)")
    symbol: str | None = Field(default=None, description="files: symbol of files that name none")
    volume_unit: VolumeUnit | None = Field(
        default=None, description="files: unit of a generic OHLCV file's volume column")
    symbols: list[str] = Field(default_factory=list,
                               description="binance: symbols (bundled: a subset of SP500, NASDAQ)")
    start: str | None = Field(default=None, description="binance: first day, YYYY-MM-DD")
    end: str | None = Field(default=None, description="binance: day after the last (default today)")
    market: Market = Field(default=Market.spot, description="binance: spot or USD-M futures")
    trades: bool = Field(default=False, description="binance: also ingest aggTrades")
    klines: bool = Field(default=True, description="binance: ingest 1-minute klines as bars "
                         "(off: bars are built from the aggTrades)")
    base_url: str | None = Field(default=None, description="binance: archive URL (tests: loopback)")
    bar_interval: str = Field(
        default="1min", description="interval of the bars built from trades when a source "
        "holds trades but no bars (pandas offset, e.g. 1min, 5min, 1h)")

    @classmethod
    def from_env(cls) -> MarketDataResource:
        values: dict = {}
        for name, (var, _) in SETTINGS.items():
            raw = os.environ.get(var)
            if not raw:
                continue
            if name == "symbols":
                values[name] = [s.strip() for s in raw.split(",") if s.strip()]
            elif name in ("trades", "klines"):
                values[name] = raw.lower() in ("1", "true", "yes")
            else:
                values[name] = raw
        return cls(**values)

    def run_config(self) -> dict:
        """This source as resource config for a run, so that its re-execution reads the same."""
        values = {name: value.value if isinstance(value, Enum) else value
                  for name in SETTINGS if (value := getattr(self, name)) not in (None, [])}
        return {"resources": {"market_data": {"config": values}}}

    def open(self, progress: Callable | None = None) -> MarketSource:
        """The configured source, ready to list and load data."""
        if self.source == Source.bundled:
            return BundledSource(self.symbols or None)
        if self.source == Source.files:
            if not self.path:
                raise ValueError(f"files source: set {setting('path')} to a directory, file or "
                                 "glob of your exports")
            return FileSource(self.path, format=self.format.value if self.format else None,
                              symbol=self.symbol,
                              volume_unit=self.volume_unit.value if self.volume_unit else None,
                              index_path=cache_dir() / "files-index.json",
                              bar_interval=self.bar_interval)
        if not self.start:
            raise ValueError(f"binance source: set {setting('start')}, e.g. 2024-01-01")
        if not self.symbols:
            raise ValueError(f"binance source: set {setting('symbols')}, e.g. BTCUSDT")
        return BinanceSource(self.symbols, self.start, self.end, market=self.market.value,
                             trades=self.trades, klines=self.klines, base_url=self.base_url,
                             cache_dir=cache_dir() / "binance", progress=progress,
                             bar_interval=self.bar_interval)
