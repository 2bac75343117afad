"""The benchmark harness: statistics, ratio direction, goals, JSON, table, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot4_dagster.perf import (
    Benchmark,
    Report,
    Timing,
    compare,
    format_seconds,
    load_report,
    measure,
    parse_goal,
)
from bot4_dagster.perf.harness import format_rate, progress_line, render_table

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("benchmark", "p50", "p95", "p99", "throughput", "reference", "ref p50", "ratio",
           "goal/met")


def _report(*benches: Benchmark) -> Report:
    host = {"cpu_name": "Test CPU", "logical_cores": 2, "usable_cores": 2,
            "kernel_vector_register": "zmm"}
    return Report(benchmarks=list(benches), host=host, git_commit=None)


def test_percentiles_on_known_samples() -> None:
    rng = np.random.default_rng(7)
    samples = rng.permutation(np.arange(1, 101, dtype=float)) * 1e-6  # 1..100 µs, shuffled
    t = Timing(tuple(samples))
    assert t.n == 100
    assert t.p50 == pytest.approx(50.5e-6)
    assert t.p95 == pytest.approx(95.05e-6)
    assert t.p99 == pytest.approx(99.01e-6)
    assert t.mean == pytest.approx(50.5e-6)
    for q, got in ((50, t.p50), (95, t.p95), (99, t.p99)):
        assert got == pytest.approx(np.percentile(samples, q), rel=1e-12)
    skewed = Timing((1.0, 1.0, 1.0, 1.0, 100.0))
    assert skewed.p50 == 1.0 and skewed.mean == pytest.approx(20.8) and skewed.max == 100.0
    single = Timing((3e-3,))
    assert single.p50 == single.p99 == single.mean == 3e-3
    with pytest.raises(ValueError):
        Timing(())


def test_ratio_direction_and_throughput() -> None:
    fast, slow = Timing((1e-3,) * 5), Timing((10e-3,) * 5)
    b = Benchmark(name="x", ours=fast, reference_name="ref", reference=slow, items=1000)
    assert b.ratio == pytest.approx(10.0)  # > 1: we are faster
    assert b.throughput == pytest.approx(1e6)
    worse = Benchmark(name="y", ours=slow, reference_name="ref", reference=fast)
    assert worse.ratio == pytest.approx(0.1) and worse.throughput is None
    assert Benchmark(name="z", ours=fast).ratio is None


def test_goals() -> None:
    ours, ref = Timing((1e-3,) * 3), Timing((25e-3,) * 3)
    assert Benchmark(name="a", ours=ours, reference=ref, goal=">= 20x").met is True
    assert Benchmark(name="a", ours=ours, reference=ref, goal="> 30x").met is False
    assert Benchmark(name="b", ours=ours, goal="p99 < 2 ms").met is True
    assert Benchmark(name="b", ours=ours, goal="< 500 µs").met is False
    assert Benchmark(name="b", ours=ours, goal="p50 <= 1000us").met is True
    assert parse_goal("p99 < 100 µs") == ("p99", "<", pytest.approx(1e-4))
    assert parse_goal(">= 20x") == ("ratio", ">=", 20.0)
    with pytest.raises(ValueError):
        parse_goal("fast please")
    with pytest.raises(ValueError):
        Benchmark(name="c", ours=ours, goal=">= 2x")  # a speed-up goal needs a reference


def test_measure_and_compare_collect_samples() -> None:
    calls = {"ours": 0, "ref": 0}

    def ours() -> None:
        calls["ours"] += 1

    def ref() -> None:
        calls["ref"] += 1
        sum(range(200))

    t = measure(ours, warmup=2, repeat=7)
    assert t.n == 7 and t.number >= 1 and t.p50 > 0
    b = compare("noop", ours, ref, reference_name="sum", repeat=12, items=1, unit="1 call")
    assert b.ours.n == 12 and b.reference is not None and b.reference.n == 12
    assert b.reference_name == "sum" and b.ratio is not None and b.ratio > 0
    t_adaptive = measure(ours, min_time=0.01)
    assert t_adaptive.n >= 5


def test_json_round_trip(tmp_path: Path) -> None:
    b = Benchmark(name="k", group="g", ours=Timing((1e-6, 2e-6, 3e-6)), items=10,
                  unit="10 rows", reference_name="ref", reference=Timing((4e-6,) * 3),
                  goal=">= 2x", notes="n")
    report = _report(b)
    path = report.to_json(tmp_path / "deep" / "r.json")
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind
    loaded = load_report(path)
    assert loaded == json.loads(json.dumps(report.to_dict()))
    row = loaded["benchmarks"][0]
    assert row["ratio"] == pytest.approx(2.0) and row["met"] is True
    assert row["ours"]["p50"] == pytest.approx(2e-6) and row["ours"]["n"] == 3
    assert {"schema", "created", "git_commit", "versions", "host"} <= loaded.keys()
    assert load_report(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert load_report(tmp_path / "bad.json") is None


def test_table_has_all_columns() -> None:
    with_ref = Benchmark(name="pct", group="kernels", ours=Timing((15e-6,) * 3), items=45_031,
                         unit="45,031 rows", reference_name="pandas",
                         reference=Timing((450e-6,) * 3), goal=">= 20x")
    alone = Benchmark(name="latency", ours=Timing((2.5,) * 3), goal="p99 < 1 s")
    report = _report(with_ref, alone)
    text = report.table()
    lines = text.splitlines()
    header = lines[1]
    for col in COLUMNS:
        assert col in header
    assert "Test CPU" in lines[0]
    assert "kernels/pct" in text and "15 µs" in text and "450 µs" in text and "30x" in text
    assert "3G rows/s" in text and ">= 20x yes" in text and "p99 < 1 s NO" in text
    assert "2.5 s" in text
    rule = lines[2]
    assert set(rule) <= {"-", " "} and all(len(line) <= len(rule) for line in lines[1:])
    assert render_table(json.loads(json.dumps(report.to_dict()))) == text  # works on loaded JSON


def test_formatting_units() -> None:
    assert format_seconds(850e-9) == "850 ns"
    assert format_seconds(15.2e-6) == "15.2 µs"
    assert format_seconds(4.46e-3) == "4.46 ms"
    assert format_seconds(2.0) == "2 s"
    assert format_seconds(None) == "-"
    assert format_rate(2.24e8, "1,000,000 trades") == "224M trades/s"
    assert format_rate(12.0, "") == "12 items/s"


def test_report_filter() -> None:
    report = _report()
    report.select = "pct"
    assert report.wants("pct_returns", "kernels") and not report.wants("trades_to_bars")
    assert report.wants("anything", "pct_group")
    assert report.measure("trades_to_bars", lambda: None, repeat=3) is None
    assert report.measure("pct_returns", lambda: None, repeat=3) is not None
    assert len(report.benchmarks) == 1


def test_progress_line() -> None:
    with_ref = Benchmark(name="pct", group="kernels", ours=Timing((15e-6, 15e-6, 16e-6, 40e-6)),
                         reference_name="pandas pct_change()", reference=Timing((450e-6,) * 4),
                         goal=">= 20x")
    assert progress_line(with_ref) == (
        f"kernels/pct: p50 15.5 µs, p99 {format_seconds(with_ref.ours.p99)}, "
        f"29x vs pandas pct_change(), goal >= 20x: met")
    missed = Benchmark(name="submit", group="orders", ours=Timing((10e-6, 30e-6)),
                       goal="p99 <= 20 µs")
    assert progress_line(missed) == ("orders/submit: p50 20 µs, p99 29.8 µs, goal p99 <= 20 µs: "
                                     "not met")
    bare = Benchmark(name="alone", ours=Timing((2.5,)))
    assert progress_line(bare) == "alone: p50 2.5 s, p99 2.5 s"


def test_report_calls_on_record_as_each_benchmark_is_recorded() -> None:
    seen: list[tuple[str, int]] = []
    report = _report()
    report.select = "kept"
    report.on_record = lambda b: seen.append((b.name, len(report.benchmarks)))
    report.measure("kept_a", lambda: None, repeat=3)
    report.measure("dropped", lambda: None, repeat=3)  # filtered out: no callback
    report.compare("kept_b", lambda: None, lambda: None, reference_name="noop", repeat=3)
    report.add(Benchmark(name="kept_c", ours=Timing((1e-6,))))
    assert seen == [("kept_a", 1), ("kept_b", 2), ("kept_c", 3)]  # called after it is stored
    assert "on_record" not in report.to_dict() and "on_record" not in repr(report)
    assert [b.name for b in report.benchmarks] == ["kept_a", "kept_b", "kept_c"]
    assert _report().on_record is None  # default: silent, as before


def test_cli_writes_report(tmp_path: Path) -> None:
    env = {**os.environ, "BOT4_HOME": str(tmp_path), "BOT4_BENCH_SCALE": "0.05"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "-k", "pct_returns"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    latest = tmp_path / "bench" / "latest.json"
    assert f"wrote {latest}" in proc.stdout
    copies = list((tmp_path / "bench").glob("report-*T*.json"))
    assert len(copies) == 1 and len(copies[0].stem) == len("report-YYYYmmddTHHMMSS")
    data = load_report(latest)
    assert data is not None and data == load_report(copies[0])
    assert {"schema", "created", "git_commit", "versions", "host", "benchmarks"} <= data.keys()
    assert {"numpy", "numba", "pandas", "python"} <= data["versions"].keys()
    assert "kernels_use_zmm" in data["host"]
    (bench,) = data["benchmarks"]
    assert bench["name"] == "pct_returns" and bench["group"] == "kernels"
    assert bench["items"] == 45_031 and bench["reference_name"].startswith("pandas")
    for key in ("p50", "p95", "p99", "mean", "n"):
        assert key in bench["ours"] and key in bench["reference"]
    assert bench["ratio"] == pytest.approx(bench["reference"]["p50"] / bench["ours"]["p50"])
    assert "pct_returns" in proc.stdout and "ratio" in proc.stdout
    # the progress line for the benchmark, printed as it finished, before the table
    lines = proc.stdout.splitlines()
    progress = (f"[ 1] kernels/pct_returns: p50 {format_seconds(bench['ours']['p50'])}, "
                f"p99 {format_seconds(bench['ours']['p99'])}, {bench['ratio']:.3g}x vs "
                f"{bench['reference_name']}")
    assert progress in lines
    table_header = next(i for i, line in enumerate(lines) if line.startswith("benchmark "))
    assert lines.index(progress) < table_header
    assert sum(line.startswith("[") for line in lines) == 1


def test_cli_unknown_filter_fails(tmp_path: Path) -> None:
    env = {**os.environ, "BOT4_HOME": str(tmp_path), "BOT4_BENCH_SCALE": "0.05"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "-k", "no-such-benchmark"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 1 and "no benchmark matches" in proc.stderr
    assert not (tmp_path / "bench").exists()
