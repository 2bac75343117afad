"""One sliding-window throttle for both layers: the manager's submit and modify rates and the risk
layer's L8 submit limits count the same way, in the one clock unit (int nanoseconds)."""

from __future__ import annotations

from bisect import bisect_right


class Throttle:
    """At most ``limit`` events in any window of ``window_ns`` (``limit=None``: unlimited).

    An event at ``t`` counts at ``now`` while ``t > now - window_ns``, later events included
    (a clock that steps back cannot free capacity). Times are recorded in order; a record drops
    the times that have left the window, so memory stays at most ``limit`` entries.
    """

    __slots__ = ("limit", "times", "window_ns")

    def __init__(self, limit: int | None, window_ns: int) -> None:
        if limit is not None and not (type(limit) is int and limit >= 1):
            raise ValueError(f"limit must be an integer >= 1 or None, got {limit!r}")
        if not (type(window_ns) is int and window_ns >= 1):
            raise ValueError(f"window_ns must be an integer >= 1, got {window_ns!r}")
        self.limit, self.window_ns = limit, window_ns
        self.times: list[int] = []

    def count(self, now: int) -> int:
        """Events that still count at ``now``."""
        times = self.times
        if not times or times[0] > now - self.window_ns:
            return len(times)
        return len(times) - bisect_right(times, now - self.window_ns)

    def full(self, now: int) -> bool:
        return self.limit is not None and self.count(now) >= self.limit

    def record(self, now: int) -> None:
        times = self.times
        if times and times[0] <= now - self.window_ns:
            del times[:bisect_right(times, now - self.window_ns)]
        times.append(now)

    def allow(self, now: int) -> bool:
        """Record an event at ``now`` if the window has room; False (nothing recorded) if not."""
        if self.limit is None:
            return True
        if self.count(now) >= self.limit:
            return False
        self.record(now)
        return True
