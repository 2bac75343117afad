"""Benchmark harness: percentile timings, same-process reference comparisons, JSON reports.

Why our own and not ``timeit``/``pytest-benchmark``: every stage reports p50/p95/p99 against a
public reference measured *interleaved in the same process* (fair on a shared, noisy 2-core box),
with the host facts beside the numbers, in one JSON the performance manifest reads back.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from ..provenance import git_commit

SCHEMA_VERSION = 1
DEFAULT_MIN_TIME = 1.0
"""Seconds of sampling per measured function before scaling by ``BOT4_BENCH_SCALE``."""
MIN_SAMPLE_TIME = 5e-6
"""Calls faster than this are batched, so timer overhead stays below ~1 % of a sample."""
MAX_SAMPLES = 20_000
MIN_SAMPLES = 5
BLOCKS = 10
"""``compare`` alternates ours/reference in this many blocks."""


def bench_scale() -> float:
    """``BOT4_BENCH_SCALE`` (default 1.0): multiplies sampling time, e.g. 0.05 for smoke runs."""
    raw = os.environ.get("BOT4_BENCH_SCALE", "").strip()
    if not raw:
        return 1.0
    scale = float(raw)
    if not scale > 0:
        raise ValueError(f"BOT4_BENCH_SCALE must be positive, got {raw!r}")
    return scale


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method) of already sorted samples."""
    if not sorted_samples:
        return math.nan
    pos = (len(sorted_samples) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


@dataclass(frozen=True)
class Timing:
    """Per-call wall times in seconds; ``number`` calls were averaged into each sample."""

    samples: tuple[float, ...]
    number: int = 1

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("Timing needs at least one sample")

    @cached_property
    def sorted_samples(self) -> tuple[float, ...]:
        return tuple(sorted(self.samples))

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def p50(self) -> float:
        return percentile(self.sorted_samples, 50)

    @property
    def p95(self) -> float:
        return percentile(self.sorted_samples, 95)

    @property
    def p99(self) -> float:
        return percentile(self.sorted_samples, 99)

    @property
    def mean(self) -> float:
        return math.fsum(self.samples) / len(self.samples)

    @property
    def min(self) -> float:
        return self.sorted_samples[0]

    @property
    def max(self) -> float:
        return self.sorted_samples[-1]

    def to_dict(self) -> dict[str, Any]:
        """Summary statistics (not the raw samples, which would bloat the report)."""
        return {
            "n": self.n, "number": self.number, "p50": self.p50, "p95": self.p95,
            "p99": self.p99, "mean": self.mean, "min": self.min, "max": self.max,
        }


class _Sampler:
    """Times one callable: warm-up, batch size for sub-5 µs calls, then samples on demand."""

    def __init__(self, fn: Callable[[], Any], warmup: int) -> None:
        self.fn = fn
        first = None
        for _ in range(max(warmup, 1)):
            t = self._time_calls(1)
            first = t if first is None else min(first, t)
        assert first is not None
        self.number = max(1, math.ceil(MIN_SAMPLE_TIME / max(first, 1e-9)))
        self.estimate = first  # seconds per call, best of the warm-up

    def _time_calls(self, number: int) -> float:
        fn = self.fn
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        return (time.perf_counter_ns() - start) / 1e9 / number

    def take(self, k: int) -> list[float]:
        return [self._time_calls(self.number) for _ in range(k)]

    def repeat_for(self, min_time: float) -> int:
        per_sample = self.estimate * self.number
        return int(min(MAX_SAMPLES, max(MIN_SAMPLES, math.ceil(min_time / per_sample))))


def _min_time(min_time: float | None) -> float:
    return (DEFAULT_MIN_TIME if min_time is None else min_time) * bench_scale()


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 3,
    repeat: int | None = None,
    min_time: float | None = None,
) -> Timing:
    """Time ``fn()`` after ``warmup`` calls: ``repeat`` samples, or enough for ``min_time`` s.

    By default sampling lasts ~1 s (times ``BOT4_BENCH_SCALE``), with 5..20,000 samples.
    """
    sampler = _Sampler(fn, warmup)
    k = repeat if repeat is not None else sampler.repeat_for(_min_time(min_time))
    return Timing(tuple(sampler.take(k)), sampler.number)


_GOAL = re.compile(
    r"^\s*(?P<metric>p50|p95|p99|mean|ratio)?\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<value>\d+(?:\.\d+)?(?:e-?\d+)?)\s*(?P<unit>x|ns|us|µs|ms|s)\s*$",
    re.IGNORECASE,
)
_TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, "<": lambda a, b: a < b,
}


def parse_goal(goal: str) -> tuple[str, str, float]:
    """``">= 20x"`` (speed-up vs reference) or ``"p99 < 100 µs"`` (time; default metric p50).

    Returns (metric, operator, threshold in x or seconds); raises ValueError on anything else so
    a typo in a goal cannot silently read as "met".
    """
    m = _GOAL.match(goal)
    if m is None:
        raise ValueError(f"unparseable goal {goal!r}; use e.g. '>= 20x' or 'p99 < 100 µs'")
    unit = m["unit"].lower()
    value = float(m["value"])
    if unit == "x":
        if m["metric"] not in (None, "ratio"):
            raise ValueError(f"goal {goal!r}: a speed-up goal compares p50 ratios")
        return "ratio", m["op"], value
    if (m["metric"] or "").lower() == "ratio":
        raise ValueError(f"goal {goal!r}: a ratio goal takes an 'x' unit")
    return (m["metric"] or "p50").lower(), m["op"], value * _TIME_UNITS[unit]


@dataclass
class Benchmark:
    """One benchmark row: our timing, optionally a reference timed beside it, and a goal."""

    name: str
    ours: Timing
    group: str = ""
    unit: str = ""
    items: int | None = None
    reference_name: str | None = None
    reference: Timing | None = None
    goal: str | None = None
    met: bool | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.goal is not None and self.met is None:
            self.met = self.evaluate_goal()

    @property
    def ratio(self) -> float | None:
        """Reference p50 / our p50: above 1 means we are faster."""
        if self.reference is None:
            return None
        return self.reference.p50 / self.ours.p50

    @property
    def throughput(self) -> float | None:
        """Items per second at our p50."""
        return None if self.items is None else self.items / self.ours.p50

    def evaluate_goal(self) -> bool | None:
        if self.goal is None:
            return None
        metric, op, threshold = parse_goal(self.goal)
        if metric == "ratio":
            ratio = self.ratio
            if ratio is None:
                raise ValueError(f"{self.name}: goal {self.goal!r} needs a reference")
            return _OPS[op](ratio, threshold)
        return _OPS[op](getattr(self.ours, metric), threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "group": self.group, "unit": self.unit, "items": self.items,
            "ours": self.ours.to_dict(),
            "throughput": self.throughput,
            "reference_name": self.reference_name,
            "reference": None if self.reference is None else self.reference.to_dict(),
            "ratio": self.ratio, "goal": self.goal, "met": self.met, "notes": self.notes,
        }


def compare(
    name: str,
    ours: Callable[[], Any],
    reference: Callable[[], Any],
    *,
    reference_name: str,
    items: int | None = None,
    unit: str = "",
    goal: str | None = None,
    group: str = "",
    notes: str = "",
    warmup: int = 3,
    repeat: int | None = None,
    min_time: float | None = None,
) -> Benchmark:
    """Time ``ours`` and ``reference`` in alternating blocks and return the Benchmark.

    Interleaving (ours, ref, ref, ours, ...) spreads a noisy neighbour's load over both sides
    instead of letting it land on one. ``min_time`` applies to each side.
    """
    s_ours, s_ref = _Sampler(ours, warmup), _Sampler(reference, warmup)
    budget = _min_time(min_time)
    k_ours = repeat if repeat is not None else s_ours.repeat_for(budget)
    k_ref = repeat if repeat is not None else s_ref.repeat_for(budget)
    blocks = max(1, min(BLOCKS, k_ours, k_ref))
    got_ours: list[float] = []
    got_ref: list[float] = []
    for b in range(blocks):
        take_ours = k_ours * (b + 1) // blocks - k_ours * b // blocks
        take_ref = k_ref * (b + 1) // blocks - k_ref * b // blocks
        if b % 2 == 0:
            got_ours += s_ours.take(take_ours)
            got_ref += s_ref.take(take_ref)
        else:
            got_ref += s_ref.take(take_ref)
            got_ours += s_ours.take(take_ours)
    return Benchmark(
        name=name, group=group, unit=unit, items=items,
        ours=Timing(tuple(got_ours), s_ours.number),
        reference_name=reference_name, reference=Timing(tuple(got_ref), s_ref.number),
        goal=goal, notes=notes,
    )


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("numpy", "numba", "pandas", "bot4_dagster"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _host() -> dict[str, Any]:
    from bot4_dagster.kernels.cpu import cpu_info

    return dict(cpu_info())


@dataclass
class Report:
    """Benchmarks of one run plus the host, versions, time and commit they were measured on.

    ``select`` (the CLI's ``-k``) is a case-insensitive substring of "group/name"; benchmark
    modules ask :meth:`wants` before expensive setup, and :meth:`compare`/:meth:`measure` skip
    unselected names themselves. ``on_record``, if set, is called with each benchmark as it is
    recorded (the CLI prints :func:`progress_line` with it); it is not part of the report.
    """

    select: str | None = None
    benchmarks: list[Benchmark] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=_host)
    versions: dict[str, str | None] = field(default_factory=_versions)
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    git_commit: str | None = field(default_factory=git_commit)
    on_record: Callable[[Benchmark], Any] | None = field(default=None, repr=False, compare=False)

    def wants(self, name: str, group: str = "") -> bool:
        if not self.select:
            return True
        return self.select.lower() in f"{group}/{name}".lower()

    def add(self, bench: Benchmark) -> Benchmark:
        self.benchmarks.append(bench)
        if self.on_record is not None:
            self.on_record(bench)
        return bench

    def compare(
        self, name: str, ours: Callable[[], Any], reference: Callable[[], Any], **kw: Any
    ) -> Benchmark | None:
        """:func:`compare` and add, unless ``name`` is filtered out."""
        if not self.wants(name, kw.get("group", "")):
            return None
        return self.add(compare(name, ours, reference, **kw))

    def measure(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        group: str = "",
        unit: str = "",
        items: int | None = None,
        goal: str | None = None,
        notes: str = "",
        **measure_kw: Any,
    ) -> Benchmark | None:
        """A benchmark without a reference (e.g. a latency budget), unless filtered out."""
        if not self.wants(name, group):
            return None
        return self.add(Benchmark(
            name=name, group=group, unit=unit, items=items, ours=measure(fn, **measure_kw),
            goal=goal, notes=notes,
        ))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "created": self.created.isoformat(),
            "git_commit": self.git_commit,
            "select": self.select,
            "versions": self.versions,
            "host": self.host,
            "benchmarks": [b.to_dict() for b in self.benchmarks],
        }

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file in the same folder, then ``os.replace``)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, indent=2, allow_nan=True)
                fh.write("\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def table(self) -> str:
        """Fixed-width table of all benchmarks, with a one-line host header."""
        return render_table(self.to_dict())


def load_report(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A report written by :meth:`Report.to_json`, or None if missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def format_seconds(seconds: float | None) -> str:
    """3 significant digits in ns, µs, ms or s."""
    if seconds is None or math.isnan(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_rate(rate: float | None, unit: str) -> str:
    """Items per second with an SI prefix, named after the unit's noun ("45,031 rows" -> rows)."""
    if rate is None:
        return "-"
    words = unit.split()
    noun = words[-1] if words and words[-1].isalpha() else "items"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.3g}{prefix} {noun}/s"
    return f"{rate:.3g} {noun}/s"


def progress_line(bench: Benchmark) -> str:
    """One line for a benchmark that just finished: label, p50, p99, ratio and goal if any.

    e.g. ``kernels/pct_returns: p50 15.3 µs, p99 19 µs, 19x vs pandas pct_change()*100``.
    """
    label = f"{bench.group}/{bench.name}" if bench.group else bench.name
    parts = [f"p50 {format_seconds(bench.ours.p50)}", f"p99 {format_seconds(bench.ours.p99)}"]
    ratio = bench.ratio
    if ratio is not None:
        parts.append(f"{ratio:.3g}x vs {bench.reference_name or 'reference'}")
    if bench.goal is not None:
        met = "met" if bench.met else "not met" if bench.met is False else "?"
        parts.append(f"goal {bench.goal}: {met}")
    return f"{label}: " + ", ".join(parts)


_COLUMNS = ("benchmark", "p50", "p95", "p99", "throughput", "reference", "ref p50", "ratio",
            "goal/met")


def _row(b: dict[str, Any]) -> list[str]:
    ours = b["ours"]
    ref = b.get("reference")
    label = f"{b['group']}/{b['name']}" if b.get("group") else b["name"]
    ratio = b.get("ratio")
    goal = b.get("goal")
    met = b.get("met")
    goal_text = "-" if goal is None else f"{goal} {'yes' if met else 'NO' if met is False else '?'}"
    return [
        label,
        format_seconds(ours["p50"]), format_seconds(ours["p95"]), format_seconds(ours["p99"]),
        format_rate(b.get("throughput"), b.get("unit", "")),
        b.get("reference_name") or "-",
        format_seconds(ref["p50"]) if ref else "-",
        "-" if ratio is None else f"{ratio:.3g}x",
        goal_text,
    ]


def render_table(report: dict[str, Any]) -> str:
    """The fixed-width table for a report dict (also works on a report loaded from JSON)."""
    rows = [list(_COLUMNS)] + [_row(b) for b in report.get("benchmarks", [])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    right = {1, 2, 3, 4, 6, 7}

    def fmt(r: list[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                 enumerate(zip(r, widths, strict=True))]
        return "  ".join(cells).rstrip()

    host = report.get("host", {})
    versions = report.get("versions", {})
    header = (
        f"{host.get('cpu_name', '?')}, {host.get('usable_cores', '?')}/"
        f"{host.get('logical_cores', '?')} cores, kernel vectors: "
        f"{host.get('kernel_vector_register') or 'none'} | "
        + " ".join(f"{k} {v}" for k, v in versions.items() if v and k != "bot4_dagster")
        + f" | {report.get('created', '')}"
    )
    lines = [header, fmt(rows[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows[1:]]
    return "\n".join(lines)

