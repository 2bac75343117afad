"""The performance manifest: hardware, library versions and the latest benchmark report, in one
object that the ``perf_manifest`` asset publishes and a notebook can print."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ..kernels.cpu import cpu_info
from .harness import load_report

LIBRARIES = ("dagster", "numpy", "numba", "llvmlite", "pandas", "pyarrow", "duckdb", "pandera",
             "great-expectations", "scipy", "scikit-learn", "arch", "statsmodels", "torch",
             "safetensors", "skops", "bot4_dagster")
COLUMNS = ["benchmark", "group", "unit", "p50_s", "p95_s", "p99_s", "throughput_per_s",
           "reference", "reference_p50_s", "ratio", "goal", "met", "measured_at", "git_commit"]


def library_versions() -> dict[str, str | None]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class Manifest:
    hardware: dict[str, Any]
    versions: dict[str, str | None]
    benchmarks: pd.DataFrame  # one row per benchmark of the latest report (COLUMNS)
    report_path: str | None

    def hardware_markdown(self) -> str:
        keys = ("cpu_name", "logical_cores", "usable_cores", "avx512", "kernels_use_zmm",
                "widest_vector_register", "numba_enabled")
        rows = [f"| {k} | {self.hardware.get(k)} |" for k in keys if k in self.hardware]
        return "\n".join(["| fact | value |", "|---|---|", *rows])

    def benchmarks_markdown(self) -> str:
        if self.benchmarks.empty:
            return ("No benchmark report yet: run `make bench`, then materialize perf/manifest "
                    "again.")
        shown = self.benchmarks[["benchmark", "p50_s", "p99_s", "reference", "reference_p50_s",
                                 "ratio", "goal", "met"]]
        return shown.to_markdown(index=False, floatfmt=".3g")


def _rows(report: dict) -> list[dict]:
    rows = []
    for b in report.get("benchmarks", []):
        ours, ref = b.get("ours") or {}, b.get("reference") or {}
        rows.append({
            "benchmark": b["name"], "group": b.get("group") or "", "unit": b.get("unit") or "",
            "p50_s": ours.get("p50"), "p95_s": ours.get("p95"), "p99_s": ours.get("p99"),
            "throughput_per_s": b.get("throughput"), "reference": b.get("reference_name"),
            "reference_p50_s": ref.get("p50"), "ratio": b.get("ratio"), "goal": b.get("goal"),
            "met": b.get("met"), "measured_at": report.get("created"),
            "git_commit": report.get("git_commit"),
        })
    return rows


def build_manifest(report_path: str | Path) -> Manifest:
    """Read the latest benchmark report (if any) and describe this host."""
    report = load_report(report_path)
    frame = pd.DataFrame(_rows(report) if report else [], columns=COLUMNS)
    frame = frame.astype({c: "float64" for c in COLUMNS
                          if c.endswith("_s") or c in ("ratio", "throughput_per_s")})
    frame = frame.astype({c: "string" for c in ("benchmark", "group", "unit", "reference", "goal",
                                                "measured_at", "git_commit")})
    frame["met"] = frame["met"].astype("boolean")
    return Manifest(cpu_info(), library_versions(), frame, str(report_path) if report else None)
