"""Performance measurement (pure Python, no Dagster): timings, reference comparisons, reports."""

from .harness import (
    Benchmark,
    Report,
    Timing,
    bench_scale,
    compare,
    format_seconds,
    load_report,
    measure,
    parse_goal,
    percentile,
    render_table,
)

__all__ = [
    "Benchmark",
    "Report",
    "Timing",
    "bench_scale",
    "compare",
    "format_seconds",
    "load_report",
    "measure",
    "parse_goal",
    "percentile",
    "render_table",
]
