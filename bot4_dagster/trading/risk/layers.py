"""The eight layers and :func:`evaluate`, which composes them so that no layer can increase size."""

# Hot path: plain comparisons rather than min()/max() (in CPython 3.11 a call costs ~90 ns, a
# comparison ~20 ns, and one evaluation has a 20 µs budget).
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..clock import iso, to_ns
from ..instrument import FloatFilters, Instrument
from ..vocabulary import DenialCode, Side
from .config import _FLIP_TOLERANCE, INF
from .inputs import SIGNALS, AccountState, MarketState, TradeProposal, _assess
from .sizing import _kelly, _room, _shrunk, drawdown_multiplier, floor_on_grid
from .state import RiskState
from .trace import RiskDecision, _Why, _why

# ------------------------------------------------------------------------------- the layers


class _Ctx:
    """Per-evaluation facts several layers share, computed once."""

    __slots__ = ("acct", "cfg", "fee_unit", "flt", "held", "mkt", "pr", "sign", "slip", "st",
                 "stop_distance", "t")

    def __init__(self, pr: TradeProposal, acct: AccountState, mkt: MarketState,
                 flt: FloatFilters, st: RiskState, t: int) -> None:
        self.pr, self.acct, self.mkt, self.flt, self.st, self.t = pr, acct, mkt, flt, st, t
        self.cfg = st.config
        self.sign = 1 if pr.side is Side.BUY else -1
        self.held = acct.positions.get(pr.instrument, 0.0)
        self.stop_distance = abs(pr.entry - pr.stop) if pr.stop is not None else INF
        self.slip = self.cfg.spread_slippage_share * pr.spread + pr.impact
        self.fee_unit = 2.0 * pr.fee_rate * pr.entry  # round-turn fees per unit


_Out = tuple[float, _Why, tuple[Any, ...], DenialCode | None]
_L1_KEYS = ("p", "bucket_p", "n", "p_hat", "b", "f_star", "k", "f_cap", "f", "equity",
            "stop_distance")
_L1_OK = _why("f = min(k·f*, cap) = min({k:g}·{f_star:.4f}, {f_cap:.2%}) = {f:.3%} of equity "
              "at risk; p̂={p_hat:.4f} (p={p:.4f}, bucket {bucket_p:.4f} n={n}), b={b:.3f}",
              *_L1_KEYS, "q1")
_L1_NO_EDGE = _why("no edge: f* = p̂ − (1−p̂)/b = {f_star:.4f} ≤ 0 (p̂={p_hat:.4f}, b={b:.3f})",
                   *_L1_KEYS)
_L1_NO_STOP = _why("no stop-loss: the risk to the stop is undefined")


def _l1_kelly(c: _Ctx, size: float) -> _Out:
    """p̂ = min(calibrated p, Beta-shrunk bucket hit rate): both must show the edge."""
    pr, cfg = c.pr, c.cfg
    if pr.stop is None:
        return 0.0, _L1_NO_STOP, (), DenialCode.NO_STOP
    assert pr.p is not None and pr.take_profit is not None  # an entry has both (TradeProposal)
    bucket_p = _shrunk(pr.bucket_wins, pr.bucket_trades, cfg.prior_wins, cfg.prior_losses)
    p_hat = pr.p if pr.p < bucket_p else bucket_p
    b = (abs(pr.take_profit - pr.entry) - c.fee_unit) / (c.stop_distance + c.fee_unit + c.slip)
    f_star = _kelly(p_hat, b) if b > 0 else -INF
    f_cap = cfg.f_cap
    if pr.bucket_trades < cfg.min_bucket_trades and cfg.thin_bucket_f_cap < f_cap:
        f_cap = cfg.thin_bucket_f_cap
    f = cfg.kelly_fraction * f_star
    if f > f_cap:
        f = f_cap
    values = (pr.p, bucket_p, pr.bucket_trades, p_hat, b, f_star, cfg.kelly_fraction, f_cap, f,
              c.acct.equity, c.stop_distance)
    if not f > 0:
        return 0.0, _L1_NO_EDGE, values, DenialCode.NO_EDGE
    q1 = f * c.acct.equity / c.stop_distance
    return q1, _L1_OK, (*values, q1), None


_L2 = _why("budget {r_max:.2%} of equity = {budget:,.2f} over stop {stop_distance:.6g} + slip "
           "{slip:.6g} + fees {fee_unit:.6g} per unit → q2 = {q2:.6g}",
           "r_max", "budget", "stop_distance", "slip", "fee_unit", "q2")


def _l2_budget(c: _Ctx, size: float) -> _Out:
    # q2 = (r_max·Eq − 2·fee_rate·q·E)/(|E − sl| + slip): the notional is q·E, so solve for q.
    budget = c.cfg.r_max * c.acct.equity
    q2 = budget / (c.stop_distance + c.slip + c.fee_unit)
    return q2, _L2, (c.cfg.r_max, budget, c.stop_distance, c.slip, c.fee_unit, q2), None


_L3_KEYS = ("sigma", "v_pos", "max_leverage", "q_vol", "q_lev")
_L3_VOL = _why("1σ daily move {sigma:.2%} may cost {v_pos:.2%} of equity → q3 = {q_vol:.6g}",
               *_L3_KEYS)
_L3_LEV = _why("leverage cap {max_leverage:g}x of equity (vol target allows {q_vol:.6g})",
               *_L3_KEYS)


def _l3_vol_target(c: _Ctx, size: float) -> _Out:
    cfg, eq, e = c.cfg, c.acct.equity, c.pr.entry
    sigma = c.mkt.vol(c.pr.instrument)
    q_vol = cfg.v_pos * eq / (sigma * e)
    q_lev = cfg.max_leverage * eq / e
    values = (sigma, cfg.v_pos, cfg.max_leverage, q_vol, q_lev)
    return (q_vol, _L3_VOL, values, None) if q_vol <= q_lev else (q_lev, _L3_LEV, values, None)


_L4 = _why("instrument room {instrument_room:,.2f} (holds {held:,.2f}, cap "
           "{instrument_cap:,.2f}); order cap {order_cap:,.2f}; max qty {max_qty:g}",
           "held", "instrument_cap", "instrument_room", "order_cap", "max_qty")
_L4_TICK = _why("entry {entry:g} is not a multiple of tick {tick:g}", "entry", "tick")


def _l4_limits(c: _Ctx, size: float) -> _Out:
    cfg, flt, e, eq = c.cfg, c.flt, c.pr.entry, c.acct.equity
    ticks = e / flt.tick
    off = abs(ticks - math.floor(ticks + 0.5))
    if off > 1e-6 and off > 1e-15 * ticks:
        return 0.0, _L4_TICK, (e, flt.tick), DenialCode.PRICE_NOT_ON_TICK
    instrument_cap = cfg.max_instrument_share * eq
    room = _room(instrument_cap, c.held, c.sign)
    order_cap = cfg.max_order_share * eq
    if flt.max_notional < order_cap:
        order_cap = flt.max_notional
    q4 = (room if room < order_cap else order_cap) / e
    values = (c.held, instrument_cap, room, order_cap, flt.max_qty)
    return (q4 if q4 < flt.max_qty else flt.max_qty), _L4, values, None


_L4R_KEYS = ("held", "mark", "max_notional", "max_qty", "reduces")
_L4R_NONE = _why("no {reduces} position to reduce (holds {held:,.2f})", *_L4R_KEYS)
_L4R = _why("reduce-only: at most the position {position_qty:.6g} and the venue's per-order "
            "limits", *_L4R_KEYS, "position_qty")


def _l4_reduce_only(c: _Ctx, size: float) -> _Out:
    """Exits: capped at the position (no flip) and the venue's limits, not the equity shares."""
    flt, e = c.flt, c.pr.entry
    mark = c.mkt.mark(c.pr.instrument)
    values = (c.held, mark, flt.max_notional, flt.max_qty,
              "short" if c.sign > 0 else "long")
    if not c.sign * c.held < 0:
        return 0.0, _L4R_NONE, values, DenialCode.REDUCE_ONLY_WOULD_INCREASE_POSITION
    position_qty = abs(c.held) / mark * (1.0 + _FLIP_TOLERANCE)
    cap = min(position_qty, flt.max_notional / e, flt.max_qty)
    return cap, _L4R, (*values, position_qty), None


_L5_KEYS = ("gross", "gross_cap", "net", "net_cap", "sigma_p", "sigma_max", "cluster",
            "cluster_rho", "cluster_gross", "cluster_cap", "x_gross", "x_net", "x_sigma",
            "x_cluster", "limit", "room")
_L5 = {
    "gross": _why("gross {gross:,.2f} of {gross_cap:,.2f} allowed → room {room:,.2f}",
                  *_L5_KEYS),
    "net": _why("net {net:+,.2f} of ±{net_cap:,.2f} allowed → room {room:,.2f}", *_L5_KEYS),
    "sigma": _why("ex-ante σ_p {sigma_p:.3%}/day vs σ_max {sigma_max:.2%} → room {room:,.2f}",
                  *_L5_KEYS),
    "cluster": _why("cluster {cluster} (ρ>{cluster_rho:g}) holds {cluster_gross:,.2f} of "
                    "{cluster_cap:,.2f} allowed → room {room:,.2f}", *_L5_KEYS),
}


def _extend_cluster(members: list[str], rest: list[str],
                    rho: Mapping[str, Mapping[str, float]], threshold: float) -> list[str]:
    """Single linkage beyond the traded instrument's direct links (ρ > threshold, transitive)."""
    i = 1
    while i < len(members) and rest:
        row = rho[members[i]]
        keep = []
        for b in rest:
            if row[b] > threshold:
                members.append(b)
            else:
                keep.append(b)
        rest = keep
        i += 1
    return members


def _portfolio_scan(c: _Ctx, names: tuple[str, ...], rho: Mapping[str, Mapping[str, float]],
                    vols: Mapping[str, float]) -> tuple[float, float, list[str]]:
    """(σ_p now, most notional the trade may add with σ_p ≤ max(σ_max, σ_p now), the traded
    instrument's cluster), in one pass over the held positions.

    σ_p² is a quadratic a·u² + 2h·u + v in the added weight u = x/Eq; its larger root at the
    target is the cap. This enforces σ_max exactly where the linear "scale by σ_max/σ_p" rule
    only approximates it, and never blocks a trade that lowers σ_p.
    """
    eq, inst, pos, threshold = c.acct.equity, c.pr.instrument, c.acct.positions, c.cfg.cluster_rho
    var = cross = 0.0
    done: list[tuple[str, float]] = []
    members: list[str] = [inst]
    rest: list[str] = []
    for a in names:
        xa = pos[a] / eq * vols[a]  # weight · daily vol
        term = xa * xa
        if done:
            row = rho[a]
            for b, xb in done:
                term += 2.0 * xa * xb * row[b]
        var += term
        if a == inst:
            cross += xa
        else:
            r = rho[inst][a]
            cross += xa * r
            (members if r > threshold else rest).append(a)
        done.append((a, xa))
    if len(members) > 1 and rest:
        members = _extend_cluster(members, rest, rho, threshold)
    sigma_i = vols[inst]
    a2, h = sigma_i * sigma_i, c.sign * sigma_i * cross
    target = c.cfg.sigma_max * c.cfg.sigma_max
    if var > target:
        target = var
    u = (-h + math.sqrt(h * h + a2 * (target - var))) / a2
    return (math.sqrt(var) if var > 0.0 else 0.0), (u * eq if u > 0.0 else 0.0), members


def _missing_market_data(mkt: MarketState, inst: str, names: tuple[str, ...]) -> None:
    """Slow path after a KeyError in L5: raise the ValueError that names what is missing."""
    everyone = (inst, *names)
    for i, a in enumerate(everyone):
        mkt.vol(a)
        for b in everyone[i + 1:]:
            mkt.correlation(a, b)


def _l5_portfolio(c: _Ctx, size: float) -> _Out:
    cfg, acct, mkt, inst = c.cfg, c.acct, c.mkt, c.pr.instrument
    eq, sign, held, names = acct.equity, c.sign, c.held, acct.held
    try:
        sigma_p, x_sigma, members = _portfolio_scan(c, names, mkt.rho, mkt.vols)
    except KeyError:
        _missing_market_data(mkt, inst, names)
        raise
    gross_cap, net_cap, cluster_cap = cfg.max_gross * eq, cfg.max_net * eq, cfg.max_cluster * eq
    pos = acct.positions
    cluster_gross = abs(held)
    for n in members[1:]:
        cluster_gross += abs(pos[n])
    limit, room = "gross", _room(gross_cap - (acct.gross - abs(held)), held, sign)
    x_gross = room
    x_net = (net_cap if net_cap > abs(acct.net) else abs(acct.net)) - sign * acct.net
    if x_net < room:
        limit, room = "net", x_net
    if x_sigma < room:
        limit, room = "sigma", x_sigma
    x_cluster = _room(cluster_cap - (cluster_gross - abs(held)), held, sign)
    if x_cluster < room:
        limit, room = "cluster", x_cluster
    values = (acct.gross, gross_cap, acct.net, net_cap, sigma_p, cfg.sigma_max,
              "+".join(members), cfg.cluster_rho, cluster_gross, cluster_cap, x_gross, x_net,
              x_sigma, x_cluster, limit, room)
    return room / c.pr.entry, _L5[limit], values, None


_L6_KEYS = ("drawdown", "start", "full", "floor", "m6")
_L6 = _why("drawdown {drawdown:.2%}: full size below {start:.0%}, linear to {floor:g} at "
           "{full:.0%} → m6 = {m6:.3f}", *_L6_KEYS)
_L6_GUARD = _why("StoplossGuard: ≥ {trades} stop-loss exits in {candles} candles, locked until "
                 "{until}", *_L6_KEYS, "until", "trades", "candles")
_L6_COOLDOWN = _why("cooldown after the last {instrument} exit until {until}", *_L6_KEYS,
                    "until", "instrument")


def _l6_drawdown(c: _Ctx, size: float) -> _Out:
    cfg = c.cfg
    dd = c.acct.drawdown
    m6 = drawdown_multiplier(dd, cfg)
    values = (dd, cfg.dd_scale_start, cfg.dd_reducing, cfg.dd_floor_multiplier, m6)
    st = c.st
    if c.t >= st._sl_lock_until and c.pr.instrument not in st._cooldowns:
        return m6, _L6, values, None
    lock = st.entry_lock(c.t, c.pr.instrument)
    if lock is None:
        return m6, _L6, values, None
    code, until = lock
    if code is DenialCode.STOPLOSS_GUARD:
        return 0.0, _L6_GUARD, (*values, iso(until), cfg.sl_guard_trades,
                                cfg.sl_guard_lookback_candles), code
    return 0.0, _L6_COOLDOWN, (*values, iso(until), c.pr.instrument), code


_L7_KEYS = (*SIGNALS, "S", "fired", "m7")
_L7_CALM = _why("no crisis signal (worst at {worst:.0%} of its threshold) → m7 = 1", *_L7_KEYS,
                "worst")
_L7_ONE = _why("one crisis signal ({fired}) → m7 = {m7:g}", *_L7_KEYS)
_L7_CRISIS = _why("CRISIS: signals {fired} (S={S}) → m7 = 0", *_L7_KEYS)
_L7_LATCHED = _why("CRISIS: state latched, not yet 60 calm minutes → m7 = 0", *_L7_KEYS)


def _l7_crisis(c: _Ctx, size: float) -> _Out:
    sev, fired, crisis = _assess(c.mkt.signals, c.cfg)
    base = (*sev, len(fired), ",".join(fired) or "none")
    if crisis:
        return 0.0, _L7_CRISIS, (*base, 0.0), DenialCode.CRISIS
    if c.st.in_crisis:
        return 0.0, _L7_LATCHED, (*base, 0.0), DenialCode.CRISIS
    if len(fired) == 1:
        m7 = c.cfg.single_signal_multiplier
        return m7, _L7_ONE, (*base, m7), None
    return 1.0, _L7_CALM, (*base, 1.0, max(sev)), None


_L4F_KEYS = ("step", "q", "notional", "min_notional", "min_qty")
_L4F = _why("floored to step {step:g}: notional {notional:,.2f} ≥ min {min_notional:g}",
            *_L4F_KEYS)
_L4F_NOTIONAL = _why("floored to {q:g}: notional {notional:,.2f} < minNotional {min_notional:g},"
                     " denied (never rounded up)", *_L4F_KEYS)
_L4F_QTY = _why("floored to {q:g} < min qty {min_qty:g}", *_L4F_KEYS)
_L4F_ZERO = _why("nothing left after the clamps (floored to 0)", *_L4F_KEYS)


def _l4f_floor(c: _Ctx, size: float) -> _Out:
    flt = c.flt
    q = floor_on_grid(size, flt.step_decimal, flt.grid)
    notional = q * c.pr.entry
    values = (flt.step, q, notional, flt.min_notional, flt.min_qty)
    if notional < flt.min_notional:
        return 0.0, _L4F_NOTIONAL, values, DenialCode.NOTIONAL_BELOW_MIN
    if q < flt.min_qty:
        return 0.0, _L4F_QTY, values, DenialCode.QTY_BELOW_MIN
    if q == 0.0:
        return 0.0, _L4F_ZERO, values, DenialCode.ZERO_SIZE
    return q, _L4F, values, None


def _l8_gate(c: _Ctx) -> tuple[DenialCode, str] | None:
    """Trading-state gate; instantaneous triggers count even before the state has seen them."""
    st, acct, cfg = c.st, c.acct, c.cfg
    if st.halt is not None:
        return st.halt
    if acct.session_loss >= cfg.kill_switch_loss:
        return DenialCode.KILL_SWITCH, f"kill switch: session loss {acct.session_loss:.2%}"
    if acct.drawdown >= cfg.dd_halt:
        return DenialCode.TRADING_HALTED, f"drawdown {acct.drawdown:.2%} ≥ {cfg.dd_halt:.0%}"
    if c.pr.reduce_only:
        return None
    why = st._reasons(c.t) if st._reducing(c.t) else []
    if acct.drawdown >= cfg.dd_reducing:
        why.append(f"drawdown {acct.drawdown:.2%} ≥ {cfg.dd_reducing:.0%}")
    if acct.daily_loss >= cfg.daily_loss_reducing:
        why.append(f"daily loss {acct.daily_loss:.2%} ≥ {cfg.daily_loss_reducing:.0%}")
    if why:
        return DenialCode.TRADING_STATE_REDUCING, "REDUCING, order adds risk: " + "; ".join(why)
    return None


_L8_KEYS = ("mark", "deviation", "band", "per_second", "max_per_second", "per_minute",
            "max_per_minute")
_L8 = _why("price {deviation:.2%} from mark (band {band:.0%}); {per_second}/{max_per_second} "
           "submits in 1 s, {per_minute}/{max_per_minute} in 60 s; state allows it", *_L8_KEYS)
_L8_STATE = _why("{state}", *_L8_KEYS, "state")
_L8_BAND = _why("price {deviation:.2%} from mark {mark:g} > band {band:.0%}", *_L8_KEYS)
_L8_RATE = _why("{per_second} submits in 1 s (max {max_per_second}), {per_minute} in 60 s "
                "(max {max_per_minute})", *_L8_KEYS)


def _l8_sanity(c: _Ctx, size: float) -> _Out:
    cfg, t, st = c.cfg, c.t, c.st
    mark = c.mkt.mark(c.pr.instrument)
    deviation = abs(c.pr.entry - mark) / mark
    per_second, per_minute = st.submit_counts(t)
    values = (mark, deviation, cfg.price_band, per_second, cfg.max_submits_per_second,
              per_minute, cfg.max_submits_per_minute)
    gate = _l8_gate(c)
    if gate is not None:
        return 0.0, _L8_STATE, (*values, gate[1]), gate[0]
    if deviation > cfg.price_band:
        return 0.0, _L8_BAND, values, DenialCode.PRICE_BAND
    if per_second >= cfg.max_submits_per_second or per_minute >= cfg.max_submits_per_minute:
        return 0.0, _L8_RATE, values, DenialCode.RATE_LIMIT_EXCEEDED
    return size, _L8, values, None


_SKIPPED = _why("not applied: reduce-only orders remove risk")


def _skipped(c: _Ctx, size: float) -> _Out:
    return INF, _SKIPPED, (), None


_CAP, _MULT, _FLOOR, _GATE = 0, 1, 2, 3
_Layer = tuple[str, str, int, Callable[[_Ctx, float], _Out]]
_ENTRY_PLAN: tuple[_Layer, ...] = (
    ("L1", "edge-gated Kelly", _CAP, _l1_kelly),
    ("L2", "risk budget", _CAP, _l2_budget),
    ("L3", "volatility target", _CAP, _l3_vol_target),
    ("L4", "instrument & order limits", _CAP, _l4_limits),
    ("L5", "portfolio exposure", _CAP, _l5_portfolio),
    ("L6", "drawdown breaker", _MULT, _l6_drawdown),
    ("L7", "crisis detector", _MULT, _l7_crisis),
    ("L4f", "step floor & minimums", _FLOOR, _l4f_floor),
    ("L8", "pre-trade sanity", _GATE, _l8_sanity),
)
_REDUCE_PLAN: tuple[_Layer, ...] = tuple(
    (layer, name, _CAP, _l4_reduce_only) if layer == "L4"
    else (layer, name, _CAP, _skipped) if kind in (_CAP, _MULT) else (layer, name, kind, fn)
    for layer, name, kind, fn in _ENTRY_PLAN)


def evaluate(proposal: TradeProposal, account: AccountState, market: MarketState,
             instrument: Instrument, state: RiskState,
             now: int | datetime) -> RiskDecision:
    """Run the eight layers on one proposal; never mutates ``state``.

    ``instrument`` gives the venue filters (the order layer's type, read through its float
    view); ``now`` is int nanoseconds since the epoch or an aware datetime. Size starts at the
    requested quantity (unbounded for entries without one; reduce-only exits are then capped at
    the whole position); each layer can only lower it; the first denial ends the run with
    quantity 0. Call ``state.record_submit`` once the order is actually sent.
    """
    if not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be an Instrument, got {type(instrument).__name__}")
    c = _Ctx(proposal, account, market, instrument.floats, state, to_ns(now))
    plan = _REDUCE_PLAN if proposal.reduce_only else _ENTRY_PLAN
    size = proposal.quantity if proposal.quantity is not None else INF
    rows: list[tuple] = []
    append = rows.append
    binding = "REQ"
    code = None
    for layer, name, kind, fn in plan:
        value, why, values, code = fn(c, size)
        if code is not None:
            append((layer, name, value, size, 0.0, why, values, code))
            binding, size = layer, 0.0
            break
        # The only place sizes change: caps and the floor take the min (a NaN cap reads as 0),
        # multipliers are clipped to [0, 1], the gate passes the size through.
        if kind == _MULT:
            after = size * (value if 0.0 <= value <= 1.0 else (1.0 if value > 1.0 else 0.0))
        elif kind == _GATE or value >= size:
            after = size
        else:
            after = value if value > 0.0 else 0.0  # a NaN cap reads as 0
        append((layer, name, value, size, after, why, values, None))
        if after < size and kind != _FLOOR:
            binding = layer
        size = after
    return RiskDecision(proposal, tuple(rows), size, code, binding)
