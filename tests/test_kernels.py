"""Kernels against their Python twins and against pandas, on the real data in ../shared/data."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numba.core.dispatcher import Dispatcher

from bot4_dagster.kernels import (
    NUMBA_ENABLED,
    aggregate_trades,
    aggregate_trades_python,
    kernel,
    log_returns,
    log_returns_python,
    pct_returns,
    pct_returns_python,
    trades_to_bars,
)
from bot4_dagster.kernels.cpu import (
    cpu_info,
    describe_cpu,
    kernel_asm,
    vector_arith_counts,
    widest_vector_register,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FTX_BARS = DATA / "ftx_btc-perp_1m_2022-01.csv.gz"
BINANCE_TRADES = DATA / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
MINUTE_NS = 60_000_000_000
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def closes() -> np.ndarray:
    return pd.read_csv(FTX_BARS)["close"].to_numpy(np.float64)


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    """Tardis trades: µs timestamps -> int64 ns, aggressor side -> 1 (buy) / 0 (sell)."""
    df = pd.read_csv(BINANCE_TRADES)
    return pd.DataFrame({
        "ts_ns": df["timestamp"].to_numpy(np.int64) * 1000,
        "price": df["price"].to_numpy(np.float64),
        "amount": df["amount"].to_numpy(np.float64),
        "side": (df["side"] == "buy").to_numpy(np.int8),
    })


def _bars_args(trades: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(trades[c].to_numpy() for c in ("ts_ns", "price", "amount", "side"))


def _run_aggregate(fn, trades: pd.DataFrame, bar_ns: int) -> tuple[int, list[np.ndarray]]:
    n = len(trades)
    outs = [np.empty(n, np.int64)] + [np.empty(n) for _ in range(6)] + [np.empty(n, np.int64)]
    n_bars = fn(*_bars_args(trades), bar_ns, *outs)
    return n_bars, [o[:n_bars] for o in outs]


def test_numba_is_on_in_this_process() -> None:
    assert NUMBA_ENABLED
    for k in (pct_returns, log_returns, aggregate_trades):
        assert isinstance(k, Dispatcher)
    assert pct_returns.py_func is pct_returns_python


def test_kernel_passes_options_and_defaults() -> None:
    assert pct_returns.targetoptions["nogil"] is True
    assert "fastmath" not in pct_returns.targetoptions
    assert pct_returns._cache.__class__.__name__ == "FunctionCache"  # cache=True by default
    fast = kernel(cache=False, fastmath=True)(log_returns_python)
    assert fast.targetoptions["fastmath"]


def test_pct_returns_twin_and_pandas(closes: np.ndarray) -> None:
    ours = np.empty_like(closes)
    twin = np.empty_like(closes)
    pct_returns(closes, ours)
    pct_returns_python(closes, twin)
    np.testing.assert_array_equal(ours, twin)
    assert np.isnan(ours[0]) and np.isfinite(ours[1:]).all()
    expected = pd.Series(closes).pct_change().to_numpy() * 100
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_log_returns_twin_and_numpy(closes: np.ndarray) -> None:
    ours = np.empty_like(closes)
    twin = np.empty_like(closes)
    log_returns(closes, ours)
    log_returns_python(closes, twin)
    # libm (numba) and numpy's SIMD log may differ in the last ulp.
    np.testing.assert_allclose(ours, twin, rtol=1e-14, atol=1e-17, equal_nan=True)
    assert np.isnan(ours[0])
    np.testing.assert_allclose(ours[1:], np.log(closes[1:] / closes[:-1]), rtol=1e-14, atol=1e-17)


def test_returns_edge_cases() -> None:
    for fn in (pct_returns, pct_returns_python, log_returns, log_returns_python):
        out = np.empty(0)
        fn(np.empty(0), out)
        one = np.array([5.0])
        out1 = np.empty(1)
        fn(one, out1)
        assert np.isnan(out1[0])
    out = np.empty(2)
    with np.errstate(divide="ignore"):
        pct_returns(np.array([0.0, 1.0]), out)  # numpy semantics, not ZeroDivisionError
    assert np.isinf(out[1])


def test_aggregate_trades_twin(trades: pd.DataFrame) -> None:
    for bar_ns in (1_000_000_000, MINUTE_NS, 5 * MINUTE_NS):
        n_jit, jit = _run_aggregate(aggregate_trades, trades, bar_ns)
        n_py, py = _run_aggregate(aggregate_trades_python, trades, bar_ns)
        assert n_jit == n_py > 0
        for a, b in zip(jit, py, strict=True):
            np.testing.assert_array_equal(a, b)


def _pandas_bars(trades: pd.DataFrame, rule: str) -> pd.DataFrame:
    df = trades.set_index(pd.to_datetime(trades["ts_ns"], unit="ns"))
    df["buy_amount"] = df["amount"].where(df["side"] == 1, 0.0)
    r = df.resample(rule)
    out = pd.DataFrame({
        "open": r["price"].first(), "high": r["price"].max(), "low": r["price"].min(),
        "close": r["price"].last(), "volume": r["amount"].sum(),
        "buy_volume": r["buy_amount"].sum(), "count": r["price"].count(),
    })
    return out[out["count"] > 0]


def test_trades_to_bars_matches_pandas_resample(trades: pd.DataFrame) -> None:
    bars = trades_to_bars(*_bars_args(trades), MINUTE_NS)
    expected = _pandas_bars(trades, "1min")
    assert len(bars["ts"]) == len(expected) == 126  # 00:00 .. 02:05, no empty minute emitted
    np.testing.assert_array_equal(bars["ts"], expected.index.asi8)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[col], expected[col].to_numpy())
    for col in ("volume", "buy_volume"):  # pandas sums with Kahan compensation
        np.testing.assert_allclose(bars[col], expected[col].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(bars["count"], expected["count"].to_numpy())
    assert bars["count"].sum() == len(trades)
    assert bars["ts"].dtype == np.int64 and bars["count"].dtype == np.int64


def test_trades_to_bars_skips_empty_bars(trades: pd.DataFrame) -> None:
    bars = trades_to_bars(*_bars_args(trades), 1_000_000_000)
    expected = _pandas_bars(trades, "1s")
    span_s = (trades["ts_ns"].iat[-1] - trades["ts_ns"].iat[0]) // 1_000_000_000
    assert len(bars["ts"]) == len(expected) < span_s  # gaps exist and are not emitted
    np.testing.assert_array_equal(bars["ts"], expected.index.asi8)
    np.testing.assert_array_equal(bars["close"], expected["close"].to_numpy())


def test_bar_boundaries_and_pre_epoch_floor() -> None:
    ts = np.array([-1, 0, MINUTE_NS - 1, MINUTE_NS, MINUTE_NS, 3 * MINUTE_NS], dtype=np.int64)
    price = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 6.0])
    amount = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    side = np.array([1, 0, 1, 1, 0, 0], dtype=np.int8)
    for fn in (aggregate_trades, aggregate_trades_python):
        n = len(ts)
        outs = [np.empty(n, np.int64)] + [np.empty(n) for _ in range(6)] + [np.empty(n, np.int64)]
        assert fn(ts, price, amount, side, MINUTE_NS, *outs) == 4
        bar_ts, o, h, lo, c, vol, buy, cnt = (x[:4] for x in outs)
        np.testing.assert_array_equal(bar_ts, [-MINUTE_NS, 0, MINUTE_NS, 3 * MINUTE_NS])
        np.testing.assert_array_equal(o, [1.0, 2.0, 4.0, 6.0])
        np.testing.assert_array_equal(h, [1.0, 3.0, 4.0, 6.0])
        np.testing.assert_array_equal(lo, [1.0, 2.0, 0.5, 6.0])
        np.testing.assert_array_equal(c, [1.0, 3.0, 0.5, 6.0])
        np.testing.assert_array_equal(vol, [1.0, 5.0, 9.0, 6.0])
        np.testing.assert_array_equal(buy, [1.0, 3.0, 4.0, 0.0])
        np.testing.assert_array_equal(cnt, [1, 2, 2, 1])


def test_trades_to_bars_rejects_bad_input(trades: pd.DataFrame) -> None:
    ts, price, amount, side = _bars_args(trades)
    with pytest.raises(ValueError, match="sorted"):
        trades_to_bars(ts[::-1], price, amount, side, MINUTE_NS)
    with pytest.raises(ValueError, match="positive"):
        trades_to_bars(ts, price, amount, side, 0)
    with pytest.raises(ValueError, match="equal length"):
        trades_to_bars(ts, price[:-1], amount, side, MINUTE_NS)
    empty = trades_to_bars(ts[:0], price[:0], amount[:0], side[:0], MINUTE_NS)
    assert all(len(v) == 0 for v in empty.values())


_DISABLED_SCRIPT = """
import sys, numpy as np, pandas as pd
import bot4_dagster.kernels as k
from bot4_dagster.kernels.cpu import cpu_info
assert not k.NUMBA_ENABLED
assert k.pct_returns is k.pct_returns_python
assert k.aggregate_trades is k.aggregate_trades_python
assert type(k.pct_returns).__name__ == "function"
info = cpu_info()
assert info["numba_enabled"] is False and info["kernels_use_zmm"] is False
closes = pd.read_csv(sys.argv[1])["close"].to_numpy(np.float64)
out = np.empty_like(closes)
k.pct_returns(closes, out)
df = pd.read_csv(sys.argv[2])
bars = k.trades_to_bars(df["timestamp"].to_numpy(np.int64) * 1000, df["price"].to_numpy(float),
                        df["amount"].to_numpy(float), (df["side"] == "buy").to_numpy(np.int8),
                        60_000_000_000)
np.savez(sys.argv[3], pct=out, **bars)
"""


def test_disable_numba_switch_runs_python_twins(
    tmp_path: Path, closes: np.ndarray, trades: pd.DataFrame
) -> None:
    target = tmp_path / "disabled.npz"
    proc = subprocess.run(
        [sys.executable, "-c", _DISABLED_SCRIPT, str(FTX_BARS), str(BINANCE_TRADES), str(target)],
        env={**os.environ, "BOT4_DISABLE_NUMBA": "1"}, cwd=REPO, capture_output=True, text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = np.load(target)
    ours = np.empty_like(closes)
    pct_returns(closes, ours)
    np.testing.assert_array_equal(got["pct"], ours)
    bars = trades_to_bars(*_bars_args(trades), MINUTE_NS)
    for key, value in bars.items():
        np.testing.assert_array_equal(got[key], value)


def test_register_scan_on_synthetic_asm() -> None:
    asm = "\tvmovups %zmm0, 64(%rsp)\n\tvmulpd %ymm1, %ymm2, %ymm2\n\tvaddsd %xmm0, %xmm1, %xmm1\n"
    # the zmm spill is not arithmetic; vaddsd is scalar
    assert vector_arith_counts(asm) == {"zmm": 0, "ymm": 1, "xmm": 0}
    assert widest_vector_register(asm) == "ymm"
    assert widest_vector_register("\tvfmadd231pd %zmm3, %zmm1, %zmm0\n") == "zmm"
    assert widest_vector_register("\tret\n") is None


def test_cpu_info_keys_types_and_asm_consistency() -> None:
    info = cpu_info()
    assert info is cpu_info()  # cached
    json.dumps(info)
    assert isinstance(info["cpu_name"], str) and info["cpu_name"]
    assert isinstance(info["logical_cores"], int) and info["logical_cores"] >= 1
    assert isinstance(info["usable_cores"], int) and info["usable_cores"] >= 1
    assert info["usable_cores"] <= info["logical_cores"]
    assert isinstance(info["simd_flags"], list)
    assert isinstance(info["avx512"], bool)
    assert info["avx512"] == ("avx512f" in info["simd_flags"])
    assert info["numba_enabled"] is True
    assert isinstance(info["numba_cpu_name"], str) and info["numba_cpu_name"]
    assert isinstance(info["llvm_host_features_simd"], list)
    assert "numba_cpu_name_env" in info and "numba_cpu_features_env" in info
    assert isinstance(info["kernels_use_zmm"], bool)

    counts = vector_arith_counts(kernel_asm())
    assert info["kernel_vector_arith_counts"] == counts
    assert info["kernels_use_zmm"] == (counts["zmm"] > 0)
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert info["kernel_vector_register"] in ("zmm", "ymm", "xmm")
        assert info["kernel_vector_isa"] in ("AVX-512", "AVX/AVX2", "SSE")
        if info["kernels_use_zmm"]:
            assert info["avx512"] or "avx512f" in (info["numba_cpu_features_env"] or "")
    text = describe_cpu()
    assert info["cpu_name"] in text and str(info["kernel_vector_register"]) in text


def test_cpu_module_prints_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot4_dagster.kernels.cpu"], cwd=REPO, capture_output=True,
        text=True, check=True,
    )
    info = json.loads(proc.stdout)
    assert set(cpu_info()) == set(info)
    assert info["kernels_use_zmm"] == cpu_info()["kernels_use_zmm"]
