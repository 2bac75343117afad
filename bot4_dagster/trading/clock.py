"""The one clock unit of the trading layer: int nanoseconds since the Unix epoch (UTC).

The order manager's clock, venue events, the paper exchange and the risk state all use it, so
times compare without conversion. Aware datetimes are accepted where a person types a time (the
risk layer's ``now``) and converted exactly; floats are refused (seconds or nanoseconds?).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
DAY = 86_400 * SECOND
NEVER = -(2**63)  # before any time: an int sentinel that compares below every timestamp
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX = 2**63  # int64 nanoseconds reach the year 2262


def to_ns(now: int | datetime) -> int:
    """Nanoseconds of an aware datetime (exact) or of an int already in nanoseconds."""
    if isinstance(now, int):  # bool is refused below
        if now.__class__ is not int or not 0 <= now < _MAX:
            raise ValueError(f"time must be int nanoseconds in [0, 2**63), got {now!r}")
        return now
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError(f"naive datetime {now}: pass an aware (UTC) datetime or int "
                             "nanoseconds since the epoch")
        return (now - _EPOCH) // timedelta(microseconds=1) * 1000
    raise ValueError(f"time must be int nanoseconds since the epoch or an aware datetime, got "
                     f"{type(now).__name__} {now!r}")


def seconds_to_ns(seconds: float) -> int:
    """A duration from configuration (seconds, human-sized) in the clock unit."""
    return round(seconds * SECOND)


def iso(t: int) -> str:
    return datetime.fromtimestamp(t // SECOND, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
