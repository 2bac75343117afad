"""What a symbol may look like, checked wherever one enters (options, file contents, partitions).

Allowed: ASCII letters, digits, ``.``, ``_`` and ``-``; the first character a letter or digit; at
most 64 characters (``BTCUSDT``, ``BTC-PERP``, ``ES.c.0``, ``SP500``). Why so narrow: a symbol
becomes a Dagster partition key (``|`` is Dagster's multi-partition delimiter, ``,`` separates keys
in run tags), part of file names (no ``/``, ``\\``, spaces, or a leading ``.`` or ``-`` that a
shell reads as an option), and a value in SQL and log lines. Non-ASCII letters are refused because
the same-looking symbol in another encoding or normalisation would be a different partition.
"""

from __future__ import annotations

import re

MAX_LENGTH = 64
PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LENGTH - 1}}}")
ALLOWED = (f"ASCII letters, digits, '.', '_' and '-', starting with a letter or digit, "
           f"at most {MAX_LENGTH} characters")


class InvalidSymbol(ValueError):
    """A symbol outside the allowed set; names where it came from and what is allowed."""

    def __init__(self, symbol: str, where: str):
        self.symbol = symbol
        self.where = where
        super().__init__(f"invalid symbol {symbol!r} from {where}: {problem(symbol)}; "
                         f"a symbol may hold {ALLOWED}")


def is_valid(symbol: object) -> bool:
    return isinstance(symbol, str) and PATTERN.fullmatch(symbol) is not None


def problem(symbol: str) -> str:
    """Why ``symbol`` is refused, in a few words (for an invalid symbol)."""
    if not isinstance(symbol, str):
        return f"not text but {type(symbol).__name__}"
    if not symbol:
        return "it is empty"
    if len(symbol) > MAX_LENGTH:
        return f"it has {len(symbol)} characters"
    if not re.fullmatch(r"[A-Za-z0-9]", symbol[0]):
        return f"it starts with {symbol[0]!r}"
    bad = next(c for c in symbol if not re.fullmatch(r"[A-Za-z0-9._-]", c))
    return f"{bad!r} is not allowed"


def check_symbol(symbol: str, *, where: str) -> str:
    """``symbol`` unchanged if it is allowed, else ``InvalidSymbol`` naming ``where``."""
    if not is_valid(symbol):
        raise InvalidSymbol(symbol, where)
    return symbol

