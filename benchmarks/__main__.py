"""Run every ``benchmarks/bench_*.py``, print the table, write ``$BOT4_HOME/bench/*.json``."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from bot4_dagster.perf import Report

PACKAGE_DIR = Path(__file__).resolve().parent


def bench_modules() -> list[str]:
    """Module names ``benchmarks.bench_*``, sorted for a stable order."""
    return sorted(
        f"{__package__ or 'benchmarks'}.{m.name}"
        for m in pkgutil.iter_modules([str(PACKAGE_DIR)])
        if m.name.startswith("bench_")
    )


def bench_dir() -> Path:
    """``$BOT4_HOME/bench`` (BOT4_HOME defaults to ``.bot4`` in the current directory)."""
    return Path(os.environ.get("BOT4_HOME") or ".bot4") / "bench"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("-k", dest="select", default=None,
                        help="only benchmarks whose 'group/name' contains this substring")
    args = parser.parse_args(argv)

    report = Report(select=args.select)
    for name in bench_modules():
        importlib.import_module(name).run(report)
    if not report.benchmarks:
        print(f"no benchmark matches -k {args.select!r}", file=sys.stderr)
        return 1

    print(report.table())
    out = bench_dir()
    stamp = report.created.strftime("%Y%m%dT%H%M%S")
    latest = report.to_json(out / "latest.json")
    copy = report.to_json(out / f"report-{stamp}.json")
    print(f"\nwrote {latest}\nwrote {copy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
