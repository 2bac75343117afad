"""The microstructure kernel: bars (with their trades) in, 21 features per bar out, O(window) state.

The batch passes every bar to ``microstructure_run``; the incremental state passes one bar at a
time to the same function, so the batch frame and the incremental state agree bit for bit.
Windowed sums are running sums over ring buffers, re-added from scratch each time a ring wraps,
so rounding cannot drift.
Definitions: docs/microstructure.md.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel

N_FEATURES = 21
# config (int64): windows and which input each feature family is computed from
(C_TRADE_W, C_REG_W, C_BAR_W, C_KYLE_MIN, C_BUCKETS, C_VOL_W, C_SIGMA_W,
 C_TRADES, C_T1_MODE, C_T6_MODE, C_COUNT_MODE, C_DV_MODE) = range(12)
N_CONFIG = 12
# modes
FROM_TRADES, FROM_BUY_VOLUME, FROM_BVC, NONE = 0, 1, 2, 3
FROM_COUNT_COLUMN = 1
DV_QUOTE_VOLUME, DV_CLOSE_TIMES_VOLUME = 1, 2
# float state
(F_PREV_P, F_PREV_B, F_PREV_DP, F_PREV_C, F_PREV_DC, F_SIGN, F_PREV_H, F_PREV_L, F_PREV_HL,
 F_PREV_LOGC) = range(10)
N_FSTATE = 10
# int state
(I_TAU, I_HAVE_P, I_HAVE_DP) = range(3)
N_ISTATE = 3
# trade-window ring columns
(T_V, T_SV, T_SV_UNDEF, T_N, T_SB, T_KN, T_KXY, T_KXX, T_RN, T_RX, T_RY, T_RXY, T_PSUM,
 T_SN, T_SX, T_SY, T_SXY, T_SXX, T_SYY) = range(19)
N_TRADE_COLS = 19
# regression-window ring columns
(R_AXY, R_AXX, R_HXY, R_HXX, R_QQ, R_QC, R_CC, R_QP, R_CP, R_P, R_N, R_AM, R_AMN) = range(13)
N_REG_COLS = 13
# bar-window ring columns
(B_X, B_Y, B_XY, B_CS, B_KXY, B_KXX, B_HL) = range(7)
N_BAR_COLS = 7
# one row each: trade, regression, bar, sigma, volume, bucket, sizes
SCRATCH_SHAPE = (7, N_TRADE_COLS)

LN2 = math.log(2.0)
SQRT2 = math.sqrt(2.0)
CS_DEN = 3.0 - 2.0 * SQRT2
K2 = math.sqrt(8.0 / math.pi)
BP_A = 2.0 ** -0.5 - 1.0


def ring_push_python(buf: np.ndarray, sums: np.ndarray, meta: np.ndarray, row: np.ndarray) -> None:
    """Push ``row`` into ring ``buf`` (W x K) and keep ``sums`` = the column sums of its rows.
    ``meta`` = [next position, rows pushed]. Sums are re-added exactly each time the ring wraps."""
    width, k = buf.shape
    pos = meta[0]
    full = meta[1] >= width
    for j in range(k):
        if full:
            sums[j] -= buf[pos, j]
        buf[pos, j] = row[j]
        sums[j] += row[j]
    pos += 1
    if pos == width:
        pos = 0
        for j in range(k):
            s = 0.0
            for i in range(width):
                s += buf[i, j]
            sums[j] = s
    meta[0] = pos
    meta[1] += 1


ring_push = kernel(inline="always")(ring_push_python)


def normal_cdf_python(x: float) -> float:
    return 0.5 * math.erfc(-x / SQRT2)


normal_cdf = kernel(inline="always")(normal_cdf_python)


def vpin_pour_python(volume: float, buy_fraction: float, size: float, current: np.ndarray,
                     buf: np.ndarray, sums: np.ndarray, meta: np.ndarray, row: np.ndarray) -> None:
    """Pour one piece of flow into volume buckets. ``current`` = [capacity (0: none open),
    filled, buy volume]; closed buckets' (|2B - size|, size) go into the ring ``buf`` (``row`` is
    scratch space for one ring row)."""
    v = volume
    while v > 0.0:
        if current[0] == 0.0:
            current[0] = size
            current[1] = 0.0
            current[2] = 0.0
        cap = current[0]
        room = cap - current[1]
        if v >= room:
            buy = current[2] + room * buy_fraction
            row[0] = abs(2.0 * buy - cap)
            row[1] = cap
            ring_push(buf, sums, meta, row)
            current[0] = 0.0
            v -= room
        else:
            current[1] += v
            current[2] += v * buy_fraction
            v = 0.0


vpin_pour = kernel(inline="always")(vpin_pour_python)


def microstructure_run_python(
    cfg, fs, ist,
    t_buf, t_sum, t_meta, r_buf, r_sum, r_meta, b_buf, b_sum, b_meta,
    s_buf, s_sum, s_meta, v_buf, v_sum, v_meta,
    vp_cur, vp_buf, vp_sum, vp_meta, rows,
    bars, price, amount, side, starts, ends, out,
):
    """Advance the state through ``bars`` (rows: high, low, close, volume, buy_volume,
    trade_count) and their trades (bar i: ``starts[i]:ends[i]``), writing row i of ``out``.
    The batch passes every bar at once; the incremental state passes one."""
    n_buckets = cfg[C_BUCKETS]
    has_trades = cfg[C_TRADES] == 1
    nan = np.nan
    for bar in range(bars.shape[0]):
        high, low, close, volume = bars[bar, 0], bars[bar, 1], bars[bar, 2], bars[bar, 3]
        buy_volume, trade_count = bars[bar, 4], bars[bar, 5]
        first, last = starts[bar], ends[bar]
        row_out = out[bar]
        tau = ist[I_TAU]

        # bucket sizes from the bars before this one
        trow = rows[0, :N_TRADE_COLS]
        rrow = rows[1, :N_REG_COLS]
        brow = rows[2, :N_BAR_COLS]
        srow = rows[3, :2]
        vrow = rows[4, :2]
        sizes = rows[6, :2]
        for j in range(N_TRADE_COLS):
            trow[j] = 0.0
        for j in range(N_REG_COLS):
            rrow[j] = 0.0
        for j in range(N_BAR_COLS):
            brow[j] = 0.0
        srow[0] = srow[1] = vrow[0] = vrow[1] = sizes[0] = sizes[1] = 0.0
        if tau >= cfg[C_VOL_W]:
            sizes[0] = v_sum[0] / n_buckets
            sizes[1] = v_sum[1] / n_buckets

        n_tr = 0
        vol_tr = 0.0
        dv_tr = 0.0
        x_hb = 0.0
        for i in range(first, last):
            p = price[i]
            v = amount[i]
            b = float(side[i])
            n_tr += 1
            vol_tr += v
            dv_tr += p * v
            x_hb += b * math.sqrt(p * v)
            trow[T_SV] += b * v
            trow[T_SB] += b
            trow[T_PSUM] += p
            if ist[I_HAVE_P] == 1:
                dp = p - fs[F_PREV_P]
                qb = fs[F_PREV_B]
                bv = b * v
                trow[T_KN] += 1.0
                trow[T_KXY] += dp * bv
                trow[T_KXX] += bv * bv
                dq = b - qb
                rrow[R_QQ] += dq * dq
                rrow[R_QC] += dq * qb
                rrow[R_CC] += qb * qb
                rrow[R_QP] += dq * dp
                rrow[R_CP] += qb * dp
                trow[T_SN] += 1.0
                trow[T_SX] += b
                trow[T_SY] += qb
                trow[T_SXY] += b * qb
                trow[T_SXX] += b * b
                trow[T_SYY] += qb * qb
                if ist[I_HAVE_DP] == 1:
                    trow[T_RN] += 1.0
                    trow[T_RX] += dp
                    trow[T_RY] += fs[F_PREV_DP]
                    trow[T_RXY] += dp * fs[F_PREV_DP]
                fs[F_PREV_DP] = dp
                ist[I_HAVE_DP] = 1
            fs[F_PREV_P] = p
            fs[F_PREV_B] = b
            ist[I_HAVE_P] = 1
            if cfg[C_T6_MODE] == FROM_TRADES and sizes[0] > 0.0:
                vpin_pour(v, 1.0 if b > 0 else 0.0, sizes[0], vp_cur[0], vp_buf[0], vp_sum[0],
                          vp_meta[0], rows[5])

        # bar quantities
        has_prev = tau >= 1
        dc = close - fs[F_PREV_C] if has_prev else 0.0
        log_c = math.log(close)
        r = log_c - fs[F_PREV_LOGC] if has_prev else 0.0
        log_hl = math.log(high / low)
        hl = log_hl * log_hl
        if cfg[C_DV_MODE] == FROM_TRADES:
            dv = dv_tr
        elif cfg[C_DV_MODE] == DV_QUOTE_VOLUME:
            dv = volume
        else:
            dv = close * volume
        if has_prev and dc != 0.0:
            fs[F_SIGN] = 1.0 if dc > 0.0 else -1.0

        if has_prev:
            srow[0] = dc
            srow[1] = dc * dc
        ring_push(s_buf, s_sum, s_meta, srow)
        f_bvc = nan
        width = cfg[C_SIGMA_W]
        if tau >= width:
            var = (s_sum[1] - s_sum[0] * s_sum[0] / width) / (width - 1)
            sigma = math.sqrt(var) if var > 0.0 else 0.0
            f_bvc = 0.5 if sigma == 0.0 else normal_cdf(dc / sigma)
        if sizes[1] > 0.0 and not math.isnan(f_bvc):
            vpin_pour(volume, f_bvc, sizes[1], vp_cur[1], vp_buf[1], vp_sum[1], vp_meta[1], rows[5])
        if cfg[C_T6_MODE] == FROM_BUY_VOLUME and sizes[0] > 0.0 and volume > 0.0:
            vpin_pour(volume, buy_volume / volume, sizes[0], vp_cur[0], vp_buf[0], vp_sum[0],
                      vp_meta[0], rows[5])

        # rows of the windowed sums
        if has_trades:
            trow[T_V] = vol_tr
            trow[T_N] = n_tr
        else:
            trow[T_V] = volume
            trow[T_N] = trade_count if cfg[C_COUNT_MODE] == FROM_COUNT_COLUMN else 0.0
            if cfg[C_T1_MODE] == FROM_BUY_VOLUME:
                trow[T_SV] = 2.0 * buy_volume - volume
            elif cfg[C_T1_MODE] == FROM_BVC:
                if math.isnan(f_bvc):
                    trow[T_SV_UNDEF] = 1.0
                else:
                    trow[T_SV] = volume * (2.0 * f_bvc - 1.0)
        if has_prev:
            rrow[R_AXY] = abs(r) * dv
            rrow[R_AXX] = dv * dv
            rrow[R_HXY] = r * x_hb
            rrow[R_HXX] = x_hb * x_hb
            if dv > 0.0:
                rrow[R_AM] = abs(r) / dv
                rrow[R_AMN] = 1.0
            brow[B_X] = dc
            brow[B_CS] = hl + fs[F_PREV_HL]
            x5 = fs[F_SIGN] * volume
            brow[B_KXY] = dc * x5
            brow[B_KXX] = x5 * x5
            if tau >= 2:
                brow[B_Y] = fs[F_PREV_DC]
                brow[B_XY] = dc * fs[F_PREV_DC]
        rrow[R_P] = trow[T_PSUM]
        rrow[R_N] = n_tr
        brow[B_HL] = hl
        ring_push(t_buf, t_sum, t_meta, trow)
        ring_push(r_buf, r_sum, r_meta, rrow)
        ring_push(b_buf, b_sum, b_meta, brow)
        vrow[0] = vol_tr if has_trades else volume
        vrow[1] = volume
        ring_push(v_buf, v_sum, v_meta, vrow)

        # features
        for j in range(N_FEATURES):
            row_out[j] = nan
        tw = cfg[C_TRADE_W]
        rw = cfg[C_REG_W]
        bw = cfg[C_BAR_W]
        if tau >= tw - 1:
            if t_sum[T_SV_UNDEF] == 0.0 and t_sum[T_V] > 0.0 and cfg[C_T1_MODE] != NONE:
                row_out[0] = t_sum[T_SV] / t_sum[T_V]
            if has_trades and t_sum[T_N] > 0.0:
                row_out[1] = t_sum[T_SB] / t_sum[T_N]
            if has_trades and t_sum[T_KN] >= cfg[C_KYLE_MIN] and t_sum[T_KXX] > 0.0:
                row_out[2] = t_sum[T_KXY] / t_sum[T_KXX]
            if has_trades and t_sum[T_RN] >= 2.0 and t_sum[T_N] > 0.0:
                n = t_sum[T_RN]
                cov = (t_sum[T_RXY] - t_sum[T_RX] * t_sum[T_RY] / n) / (n - 1.0)
                row_out[8] = 2.0 * math.sqrt(max(0.0, -cov)) / (t_sum[T_PSUM] / t_sum[T_N])
            if cfg[C_COUNT_MODE] != NONE and t_sum[T_N] > 0.0 and t_sum[T_V] > 0.0:
                row_out[10] = math.log(t_sum[T_V] / t_sum[T_N])
            if has_trades and t_sum[T_SN] >= 2.0:
                n = t_sum[T_SN]
                sxy = t_sum[T_SXY] - t_sum[T_SX] * t_sum[T_SY] / n
                sxx = t_sum[T_SXX] - t_sum[T_SX] * t_sum[T_SX] / n
                syy = t_sum[T_SYY] - t_sum[T_SY] * t_sum[T_SY] / n
                if sxx > 0.0 and syy > 0.0:
                    row_out[12] = sxy / math.sqrt(sxx * syy)
        if tau >= rw:
            if r_sum[R_AXX] > 0.0 and cfg[C_DV_MODE] != NONE:
                row_out[3] = r_sum[R_AXY] / r_sum[R_AXX]
            if has_trades and r_sum[R_HXX] > 0.0:
                row_out[4] = r_sum[R_HXY] / r_sum[R_HXX]
            if r_sum[R_AMN] > 0.0:
                row_out[18] = r_sum[R_AM] / r_sum[R_AMN]
        if has_trades and tau >= rw - 1 and r_sum[R_N] > 0.0:
            det = r_sum[R_QQ] * r_sum[R_CC] - r_sum[R_QC] * r_sum[R_QC]
            if det != 0.0:
                a = (r_sum[R_QP] * r_sum[R_CC] - r_sum[R_QC] * r_sum[R_CP]) / det
                c = (r_sum[R_QQ] * r_sum[R_CP] - r_sum[R_QC] * r_sum[R_QP]) / det
                row_out[6] = 2.0 * a / (r_sum[R_P] / r_sum[R_N])
                if a != 0.0:
                    row_out[7] = c / a
        if cfg[C_T6_MODE] != NONE and vp_meta[0, 1] >= n_buckets:
            row_out[5] = vp_sum[0, 0] / vp_sum[0, 1]
        if vp_meta[1, 1] >= n_buckets:
            row_out[19] = vp_sum[1, 0] / vp_sum[1, 1]
        if has_trades:
            row_out[9] = math.log(1.0 + n_tr)
            if n_tr > 0:
                vwap = dv_tr / vol_tr
                row_out[11] = (close - vwap) / vwap
        elif cfg[C_COUNT_MODE] == FROM_COUNT_COLUMN:
            row_out[9] = math.log(1.0 + trade_count)
        if tau >= bw + 1:
            cov = (b_sum[B_XY] - b_sum[B_X] * b_sum[B_Y] / bw) / (bw - 1.0)
            row_out[13] = 2.0 * math.sqrt(max(0.0, -cov))
            if dv > 0.0:
                row_out[14] = row_out[13] / dv
        if tau >= bw:
            beta = b_sum[B_CS] / bw
            h2 = max(high, fs[F_PREV_H])
            l2 = min(low, fs[F_PREV_L])
            log_hl2 = math.log(h2 / l2)
            gamma = log_hl2 * log_hl2
            root_beta = math.sqrt(beta)
            root_gamma = math.sqrt(gamma / CS_DEN)
            alpha = max((SQRT2 - 1.0) * root_beta / CS_DEN - root_gamma, 0.0)
            e_alpha = math.exp(alpha)
            row_out[15] = 2.0 * (e_alpha - 1.0) / (1.0 + e_alpha)
            sigma = BP_A * root_beta / (K2 * CS_DEN) + root_gamma / K2
            row_out[16] = max(sigma, 0.0)
            if b_sum[B_KXX] > 0.0:
                row_out[17] = b_sum[B_KXY] / b_sum[B_KXX]
        if tau >= bw - 1:
            row_out[20] = math.sqrt(b_sum[B_HL] / (4.0 * LN2 * bw))

        fs[F_PREV_C] = close
        fs[F_PREV_LOGC] = log_c
        fs[F_PREV_DC] = dc
        fs[F_PREV_H] = high
        fs[F_PREV_L] = low
        fs[F_PREV_HL] = hl
        ist[I_TAU] = tau + 1


microstructure_run = kernel()(microstructure_run_python)
