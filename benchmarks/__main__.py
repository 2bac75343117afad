"""Run every ``benchmarks/bench_*.py``: one line per benchmark as it finishes, then the table;
write ``$BOT4_HOME/bench/*.json``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from bot4_dagster.perf import Benchmark, Report
from bot4_dagster.perf.harness import progress_line
from bot4_dagster.settings import bench_dir, latest_bench_report

PACKAGE_DIR = Path(__file__).resolve().parent


def bench_modules() -> list[str]:
    """Module names ``benchmarks.bench_*``, sorted for a stable order."""
    return sorted(
        f"{__package__ or 'benchmarks'}.{m.name}"
        for m in pkgutil.iter_modules([str(PACKAGE_DIR)])
        if m.name.startswith("bench_")
    )




def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("-k", dest="select", default=None,
                        help="only benchmarks whose 'group/name' contains this substring")
    args = parser.parse_args(argv)

    def on_record(bench: Benchmark) -> None:
        print(f"[{len(report.benchmarks):>2}] {progress_line(bench)}", flush=True)

    report = Report(select=args.select, on_record=on_record)
    for name in bench_modules():
        importlib.import_module(name).run(report)
    if not report.benchmarks:
        print(f"no benchmark matches -k {args.select!r}", file=sys.stderr)
        return 1

    print()
    print(report.table())
    out = bench_dir()
    stamp = report.created.strftime("%Y%m%dT%H%M%S")
    latest = report.to_json(latest_bench_report())
    copy = report.to_json(out / f"report-{stamp}.json")
    print(f"\nwrote {latest}\nwrote {copy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
