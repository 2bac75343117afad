"""Symbols are checked wherever they enter: options, file contents, bundled and Binance lists."""

from __future__ import annotations

import gzip

import pytest
from conftest import TRADES

from bot4_dagster.data.errors import DataError
from bot4_dagster.data.formats import parse_file
from bot4_dagster.data.sources import BinanceSource, BundledSource, FileSource
from bot4_dagster.data.symbols import ALLOWED, InvalidSymbol, check_symbol

GOOD = ["BTCUSDT", "BTC-PERP", "ES.c.0", "SP500", "eth_usd", "1INCHUSDT", "A" * 64]
BAD = {
    "": "it is empty",
    "BTC|USDT": "'|' is not allowed",  # Dagster's multi-partition delimiter
    "BTC/USDT": "'/' is not allowed",
    "BTC\\USDT": "'\\\\' is not allowed",
    "BTC USDT": "' ' is not allowed",
    "BTC\u00dcSDT": "'\u00dc' is not allowed",  # a Latin-1 letter
    "-BTC": "it starts with '-'",
    ".hidden": "it starts with '.'",
    "BTCUSDT\n": "'\\n' is not allowed",
    "A" * 65: "it has 65 characters",
}


@pytest.mark.parametrize("symbol", GOOD)
def test_allowed_symbols_pass_unchanged(symbol):
    assert check_symbol(symbol, where="a test") == symbol


@pytest.mark.parametrize(("symbol", "why"), BAD.items(), ids=[repr(s)[:20] for s in BAD])
def test_refused_symbols_say_where_from_why_and_what_is_allowed(symbol, why):
    with pytest.raises(InvalidSymbol) as caught:
        check_symbol(symbol, where="the test's list")
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == (f"invalid symbol {symbol!r} from the test's list: {why}; "
                                 f"a symbol may hold {ALLOWED}")
    assert (caught.value.symbol, caught.value.where) == (symbol, "the test's list")


def tardis_copy(tmp_path, row: int, symbol: str, encoding: str = "utf-8"):
    rows = gzip.decompress(TRADES.read_bytes()).decode().splitlines()[:200]
    rows[row - 1] = rows[row - 1].replace("BTCUSDT", symbol)
    path = tmp_path / "trades.csv"
    path.write_bytes(("\n".join(rows) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize("symbol", ["BTC|USDT", "BTC USDT", "BTC/USDT", "BTC\u00dcSDT"])
def test_a_bad_symbol_in_a_file_names_file_row_and_rule(tmp_path, symbol):
    path = tardis_copy(tmp_path, 120, symbol)
    with pytest.raises(DataError) as caught:
        parse_file(path)
    violation = caught.value.first
    assert (violation.file, violation.row, violation.rule) == (str(path), 120, "symbol_valid")
    assert repr(symbol.upper()) in violation.detail and ALLOWED in violation.detail


def test_a_latin1_encoded_symbol_names_file_row_and_rule(tmp_path):
    path = tardis_copy(tmp_path, 77, "BTC\u00dcSDT", encoding="latin-1")
    with pytest.raises(DataError) as caught:
        parse_file(path)
    violation = caught.value.first
    assert (violation.file, violation.row, violation.rule) == (str(path), 77, "symbol_valid")
    assert "not UTF-8" in violation.detail


def test_an_empty_symbol_cell_is_refused(tmp_path):
    path = tardis_copy(tmp_path, 5, "")
    with pytest.raises(DataError) as caught:
        parse_file(path)
    assert (caught.value.first.row, caught.value.first.rule) == (5, "symbol_valid")


def test_options_and_lists_are_checked_where_they_enter(tmp_path):
    with pytest.raises(InvalidSymbol, match=r"from the files source's symbol option \(--symbol, "
                                            r"BOT4_SYMBOL\)"):
        FileSource(TRADES, symbol="BTC/PERP")
    with pytest.raises(InvalidSymbol, match=r"symbol option \(--symbol, BOT4_SYMBOL\)"):
        parse_file(TRADES, symbol="BTC PERP")
    with pytest.raises(InvalidSymbol,
                       match=r"bundled source's symbols \(--symbols, BOT4_SYMBOLS\)"):
        BundledSource(["SP500|NASDAQ"])
    with pytest.raises(InvalidSymbol,
                       match=r"binance source's symbols \(--symbols, BOT4_SYMBOLS\)"):
        BinanceSource(["BTCUSDT", "ETH USDT"], "2024-01-01", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="bundled data has no DOW"):
        BundledSource(["DOW"])
