"""The ``bot4`` command.

``bot4 run`` materializes a selection (default: everything) on the configured source as runs of
the workspace's code location, one line per step; ``bot4 status`` summarises the warehouse;
``bot4 home`` prints DAGSTER_HOME.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from .settings import candidates_dir, dagster_home, registry_dir, state_dir, warehouse_path

CONFIGURATION_ERRORS = (FileNotFoundError, ValueError, ConnectionError, TimeoutError)


def _parser() -> argparse.ArgumentParser:
    from .data.formats import FORMATS
    from .ml.learners import PROFILES
    from .resources.training import ENV_PROFILE

    parser = argparse.ArgumentParser(prog="bot4", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize assets on the configured source")
    what = run.add_argument_group("what to run")
    what.add_argument("--select", metavar="SELECTION",
                      help="Dagster asset selection, e.g. 'key:ml/labels+' or 'group:features' "
                           "(default: every asset)")
    what.add_argument("--symbols", metavar="A,B",
                      help="only these symbols (binance: the symbols to download)")
    what.add_argument("--parallel", type=int, default=3, metavar="N",
                      help="runs at once (default 3; each run also runs up to two independent "
                           "steps at once)")
    what.add_argument("--profile", choices=sorted(PROFILES),
                      help="training profile of the base learners (default quick, or "
                           f"{ENV_PROFILE}); README, \"Models\"")
    what.add_argument("--verbose", action="store_true",
                      help="show Dagster's own output (code server, run workers, stack traces)")
    source = run.add_argument_group("source (also from BOT4_* environment variables)")
    source.add_argument("--source", choices=["bundled", "files", "binance"],
                        help="default bundled")
    source.add_argument("--path", help="files: directory, file or glob of exports")
    source.add_argument("--format", choices=sorted(FORMATS),
                        help="files: force a format instead of detecting it")
    source.add_argument("--symbol", help="files: symbol of files that name none")
    source.add_argument("--volume-unit", choices=["base", "quote"],
                        help="files: the unit of a generic OHLCV file's volume column")
    source.add_argument("--bar-interval", metavar="1min",
                        help="interval of bars built from trades when a source has no bars")
    source.add_argument("--start", help="binance: first day YYYY-MM-DD")
    source.add_argument("--end", help="binance: day after the last (default: today)")
    source.add_argument("--market", choices=["spot", "um"], help="binance: spot or USD-M futures")
    source.add_argument("--trades", action="store_true", help="binance: also ingest aggTrades")
    source.add_argument("--no-klines", action="store_true",
                        help="binance: no klines; bars are built from the aggTrades (--trades)")
    source.add_argument("--base-url", help="binance: archive base URL")
    sub.add_parser("status", help="rows and first/last timestamp per table and symbol")
    sub.add_parser("home", help="create and print DAGSTER_HOME (telemetry off)")
    return parser


def _run_config(market_data, args: argparse.Namespace) -> dict:
    """The source and the training profile as resource config of every launched run."""
    from .resources.training import TrainingResource

    training = TrainingResource.from_env()
    if args.profile:
        training = TrainingResource(profile=args.profile)
    config = market_data.run_config()
    config["resources"].update(training.run_config()["resources"])
    return config


def market_data_from(args: argparse.Namespace):
    """The source: environment variables, overridden by flags."""
    from .resources.market_data import MarketDataResource

    resource = MarketDataResource.from_env()
    flags = {name: getattr(args, name) for name in
             ("source", "path", "format", "symbol", "volume_unit", "bar_interval", "start",
              "end", "market", "base_url") if getattr(args, name) is not None}
    if args.symbols:
        flags["symbols"] = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if args.trades:
        flags["trades"] = True
    if args.no_klines:
        flags["klines"] = False
    values = {**{k: v for k, v in resource.run_config()["resources"]["market_data"]["config"]
                 .items()}, **flags}
    return MarketDataResource(**values)


def open_instance():
    """The Dagster instance in DAGSTER_HOME, its storage created under a lock: two first
    invocations on a fresh BOT4_HOME would otherwise race in the SQLite migrations."""
    import fcntl

    import dagster as dg

    home = dagster_home()
    with open(home / ".bot4-init.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.get_dynamic_partitions("symbol")
        instance.schedule_storage.all_instigator_state()
        instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.RUN_SUCCESS), limit=1)
    return instance


@contextmanager
def children_to(log: Path | None):
    """While the block runs, send this process's file descriptors 1 and 2 (which the code
    server, run workers and step processes inherit) to ``log``; yield a writer to the terminal."""
    if log is None:
        yield lambda text: print(text, flush=True)
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda text: print(text, file=terminal, flush=True)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()


def run(args: argparse.Namespace) -> int:
    from .assets.keys import INGEST

    market_data = market_data_from(args)
    say = print
    say(f"bot4 run: state in {state_dir()}")
    try:
        source = market_data.open(progress=lambda e: say(f"  {e}"))
        extents = source.extents()
    except CONFIGURATION_ERRORS as exc:
        say(f"bot4 run: {exc}")
        return 2
    symbols = sorted({e.symbol for e in extents})
    if args.symbols and market_data.source.value == "files":
        wanted = {s.strip() for s in args.symbols.split(",") if s.strip()}
        if missing := sorted(wanted - set(symbols)):
            say(f"bot4 run: --symbols {', '.join(missing)}: not in the source "
                f"(it holds {', '.join(symbols)})")
            return 2
        symbols = sorted(wanted)
    fed = {s: {INGEST[e.table] for e in extents if e.symbol == s} for s in symbols}
    for e in extents:
        derived = f" (built from {e.derived_from})" if e.derived_from else ""
        say(f"  source '{market_data.source.value}': {e.table} {e.symbol} "
            f"{e.start:%Y-%m-%d %H:%M} .. {e.end:%Y-%m-%d %H:%M}{derived}")

    invocation = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    log = None if args.verbose else state_dir() / "logs" / f"run-{invocation}.log"
    instance = open_instance()
    from .automation.launch import INVOCATION_TAG, Launcher
    from .automation.plan import PlanError, plan_runs

    with children_to(log) as say_terminal, _workspace(instance) as context:
        repository = _repository(context)
        try:
            plan = plan_runs(repository.asset_graph, args.select, symbols, fed,
                             sourced=set(INGEST.values()))
        except PlanError as exc:
            say_terminal(f"bot4 run: {exc}")
            return 2
        for note in plan.notes:
            say_terminal(f"  ({note})")
        if any(p.partition for p in plan.runs):
            from .automation.partitions import register_symbols

            register_symbols(instance, [p.partition for p in plan.runs if p.partition])
        say_terminal(f"launching {len(plan.runs)} run(s), tag {INVOCATION_TAG}={invocation}")
        launcher = Launcher(instance, context, tags={INVOCATION_TAG: invocation,
                                                     "bot4/source": market_data.source.value},
                            run_config=_run_config(market_data, args), parallel=args.parallel,
                            say=say_terminal, verbose=args.verbose)
        outcomes = launcher.run(plan)
    print("\n" + summary(outcomes, invocation, log))
    return 0 if all(o.status == "succeeded" for o in outcomes) else 1


@contextmanager
def _workspace(instance):
    """The code location of workspace.yaml (module bot4_dagster.definitions, location
    bot4_dagster), served by a code server this process starts and stops."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget

    os.environ["BOT4_HOME"] = str(state_dir())  # the code server and run workers inherit it
    target = ModuleTarget(module_name="bot4_dagster.definitions", attribute=None,
                          working_directory=None, location_name="bot4_dagster")
    with WorkspaceProcessContext(instance, target) as context:
        yield context


def _repository(context):
    workspace = context.create_request_context()
    errors = workspace.code_location_errors()
    if errors:
        raise RuntimeError(f"the code location bot4_dagster failed to load: {errors[0]}")
    location = next(iter(workspace.code_locations))
    return next(iter(location.get_repositories().values()))


def summary(outcomes, invocation: str, log: Path | None) -> str:
    steps = [s for o in outcomes for s in o.steps.values()]
    count = {status: sum(s.status == status for s in steps)
             for status in ("ok", "FAILED", "skipped")}
    passed = sum(s.checks_passed for s in steps)
    failed_checks = sum(s.checks_failed for s in steps)
    ok = sum(o.status == "succeeded" for o in outcomes)
    lines = [f"runs: {ok}/{len(outcomes)} succeeded",
             f"steps: {count['ok']} ok, {count['FAILED']} failed, {count['skipped']} skipped",
             f"checks: {passed} passed, {failed_checks} failed"]
    for o in outcomes:
        if o.status in ("failed", "skipped"):
            lines.append(f"{o.status.upper()} {o.planned.label}: {o.error}")
    lines += ["", _status()]
    if candidates_dir().is_dir():
        lines.append(f"model candidates: {candidates_dir()}  (one bundle per directory; "
                     "indexed in ml.model_candidates)")
    if (registry_dir() / "mlflow.db").is_file():
        lines.append(f"model registry: {registry_dir()}  ->  `.venv/bin/mlflow ui "
                     f"--backend-store-uri sqlite:///{registry_dir() / 'mlflow.db'}` "
                     "(models bot4.triple_barrier.<symbol>; audit log: audit.sqlite)")
    lines.append(f"Dagster runs: {dagster_home()}  ->  `make ui`, then open "
                 f"http://127.0.0.1:3000/runs and filter by tag bot4/invocation={invocation}")
    if log is not None:
        lines.append(f"full Dagster output of this invocation: {log} (or run with --verbose)")
    return "\n".join(lines)


def _status() -> str:
    """Rows per table, and per symbol with the first and last timestamp."""
    from .data.warehouse import Warehouse

    warehouse = Warehouse(warehouse_path())
    counts = warehouse.row_counts()
    if not counts:
        return f"warehouse {warehouse_path()}: empty"
    spans = warehouse.spans()
    lines = [f"warehouse {warehouse_path()}:",
             f"  {'table':<34}{'symbol':<12}{'rows':>12}  first .. last (UTC)"]
    for table, rows in counts.items():
        per_symbol = spans[spans["table"] == table]
        if per_symbol.empty:
            lines.append(f"  {table:<34}{'':<12}{rows:>12,}")
        for row in per_symbol.itertuples(index=False):
            lines.append(f"  {table:<34}{row.symbol:<12}{row.rows:>12,}  "
                         f"{_when(row.first_ts)} .. {_when(row.last_ts)}")
    lines.append("  (python: bot4_dagster.data.warehouse.Warehouse(path).query('select ...'))")
    return "\n".join(lines)


def _when(ts) -> str:
    import pandas as pd

    return "-" if ts is None or pd.isna(ts) else f"{ts:%Y-%m-%d %H:%M}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ["DAGSTER_HOME"] = str(dagster_home())
    if args.command == "home":
        print(os.environ["DAGSTER_HOME"])
        return 0
    if args.command == "status":
        try:
            print(_status())
        except TimeoutError as exc:
            print(f"bot4 status: {exc}", file=sys.stderr)
            return 2
        return 0
    return run(args)


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
