"""``perf_manifest``: what this machine is, which library versions run, and how fast the kernels
were in the latest ``make bench`` report. Later stages add their benchmarks to the same report."""

import dagster as dg

from ..perf.manifest import build_manifest
from ..settings import latest_bench_report
from .keys import PERF_MANIFEST
from .metadata import column_schema


@dg.asset(
    key=PERF_MANIFEST,
    metadata={"dagster/column_schema": column_schema("perf.manifest")},
    description="Hardware (AVX-512 in use?), library versions and the latest benchmark report.",
    kinds={"duckdb", "numba"},
    group_name="performance",
)
def perf_manifest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    manifest = build_manifest(latest_bench_report())
    if manifest.benchmarks.empty:
        context.log.info("no benchmark report yet: run `make bench`, then re-materialize")
    return dg.MaterializeResult(value=manifest.benchmarks, metadata={
        "hardware": dg.MetadataValue.md(manifest.hardware_markdown()),
        "versions": dg.MetadataValue.json(manifest.versions),
        "benchmarks": dg.MetadataValue.md(manifest.benchmarks_markdown()),
        "report": manifest.report_path or "none yet (make bench)",
        "avx512_in_use": bool(manifest.hardware.get("kernels_use_zmm", False)),
    })
