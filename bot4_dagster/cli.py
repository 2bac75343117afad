"""The ``bot4`` command: ``bot4 run`` materializes everything on the configured source and says
where to look next; ``bot4 status`` summarises the warehouse; ``bot4 home`` prints DAGSTER_HOME."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .settings import dagster_home, state_dir, warehouse_path

SOURCE_FLAGS = {  # flag -> environment variable read by MarketDataResource.from_env
    "source": "BOT4_SOURCE", "path": "BOT4_PATH", "format": "BOT4_FORMAT", "symbol": "BOT4_SYMBOL",
    "volume_unit": "BOT4_VOLUME_UNIT", "symbols": "BOT4_SYMBOLS", "start": "BOT4_START",
    "end": "BOT4_END", "market": "BOT4_MARKET", "base_url": "BOT4_BINANCE_URL",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot4", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize every asset on the configured source")
    run.add_argument("--source", choices=["bundled", "files", "binance"])
    run.add_argument("--path", help="files: directory, file or glob of exports")
    run.add_argument("--format", help="files: force a format instead of detecting it")
    run.add_argument("--symbol", help="files: symbol of files that name none")
    run.add_argument("--volume-unit", choices=["base", "quote"], help="files: generic OHLCV volume unit")
    run.add_argument("--symbols", help="binance (or bundled subset): comma-separated symbols")
    run.add_argument("--start", help="binance: first day YYYY-MM-DD")
    run.add_argument("--end", help="binance: day after the last (default: today)")
    run.add_argument("--market", choices=["spot", "um"], help="binance: spot or USD-M futures")
    run.add_argument("--trades", action="store_true", help="binance: also ingest aggTrades")
    run.add_argument("--base-url", help="binance: archive base URL")
    sub.add_parser("status", help="rows per warehouse table and where things are")
    sub.add_parser("home", help="create and print DAGSTER_HOME (telemetry off)")
    return parser


def _summary(outcomes=None) -> str:
    from .data.warehouse import Warehouse

    lines = []
    if outcomes is not None:
        assets = sorted({a for o in outcomes for a in o.materialized})
        passed = sum(o.checks_passed for o in outcomes)
        failed = sum(o.checks_failed for o in outcomes)
        ok = sum(o.success for o in outcomes)
        lines += [f"runs: {ok}/{len(outcomes)} succeeded",
                  f"assets materialized: {', '.join(assets) or 'none'}",
                  f"checks: {passed} passed, {failed} failed"]
    counts = Warehouse(warehouse_path()).row_counts()
    lines.append("rows per table:" if counts else "warehouse: empty")
    lines += [f"  {table:<36}{rows:>12,}" for table, rows in counts.items()]
    lines += [
        f"warehouse: {warehouse_path()}",
        "  (python: bot4_dagster.data.warehouse.Warehouse(path).query('select ...'))",
        f"Dagster runs: {dagster_home()}  ->  `make ui`, then open http://127.0.0.1:3000",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ["DAGSTER_HOME"] = str(dagster_home())
    if args.command == "home":
        print(os.environ["DAGSTER_HOME"])
        return 0
    if args.command == "status":
        print(_summary())
        return 0
    for flag, var in SOURCE_FLAGS.items():
        if getattr(args, flag, None):
            os.environ[var] = getattr(args, flag)
    if args.trades:
        os.environ["BOT4_TRADES"] = "1"

    import dagster as dg

    progress = logging.getLogger("bot4_dagster.progress")  # downloads, from inside the runs
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("      %(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False

    from .automation.runner import materialize_all
    from .definitions import build_definitions

    print(f"bot4 run: state in {state_dir()}")
    try:
        with dg.DagsterInstance.get() as instance:
            outcomes = materialize_all(build_definitions(), instance)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:  # configuration, not a bug
        print(f"bot4 run: {exc}", file=sys.stderr)
        return 2
    print("\n" + _summary(outcomes))
    return 0 if all(o.success for o in outcomes) else 1


def entry() -> None:
    """Console-script entry. Exits without interpreter finalisation: after a run recorded in a
    persistent Dagster instance, duckdb's nanobind bindings otherwise print pages of harmless
    "leaked instance" lines at shutdown. Everything is closed and flushed before this point."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
