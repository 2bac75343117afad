"""The market-data source as one Dagster resource: ``bundled`` (default), ``files`` or ``binance``.

Configure it in the launchpad, or for every run with environment variables (``BOT4_SOURCE``,
``BOT4_PATH``, ``BOT4_SYMBOLS``, ... see README, "Sources"), which is what ``bot4 run`` sets.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import dagster as dg
from pydantic import Field

from ..data.sources import BinanceSource, BundledSource, FileSource, MarketSource
from ..settings import cache_dir

ENV = {
    "source": "BOT4_SOURCE",
    "path": "BOT4_PATH",
    "format": "BOT4_FORMAT",
    "symbol": "BOT4_SYMBOL",
    "volume_unit": "BOT4_VOLUME_UNIT",
    "symbols": "BOT4_SYMBOLS",
    "start": "BOT4_START",
    "end": "BOT4_END",
    "market": "BOT4_MARKET",
    "trades": "BOT4_TRADES",
    "base_url": "BOT4_BINANCE_URL",
}

CHOICES = {"source": ("bundled", "files", "binance"), "volume_unit": (None, "base", "quote"),
           "market": ("spot", "um")}


class MarketDataResource(dg.ConfigurableResource):
    """Where the ingest assets read market data from."""

    source: str = Field(
        default="bundled", description="bundled: arch's S&P 500 / NASDAQ daily bars (offline); "
        "files: your exports; binance: Binance's public data archive")
    path: str | None = Field(default=None, description="files: a directory, file or glob")
    format: str | None = Field(default=None, description="files: force a format (default: detect)")
    symbol: str | None = Field(default=None, description="files: symbol of files that name none")
    volume_unit: str | None = Field(
        default=None, description="files: unit of a generic OHLCV file's volume column")
    symbols: list[str] = Field(default_factory=list,
                               description="binance: symbols (bundled: a subset of SP500, NASDAQ)")
    start: str | None = Field(default=None, description="binance: first day, YYYY-MM-DD")
    end: str | None = Field(default=None, description="binance: day after the last (default today)")
    market: str = Field(default="spot", description="binance: spot or USD-M futures")
    trades: bool = Field(default=False, description="binance: also ingest aggTrades")
    base_url: str | None = Field(default=None, description="binance: archive URL (tests: loopback)")

    @classmethod
    def from_env(cls) -> MarketDataResource:
        values: dict = {}
        for name, var in ENV.items():
            raw = os.environ.get(var)
            if not raw:
                continue
            if name == "symbols":
                values[name] = [s.strip() for s in raw.split(",") if s.strip()]
            elif name == "trades":
                values[name] = raw.lower() in ("1", "true", "yes")
            else:
                values[name] = raw
        return cls(**values)

    def open(self, progress: Callable | None = None) -> MarketSource:
        """The configured source, ready to list and load data."""
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"market_data.{name} = {getattr(self, name)!r}; choose one of "
                                 f"{', '.join(a for a in allowed if a)}")
        if self.source == "bundled":
            return BundledSource(self.symbols or None)
        if self.source == "files":
            if not self.path:
                raise ValueError("files source: set `path` (env BOT4_PATH) to a directory, file or glob")
            return FileSource(self.path, format=self.format, symbol=self.symbol,
                              volume_unit=self.volume_unit,
                              index_path=cache_dir() / "files-index.json")
        if not self.start:
            raise ValueError("binance source: set `start` (env BOT4_START), e.g. 2024-01-01")
        return BinanceSource(self.symbols, self.start, self.end, market=self.market,
                             trades=self.trades, base_url=self.base_url,
                             cache_dir=cache_dir() / "binance", progress=progress)
