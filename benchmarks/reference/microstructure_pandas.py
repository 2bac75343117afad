"""The pandas reference implementation of the 21 microstructure features of docs/microstructure.md.

Transcribed straight from that page, independently of the numba kernels, so that tests can compare
the fast implementation against it and benchmarks can time it as "the pandas reference". It aims to
be readable and obviously correct, not fast: per-bar sums come from ``groupby`` and are rolled with
``rolling(W)``; per-window trade statistics (regressions, covariances, correlations, quote spreads)
are recomputed from scratch for every window with numpy; VPIN fills its buckets in a Python loop.

Readings of points the page leaves open (see also the module's tests):

- With trades, T1 and T11 divide by the trades' volume V^T (the numerator's volume), not by the
  bar's ``volume`` column, so T1 stays in [-1, 1] whatever unit the bars are in.
- VPIN: a piece of flow with zero volume is skipped (it carries no flow; a zero-volume bar would
  otherwise give a 0/0 buy fraction). A bucket opens when flow arrives and none is open, so after a
  piece exactly fills a bucket the next one takes the V* of the bar whose flow comes next.
- B7: a bar whose sigma is not yet defined (tau < W_sigma) has no buy fraction, so its flow is not
  bucketed, like the flow of a bar with tau < W_v.
- Quote spreads: m(t) is the last quote strictly before t however old it is (no staleness limit),
  and the quote windows are NaN until the trade window is full, like every other window feature.
- Bars in 24 h for the default VPIN/BVC windows is ``24h // interval`` (floor), at least 20.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy.stats import norm

FEATURES = (
    "signed_volume_imbalance",  # T1
    "trade_count_imbalance",  # T2
    "kyle_lambda",  # T3
    "amihud_lambda",  # T4
    "hasbrouck_lambda",  # T5
    "vpin",  # T6
    "huang_stoll_spread",  # T7
    "huang_stoll_adverse_share",  # T8
    "roll_spread_tick",  # T9
    "trade_intensity",  # T10
    "mean_trade_size",  # T11
    "vwap_deviation",  # T12
    "sign_autocorr",  # T13
    "roll_measure",  # B1
    "roll_impact",  # B2
    "corwin_schultz_spread",  # B3
    "becker_parkinson_vol",  # B4
    "kyle_lambda_bar",  # B5
    "amihud_illiquidity",  # B6
    "vpin_bvc",  # B7
    "parkinson_vol",  # B8
)
QUOTE_FEATURES = ("effective_spread", "realized_spread", "price_impact")
DAY = pd.Timedelta("24h")


def reference_features(
    bars: pd.DataFrame,
    trades: pd.DataFrame | None = None,
    quotes: pd.DataFrame | None = None,
    *,
    volume_unit: str = "base",
    interval=None,
    trade_window: int = 15,
    regression_window: int = 60,
    bar_window: int = 20,
    kyle_min_trades: int = 20,
    vpin_buckets: int = 50,
    vpin_volume_window: int | None = None,
    bvc_sigma_window: int | None = None,
    realized_spread_delay="5s",
) -> pd.DataFrame:
    """The 21 features (plus the quote spreads when ``quotes`` is given), one row per bar.

    Features the input cannot support (the page's availability table) are all-NaN columns.
    """
    if volume_unit not in ("base", "quote"):
        raise ValueError(f"volume_unit must be 'base' or 'quote', not {volume_unit!r}")
    delta = bar_interval(bars, interval)
    day_bars = bars_per_day(delta)
    wv = day_bars if vpin_volume_window is None else vpin_volume_window
    ws = day_bars if bvc_sigma_window is None else bvc_sigma_window

    bar = _bar_frame(bars)
    n = len(bar)
    dc = bar["close"].diff()
    r = np.log(bar["close"]).diff()
    columns = list(FEATURES) + (list(QUOTE_FEATURES) if quotes is not None else [])
    out = pd.DataFrame(np.nan, index=pd.RangeIndex(n), columns=columns)

    if trades is not None:
        kept = keep_trades(bar, trades, delta)
        sums = per_bar_sums(kept, n)
        dv = sums["dv"]
        _trade_features(out, bar, kept, sums, r, trade_window, regression_window,
                        kyle_min_trades, vpin_buckets, wv)
        if quotes is not None:
            spreads = quote_spreads(bar, kept, quotes, delta, trade_window,
                                    pd.Timedelta(realized_spread_delay))
            out[list(QUOTE_FEATURES)] = spreads
    else:
        dv = bar["volume"] if volume_unit == "quote" else bar["close"] * bar["volume"]
        _bar_only_trade_features(out, bar, dc, trade_window, vpin_buckets, wv, ws)
    out["amihud_lambda"] = ols0_rolling(r.abs(), dv, regression_window)

    _bar_features(out, bar, dc, r, dv, bar_window, regression_window, vpin_buckets, wv, ws)
    out.index = bars.index
    return out


# --------------------------------------------------------------------------- inputs and helpers

def bar_interval(bars: pd.DataFrame, interval=None) -> pd.Timedelta:
    """Δ: the given interval, else the median difference of the bar open times."""
    if interval is not None:
        return pd.Timedelta(interval)
    return pd.Series(pd.DatetimeIndex(bars["ts"])).diff().median()


def bars_per_day(delta: pd.Timedelta) -> int:
    """Default VPIN volume / BVC sigma window: the bars in 24 h, at least 20."""
    return max(20, int(DAY // delta))


def _ns(ts) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC)."""
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def _bar_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars on a positional index, with float columns and open times in ns."""
    bar = bars.reset_index(drop=True)
    cols = ["open", "high", "low", "close", "volume"]
    cols += [c for c in ("buy_volume", "trade_count") if c in bar]
    frame = bar[cols].astype(float)
    frame["ts_ns"] = _ns(bar["ts"])
    return frame


def keep_trades(bar: pd.DataFrame, trades: pd.DataFrame, delta: pd.Timedelta) -> pd.DataFrame:
    """The trades that fall in a bar (ts_τ ≤ ts < ts_τ + Δ), with their bar and differences.

    Trades in no bar are dropped *before* differencing, so they never act as the previous trade.
    """
    t_ns = _ns(trades["ts"])
    bar_ns = bar["ts_ns"].to_numpy()
    idx = np.searchsorted(bar_ns, t_ns, side="right") - 1
    inside = (idx >= 0) & (t_ns < bar_ns[np.clip(idx, 0, None)] + delta.value)
    kept = pd.DataFrame({
        "ts_ns": t_ns[inside],
        "bar": idx[inside],
        "price": trades["price"].to_numpy(float)[inside],
        "amount": trades["amount"].to_numpy(float)[inside],
        "side": trades["side"].to_numpy(float)[inside],
    })
    kept["dp"] = kept["price"].diff()  # Δp_t, NaN for the first kept trade
    kept["dp_prev"] = kept["dp"].shift(1)  # Δp_{t-1}
    kept["dq"] = kept["side"].diff()  # ΔQ_t
    kept["q_prev"] = kept["side"].shift(1)  # Q_{t-1} = b_{t-1}
    return kept


def per_bar_sums(kept: pd.DataFrame, n_bars: int) -> pd.DataFrame:
    """N, V^T, Σbv, DV = Σpv, X = Σb√(pv) and Σb per bar (zeros for bars without trades)."""
    t = kept.assign(
        bv=kept["side"] * kept["amount"],
        dv=kept["price"] * kept["amount"],
        x=kept["side"] * np.sqrt(kept["price"] * kept["amount"]),
    )
    g = t.groupby("bar")
    sums = pd.DataFrame({
        "n": g.size().astype(float), "vol": g["amount"].sum(), "bv": g["bv"].sum(),
        "dv": g["dv"].sum(), "x": g["x"].sum(), "b": g["side"].sum(),
    })
    return sums.reindex(pd.RangeIndex(n_bars), fill_value=0.0)


def ratio(num, den):
    """num / den with NaN where den is 0 (the page's 0/0 and x/0 rule)."""
    if isinstance(den, pd.Series):
        return num / den.where(den != 0)
    return num / den if den != 0 else math.nan


def ols0_rolling(y: pd.Series, x: pd.Series, window: int) -> pd.Series:
    """OLS without intercept over each window of bars: Σxy / Σx² (NaN until W valid rows)."""
    return ratio((x * y).rolling(window).sum(), (x * x).rolling(window).sum())


def trade_windows(kept: pd.DataFrame, n_bars: int, window: int):
    """(τ, slice of the kept trades in bars τ−W+1 … τ) for every τ whose window is full."""
    bar_of = kept["bar"].to_numpy()
    for tau in range(window - 1, n_bars):
        lo = np.searchsorted(bar_of, tau - window + 1, side="left")
        hi = np.searchsorted(bar_of, tau, side="right")
        yield tau, slice(lo, hi)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation from centred sums; NaN when either side has no variance."""
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return ratio(float(np.sum(dx * dy)), den)


# --------------------------------------------------------------------------- trade features

def _trade_features(out, bar, kept, sums, r, w_trade, w_reg, kyle_min, n_buckets, wv):
    """T1–T13 from trades (the quote spreads are added separately)."""
    roll_n = sums["n"].rolling(w_trade).sum()
    roll_v = sums["vol"].rolling(w_trade).sum()
    out["signed_volume_imbalance"] = ratio(sums["bv"].rolling(w_trade).sum(), roll_v)
    out["trade_count_imbalance"] = ratio(sums["b"].rolling(w_trade).sum(), roll_n)
    out["kyle_lambda"] = kyle_lambda(kept, len(bar), w_trade, kyle_min)
    out["hasbrouck_lambda"] = ols0_rolling(r, sums["x"], w_reg)
    out["vpin"] = vpin(trade_flow(kept, len(bar)), bucket_sizes(sums["vol"], wv, n_buckets),
                       n_buckets)
    spread, share = huang_stoll(kept, len(bar), w_reg)
    out["huang_stoll_spread"], out["huang_stoll_adverse_share"] = spread, share
    out["roll_spread_tick"] = roll_spread_tick(kept, len(bar), w_trade)
    out["trade_intensity"] = np.log(1.0 + sums["n"])
    out["mean_trade_size"] = np.log(ratio(roll_v, roll_n))
    vwap = ratio(sums["dv"], sums["vol"])
    out["vwap_deviation"] = (bar["close"] - vwap) / vwap
    out["sign_autocorr"] = sign_autocorr(kept, len(bar), w_trade)


def kyle_lambda(kept, n_bars, window, min_trades) -> np.ndarray:
    """T3: OLS0 of Δp_t on b_t·v_t over the window's trades that have a Δp."""
    dp, x = kept["dp"].to_numpy(), (kept["side"] * kept["amount"]).to_numpy()
    out = np.full(n_bars, np.nan)
    for tau, s in trade_windows(kept, n_bars, window):
        has_dp = ~np.isnan(dp[s])
        y_w, x_w = dp[s][has_dp], x[s][has_dp]
        if len(y_w) >= min_trades:
            out[tau] = ratio(float(np.sum(x_w * y_w)), float(np.sum(x_w * x_w)))
    return out


def huang_stoll(kept, n_bars, window) -> tuple[np.ndarray, np.ndarray]:
    """T7 = 2a/p̄ and T8 = c/a from the OLS (no intercept) ΔP = a·ΔQ + c·Q_{t−1}.

    The 2×2 normal equations are solved by Cramer's rule; their sums of ΔQ and Q are exact
    integers, so a singular system (det = 0) is detected exactly and gives NaN.
    """
    dp, dq, qp = (kept[c].to_numpy() for c in ("dp", "dq", "q_prev"))
    price = kept["price"].to_numpy()
    spread, share = np.full(n_bars, np.nan), np.full(n_bars, np.nan)
    for tau, s in trade_windows(kept, n_bars, window):
        prev = ~np.isnan(qp[s])
        y, u, q = dp[s][prev], dq[s][prev], qp[s][prev]
        s_uu, s_uq, s_qq = np.sum(u * u), np.sum(u * q), np.sum(q * q)
        det = s_uu * s_qq - s_uq * s_uq
        if det == 0:
            continue
        s_uy, s_qy = np.sum(u * y), np.sum(q * y)
        a = (s_qq * s_uy - s_uq * s_qy) / det
        c = (s_uu * s_qy - s_uq * s_uy) / det
        spread[tau] = 2.0 * a / price[s].mean()
        share[tau] = ratio(c, a)
    return spread, share


def roll_spread_tick(kept, n_bars, window) -> np.ndarray:
    """T9: 2√max(0, −cov(Δp_t, Δp_{t−1})) / p̄ over the window's trades with both differences."""
    dp, dp_prev, price = (kept[c].to_numpy() for c in ("dp", "dp_prev", "price"))
    out = np.full(n_bars, np.nan)
    for tau, s in trade_windows(kept, n_bars, window):
        pair = ~np.isnan(dp_prev[s])
        if pair.sum() >= 2:
            cov = np.cov(dp[s][pair], dp_prev[s][pair], ddof=1)[0, 1]
            out[tau] = 2.0 * math.sqrt(max(0.0, -cov)) / price[s].mean()
    return out


def sign_autocorr(kept, n_bars, window) -> np.ndarray:
    """T13: Pearson correlation of (b_t, b_{t−1}) over the window's trades with a previous one."""
    b, b_prev = kept["side"].to_numpy(), kept["q_prev"].to_numpy()
    out = np.full(n_bars, np.nan)
    for tau, s in trade_windows(kept, n_bars, window):
        pair = ~np.isnan(b_prev[s])
        if pair.sum() >= 2:
            out[tau] = pearson(b[s][pair], b_prev[s][pair])
    return out


def _bar_only_trade_features(out, bar, dc, w_trade, n_buckets, wv, ws):
    """T1, T6, T10, T11 from bars: buy_volume / BVC for T1, buy_volume for T6, trade_count."""
    volume = bar["volume"]
    if "buy_volume" in bar:
        signed = 2.0 * bar["buy_volume"] - volume
        flow = [(np.array([v]), np.array([f])) for v, f in
                zip(volume, ratio(bar["buy_volume"], volume), strict=True)]
        out["vpin"] = vpin(flow, bucket_sizes(volume, wv, n_buckets), n_buckets)
    else:
        signed = volume * (2.0 * bvc_buy_fraction(dc, ws) - 1.0)  # approximate T1 (BVC)
    out["signed_volume_imbalance"] = ratio(signed.rolling(w_trade).sum(),
                                           volume.rolling(w_trade).sum())
    if "trade_count" in bar:
        out["trade_intensity"] = np.log(1.0 + bar["trade_count"])
        out["mean_trade_size"] = np.log(ratio(volume.rolling(w_trade).sum(),
                                              bar["trade_count"].rolling(w_trade).sum()))


# --------------------------------------------------------------------------- VPIN

def bucket_sizes(volume: pd.Series, wv: int, n_buckets: int) -> np.ndarray:
    """V*_τ: the volume of the Wv bars before τ over n (NaN for τ < Wv)."""
    return (volume.rolling(wv).sum().shift(1) / n_buckets).to_numpy()


def trade_flow(kept, n_bars) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per bar, its trades' volumes and buy fractions (1 for a buy, 0 for a sell), in order."""
    bounds = np.searchsorted(kept["bar"].to_numpy(), np.arange(n_bars + 1), side="left")
    vol, buy = kept["amount"].to_numpy(), (kept["side"] > 0).to_numpy(float)
    return [(vol[lo:hi], buy[lo:hi]) for lo, hi in pairwise(bounds)]


def bvc_buy_fraction(dc: pd.Series, ws: int) -> pd.Series:
    """Φ(Δc_τ/σ_τ), σ the sample std of Δc over the Wσ bars ending at τ; ½ when σ = 0."""
    sigma = dc.rolling(ws).std(ddof=1)
    frac = pd.Series(norm.cdf(dc / sigma.where(sigma != 0)), index=dc.index)
    return frac.mask(sigma == 0, 0.5)


def vpin(flow, sizes: np.ndarray, n_buckets: int) -> np.ndarray:
    """VPIN after each bar from its flow pieces (volume, buy fraction), bucketed in time order."""
    out = np.full(len(sizes), np.nan)
    imbalances, bucket_size = [], []
    cap = filled = buy = math.nan  # no bucket open yet
    for tau, (vols, fracs) in enumerate(flow):
        size = sizes[tau]
        if size > 0:  # False for NaN (τ < Wv) and for V* = 0: not bucketed
            for v, f in zip(vols.tolist(), fracs.tolist(), strict=True):
                if v == 0 or math.isnan(f):
                    continue
                while v > 0:
                    if math.isnan(cap):  # flow arrives with no bucket open: open one
                        cap, filled, buy = size, 0.0, 0.0
                    room = cap - filled
                    if v >= room:  # the bucket takes the room and closes
                        buy += f * room
                        imbalances.append(abs(2.0 * buy - cap))
                        bucket_size.append(cap)
                        v -= room
                        cap = math.nan
                    else:
                        buy += f * v
                        filled += v
                        v = 0.0
        if len(bucket_size) >= n_buckets:
            out[tau] = sum(imbalances[-n_buckets:]) / sum(bucket_size[-n_buckets:])
    return out


# --------------------------------------------------------------------------- bar features

def _bar_features(out, bar, dc, r, dv, w_bar, w_reg, n_buckets, wv, ws):
    """B1–B8."""
    high, low, volume = bar["high"], bar["low"], bar["volume"]
    out["roll_measure"] = 2.0 * np.sqrt((-dc.rolling(w_bar).cov(dc.shift(1))).clip(lower=0.0))
    out["roll_impact"] = ratio(out["roll_measure"], dv)
    out["corwin_schultz_spread"], out["becker_parkinson_vol"] = corwin_schultz(high, low, w_bar)
    out["kyle_lambda_bar"] = ols0_rolling(dc, tick_sign(dc) * volume, w_bar)
    out["amihud_illiquidity"] = amihud_illiquidity(r, dv, w_reg)
    flow = [(np.array([v]), np.array([f])) for v, f in
            zip(volume, bvc_buy_fraction(dc, ws), strict=True)]
    out["vpin_bvc"] = vpin(flow, bucket_sizes(volume, wv, n_buckets), n_buckets)
    hl = np.log(high / low) ** 2
    out["parkinson_vol"] = np.sqrt(hl.rolling(w_bar).sum() / (4.0 * math.log(2.0) * w_bar))


def corwin_schultz(high: pd.Series, low: pd.Series, window: int) -> tuple[pd.Series, pd.Series]:
    """B3 spread and B4 Becker–Parkinson volatility from β (window mean of hl_k + hl_{k−1})
    and γ."""
    hl = np.log(high / low) ** 2
    beta = (hl + hl.shift(1)).rolling(window).mean()
    gamma = np.log(np.maximum(high, high.shift(1)) / np.minimum(low, low.shift(1))) ** 2
    d = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (math.sqrt(2.0) - 1.0) * np.sqrt(beta) / d - np.sqrt(gamma / d)
    alpha = alpha.mask(alpha < 0, 0.0)
    spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    k2 = math.sqrt(8.0 / math.pi)
    sigma = (2.0 ** -0.5 - 1.0) * np.sqrt(beta) / (k2 * d) + np.sqrt(gamma / (k2 ** 2 * d))
    return spread, sigma.mask(sigma < 0, 0.0)


def tick_sign(dc: pd.Series) -> pd.Series:
    """s_k = sign(Δc_k); a zero change keeps the previous s; 0 before the first non-zero change."""
    sign = np.sign(dc)
    return sign.where(sign != 0).ffill().fillna(0.0)


def amihud_illiquidity(r: pd.Series, dv: pd.Series, window: int) -> pd.Series:
    """B6: mean of |r_k|/DV_k over the window's bars with DV_k > 0 (needs τ ≥ W)."""
    illiq = (r.abs() / dv.where(dv > 0)).rolling(window, min_periods=1).mean()
    return illiq.where(illiq.index >= window)


# --------------------------------------------------------------------------- quote spreads

def quote_spreads(bar, kept, quotes, delta, window, delay) -> pd.DataFrame:
    """Window means of ES, RS and PI per trade, RS/PI only for trades with t + δ ≤ the bar close."""
    q_ns = _ns(quotes["ts"])
    mid = ((quotes["bid"] + quotes["ask"]) / 2.0).to_numpy(float)
    t_ns = kept["ts_ns"].to_numpy()

    def mid_at(ns, side):  # the mid of the last quote before ns ("left") or at/before ("right")
        j = np.searchsorted(q_ns, ns, side=side) - 1
        return np.where(j >= 0, mid[np.clip(j, 0, None)], np.nan)

    m_now, m_later = mid_at(t_ns, "left"), mid_at(t_ns + delay.value, "right")
    b, p = kept["side"].to_numpy(), kept["price"].to_numpy()
    es = 2.0 * b * (p - m_now) / m_now
    rs = 2.0 * b * (p - m_later) / m_now
    pi = es - rs
    close_ns = bar["ts_ns"].to_numpy() + delta.value
    out = pd.DataFrame(np.nan, index=bar.index, columns=list(QUOTE_FEATURES))
    for tau, s in trade_windows(kept, len(bar), window):
        quoted = ~np.isnan(es[s])
        later = quoted & (t_ns[s] + delay.value <= close_ns[tau])
        if quoted.any():
            out.loc[tau, "effective_spread"] = es[s][quoted].mean()
        if later.any():
            out.loc[tau, "realized_spread"] = rs[s][later].mean()
            out.loc[tau, "price_impact"] = pi[s][later].mean()
    return out
