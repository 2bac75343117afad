"""Shared fixtures: every test gets its own BOT4_HOME (warehouse, caches) under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FTX = SHARED_DATA / "ftx_btc-perp_1m_2022-01.csv.gz"
TRADES = SHARED_DATA / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
QUOTES = SHARED_DATA / "binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz"


@pytest.fixture(autouse=True)
def bot4_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "bot4_home"
    monkeypatch.setenv("BOT4_HOME", str(home))
    monkeypatch.delenv("BOT4_WAREHOUSE", raising=False)
    for var in ("BOT4_SOURCE", "BOT4_PATH", "BOT4_FORMAT", "BOT4_SYMBOL", "BOT4_VOLUME_UNIT",
                "BOT4_SYMBOLS", "BOT4_START", "BOT4_END", "BOT4_MARKET", "BOT4_TRADES",
                "BOT4_BINANCE_URL"):
        monkeypatch.delenv(var, raising=False)
    return home
