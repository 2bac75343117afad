"""Time bars from a trade tape: one pass, only bars that contain trades."""

from __future__ import annotations

import numpy as np

from ._jit import kernel

BAR_FIELDS: tuple[str, ...] = (
    "ts", "open", "high", "low", "close", "volume", "buy_volume", "count",
)


def aggregate_trades_python(
    ts_ns: np.ndarray,
    price: np.ndarray,
    amount: np.ndarray,
    side: np.ndarray,
    bar_ns: int | np.int64,
    out_ts: np.ndarray,
    out_open: np.ndarray,
    out_high: np.ndarray,
    out_low: np.ndarray,
    out_close: np.ndarray,
    out_volume: np.ndarray,
    out_buy_volume: np.ndarray,
    out_count: np.ndarray,
) -> int:
    """Aggregate trades sorted by ``ts_ns`` (int64 ns epoch) into bars of ``bar_ns``; return n_bars.

    Bar start is ``floor(ts / bar_ns) * bar_ns`` (floor, so pre-1970 stamps bucket correctly).
    ``side == 1`` marks buyer-initiated trades, whose amounts make up ``buy_volume``. Outputs are
    preallocated by the caller with at least as many rows as distinct bars (``len(ts_ns)`` is
    always enough), so the kernel never allocates.
    """
    n = ts_ns.shape[0]
    if n == 0:
        return 0
    # The running bar lives in locals (registers) and is flushed when the next bar starts;
    # sortedness means a new bar begins exactly when ts reaches bar_end, so the integer division
    # runs once per bar, not once per trade.
    j = -1
    bar_end = ts_ns[0]  # forces a new bar at i == 0
    o = h = lo = c = vol = buy = 0.0
    cnt = 0
    for i in range(n):
        t = ts_ns[i]
        p = price[i]
        a = amount[i]
        if t >= bar_end:
            if j >= 0:
                out_open[j] = o
                out_high[j] = h
                out_low[j] = lo
                out_close[j] = c
                out_volume[j] = vol
                out_buy_volume[j] = buy
                out_count[j] = cnt
            j += 1
            start = (t // bar_ns) * bar_ns
            bar_end = start + bar_ns
            out_ts[j] = start
            o = h = lo = p
            vol = 0.0
            buy = 0.0
            cnt = 0
        h = max(h, p)
        lo = min(lo, p)
        c = p
        vol += a
        if side[i] == 1:
            buy += a
        cnt += 1
    out_open[j] = o
    out_high[j] = h
    out_low[j] = lo
    out_close[j] = c
    out_volume[j] = vol
    out_buy_volume[j] = buy
    out_count[j] = cnt
    return j + 1


aggregate_trades = kernel(cache=True, nogil=True)(aggregate_trades_python)


def trades_to_bars(
    ts_ns: np.ndarray,
    price: np.ndarray,
    amount: np.ndarray,
    side: np.ndarray,
    bar_ns: int,
) -> dict[str, np.ndarray]:
    """Numpy-level entry point: allocate outputs, run :func:`aggregate_trades`, trim to n_bars.

    Returns arrays keyed by :data:`BAR_FIELDS`; ``ts`` is int64 ns, ``count`` int64, the rest
    float64. Raises ValueError for unsorted timestamps, unequal lengths or ``bar_ns <= 0``.
    """
    ts_ns = np.ascontiguousarray(ts_ns, dtype=np.int64)
    price = np.ascontiguousarray(price, dtype=np.float64)
    amount = np.ascontiguousarray(amount, dtype=np.float64)
    side = np.ascontiguousarray(side, dtype=np.int8)
    if bar_ns <= 0:
        raise ValueError(f"bar_ns must be positive, got {bar_ns}")
    if not (ts_ns.shape == price.shape == amount.shape == side.shape) or ts_ns.ndim != 1:
        raise ValueError("ts_ns, price, amount and side must be 1-d arrays of equal length")
    if ts_ns.size > 1 and np.any(ts_ns[1:] < ts_ns[:-1]):
        raise ValueError("trades must be sorted by timestamp")
    n = ts_ns.shape[0]
    # Size outputs by the tighter of the two bounds (trades, bar slots spanned): with many trades
    # per bar this allocates kilobytes instead of len(trades)-sized buffers.
    cap = n if n == 0 else min(n, int(ts_ns[-1] // bar_ns - ts_ns[0] // bar_ns) + 1)
    out = {
        "ts": np.empty(cap, dtype=np.int64),
        **{k: np.empty(cap, dtype=np.float64) for k in BAR_FIELDS[1:-1]},
        "count": np.empty(cap, dtype=np.int64),
    }
    n_bars = aggregate_trades(
        ts_ns, price, amount, side, np.int64(bar_ns),
        out["ts"], out["open"], out["high"], out["low"], out["close"],
        out["volume"], out["buy_volume"], out["count"],
    )
    if n_bars == cap:
        return out
    # Copy when trimming frees most of the buffer (sparse trades: many empty bar slots).
    return {k: v[:n_bars].copy() if n_bars < cap // 2 else v[:n_bars] for k, v in out.items()}
