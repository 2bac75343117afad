"""``bot4 run`` (what ``make run`` calls): runs launched through the workspace's code location,
found under their jobs, re-executable as from the UI, one line per step, and a failure that
stops what depends on it and names its root cause."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from conftest import FTX
from pipeline import corrupt_copy

from bot4_dagster.assets.keys import (
    BARS,
    BASE_MODELS,
    CALIBRATOR,
    CANDIDATE,
    ENSEMBLE,
    FEATURES,
    FOLDS,
    LABELS,
    LEAKAGE,
    OOF,
    REGISTRY_PROMOTION,
    VOLATILITY,
)
from bot4_dagster.data.warehouse import Warehouse
from bot4_dagster.registry.model_registry import ModelRegistry

SLOW = pytest.mark.slow


def bot4(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "BOT4_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "bot4_dagster.cli", *args], env=env, check=False,
                          capture_output=True, text=True, timeout=timeout)


def instance_of(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home / "dagster_home"))


@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory):
    """``bot4 run`` on the bundled data, once for the tests below."""
    home = tmp_path_factory.mktemp("bundled") / "state"
    return home, bot4(home, "run")


@SLOW
def test_bot4_run_launches_runs_through_the_code_location(bundled_run):
    home, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in ("runs: 3/3 succeeded", "steps: 27 ok, 0 failed, 0 skipped",
                     "checks: 10 passed, 0 failed", "market.bars", "5,031",
                     str(home / "warehouse.duckdb"), "make ui", "http://127.0.0.1:3000"):
        assert expected in out, expected
    # one line per step, none of Dagster's own console output
    for symbol in ("SP500", "NASDAQ"):
        for asset in ("market/bars", "features/microstructure_features", "ml/garch_volatility",
                      "ml/labels", "ml/cv_folds", "ml/leakage_proof", "ml/base_models",
                      "ml/stacking_ensemble", "ml/calibrator", "ml/model_candidate",
                      "registry/registry_promotion"):
            assert sum(line.split()[:3] == [symbol, asset, "ok"]
                       for line in out.splitlines()) == 1, (symbol, asset)
    assert "DEBUG" not in out and "code_server" not in out
    assert "leaked" not in result.stderr

    with instance_of(home) as instance:
        runs = instance.get_runs()
        assert len(runs) == 3 and all(r.is_success for r in runs)
        assert len({r.tags["bot4/invocation"] for r in runs}) == 1  # grouped in the UI
        by_job = {r.job_name: r for r in runs}
        assert set(by_job) == {"symbol_pipeline", "performance_job"}
        for run in runs:  # launched from the code location, as the UI and the daemon do
            origin = run.remote_job_origin
            assert origin is not None and origin.location_name == "bot4_dagster"
            assert origin.repository_origin.repository_name == "__repository__"
        partitions = sorted(r.tags["dagster/partition"] for r in runs
                            if r.job_name == "symbol_pipeline")
        assert partitions == ["NASDAQ", "SP500"]
        for key in (BARS, FEATURES, VOLATILITY, LABELS, FOLDS, LEAKAGE, BASE_MODELS, OOF,
                    ENSEMBLE, CALIBRATOR, CANDIDATE, REGISTRY_PROMOTION):
            assert instance.get_materialized_partitions(key) == {"NASDAQ", "SP500"}
        event = instance.get_latest_materialization_event(REGISTRY_PROMOTION)
        metadata = event.asset_materialization.metadata
        assert metadata["model_uri"].value.startswith("models:/bot4.triple_barrier.")
        assert metadata["model_uri"].value.endswith("/1")
    # the candidates are registered in the embedded MLflow store, challenger and in shadow
    assert "model registry: " + str(home / "mlflow") in out
    registry = ModelRegistry(home=home / "mlflow")
    for symbol in ("SP500", "NASDAQ"):
        name = f"bot4.triple_barrier.{symbol}"
        assert registry.aliases(name) == {"challenger": "1", "shadow": "1"}
        assert registry.check(name) == {"challenger": "version 1 verified",
                                        "shadow": "version 1 verified"}
        assert registry.version(name, "1").tags["dagster_run_id"] in {r.run_id for r in runs}
        assert [r.kind for r in registry.audit.records(name)] == [
            "register", "register", "challenger", "challenger"]


@SLOW
def test_runs_show_under_their_job_and_can_be_re_executed_from_the_ui(tmp_path):
    """The job page's query (runs of the job in its repository) and the UI's re-execute
    button (launchPipelineReexecution), through Dagster's own GraphQL layer, on runs of the
    ingest job (the cheapest; re-executing a run repeats its selection)."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    home = tmp_path / "state"
    result = bot4(home, "run", "--symbols", "SP500", "--select", 'key:"market/bars"')
    assert result.returncode == 0, result.stdout + result.stderr
    target = ModuleTarget(module_name="bot4_dagster.definitions", attribute=None,
                          working_directory=None, location_name="bot4_dagster")
    env = pytest.MonkeyPatch()
    env.setenv("BOT4_HOME", str(home))
    try:
        with instance_of(home) as instance, WorkspaceProcessContext(instance, target) as process:
            context = process.create_request_context()
            runs = execute_dagster_graphql(context, JOB_RUNS, {"selector": {
                "repositoryLocationName": "bot4_dagster", "repositoryName": "__repository__",
                "pipelineName": "market_data_job"}})
            listed = runs.data["pipelineOrError"]["runs"]
            assert [r["status"] for r in listed] == ["SUCCESS"]

            parent = listed[0]["runId"]
            launched = execute_dagster_graphql(context, REEXECUTE, {"params": {
                "parentRunId": parent, "strategy": "ALL_STEPS"}})
            payload = launched.data["launchPipelineReexecution"]
            assert payload["__typename"] == "LaunchRunSuccess", payload
            child = payload["run"]["runId"]
            # the instance queues UI launches (QueuedRunCoordinator); dequeue as the daemon would
            instance.launch_run(child, process.create_request_context())
            finished = _wait(instance, child)
            assert finished.status == dg.DagsterRunStatus.SUCCESS
            assert finished.parent_run_id == parent
            original = instance.get_run_by_id(parent)
            assert finished.tags["dagster/partition"] == original.tags["dagster/partition"]
            assert finished.asset_selection == original.asset_selection == {BARS}
    finally:
        env.undo()


JOB_RUNS = """
query JobRuns($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { runs { runId status } }
  }
}
"""
REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def _wait(instance, run_id, timeout_s=600):
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish")


@SLOW
def test_a_second_run_keeps_every_table_the_same(bundled_run):
    home, first = bundled_run
    assert first.returncode == 0
    counts = Warehouse(home / "warehouse.duckdb").row_counts()
    # everything again but the models (test_models_assets.py trains those; here they would
    # only add a minute): ingest merges, computed stages replace their partition
    second = bot4(home, "run", "--symbols", "SP500", "--select", "not group:models")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 new, 5,031 unchanged" in second.stdout  # the merge found every bar stored
    assert Warehouse(home / "warehouse.duckdb").row_counts() == counts == {
        "features.microstructure_features": 10_062, "market.bars": 10_062,
        "ml.cv_folds": 234_310, "ml.garch_volatility": 10_062, "ml.labels": 10_042,
        "ml.leakage_proof": 10, "perf.manifest": 0, "ml.base_models": 80,
        "ml.oof_predictions": 73_648, "ml.stacking_ensemble": 30, "ml.calibrator": 30,
        "ml.model_candidates": 2, "registry.model_versions": 2}


@SLOW
def test_a_failing_ingest_stops_its_downstream_and_names_the_rule(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    corrupt_copy(FTX, folder / FTX.name, row=1_000, column="close", value="nan")
    home = tmp_path / "state"
    result = bot4(home, "run", "--source", "files", "--path", str(folder), "--symbol", "BTC-PERP",
                  "--volume-unit", "quote")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert f"{FTX.name}, row 1000: rule 'price_finite_positive' violated" in out
    assert "DagsterExecutionStepExecutionError" not in out and "Traceback" not in out
    assert "runs: 1/2 succeeded" in out and "FAILED BTC-PERP" in out
    with instance_of(home) as instance:
        for key in (BARS, FEATURES, VOLATILITY, LABELS, FOLDS, LEAKAGE):
            assert not instance.get_materialized_partitions(key), key
    assert "market.bars" not in Warehouse(home / "warehouse.duckdb").row_counts()


def test_bot4_run_reports_a_bad_source_and_exits_non_zero(tmp_path):
    result = bot4(tmp_path / "state", "run", "--source", "files", "--path", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "no data files at" in result.stdout
    assert "--path" in result.stdout or "--path" in result.stderr


def test_flag_hints_and_choices(tmp_path):
    missing = bot4(tmp_path / "state", "run", "--source", "files")
    assert missing.returncode == 2 and "--path (BOT4_PATH)" in missing.stdout
    usage = bot4(tmp_path / "state", "run", "--help")
    for choice in ("bundled,files,binance", "tardis_trades", "binance_klines", "ohlcv"):
        assert choice in usage.stdout.replace(", ", ",").replace("\n", " "), choice
    bad = bot4(tmp_path / "state", "run", "--select", "key:nothing/here")
    assert bad.returncode == 2 and "matches no asset" in bad.stdout


@SLOW
def test_trades_and_quotes_run_end_to_end_and_say_what_is_too_little(tmp_path):
    """A newcomer's Tardis trades and quotes, no bars: bars are built from the trades, every
    stage runs, and the one that needs more data (the leakage proof) says how much."""
    from conftest import QUOTES, TRADES

    folder = tmp_path / "ticks"
    folder.mkdir()
    for file in (TRADES, QUOTES):
        (folder / file.name).symlink_to(file)
    home = tmp_path / "state"
    result = bot4(home, "run", "--source", "files", "--path", str(folder))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "bars BTCUSDT" in out and "(built from trades)" in out
    assert ("leakage proof for BTCUSDT needs at least 900 events with every feature defined; "
            "it has 56") in out
    with instance_of(home) as instance:
        for key in (BARS, FEATURES, VOLATILITY, LABELS, FOLDS):
            assert instance.get_materialized_partitions(key) == {"BTCUSDT"}, key
        assert not instance.get_materialized_partitions(LEAKAGE)
    counts = Warehouse(home / "warehouse.duckdb").row_counts()
    assert counts["market.bars"] == 126 and counts["market.trades"] == 9_999
    assert counts["ml.labels"] == 116


@SLOW
def test_an_unreachable_archive_is_named_as_the_root_cause(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = bot4(tmp_path / "state", "run", "--source", "binance", "--symbols", "BTCUSDT",
                  "--start", "2022-01-15", "--end", "2022-01-16",
                  "--base-url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "ConnectionError: could not download" in result.stdout
    assert "--base-url (BOT4_BINANCE_URL)" in result.stdout
    assert "DagsterExecutionStepExecutionError" not in result.stdout


def test_a_symbol_outside_the_character_set_is_refused_before_anything_runs(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / FTX.name).symlink_to(FTX)
    result = bot4(tmp_path / "state", "run", "--source", "files", "--path", str(folder),
                  "--symbol", "BTC|PERP")
    assert result.returncode == 2
    assert "invalid symbol 'BTC|PERP'" in result.stdout and "--symbol" in result.stdout
    assert "CheckError" not in result.stdout + result.stderr
    assert not (tmp_path / "state" / "dagster_home" / "history").exists()  # nothing launched


def test_status_lists_rows_and_span_per_table_and_symbol(bundled_run):
    home, result = bundled_run
    assert result.returncode == 0
    status = bot4(home, "status")
    assert status.returncode == 0
    line = next(row for row in status.stdout.splitlines()
                if "market.bars" in row and "SP500" in row)
    assert "5,031" in line and "1999-01-04 00:00 .. 2018-12-31 00:00" in line


def test_status_names_an_outside_process_that_holds_the_warehouse(tmp_path):
    home = tmp_path / "state"
    home.mkdir()
    database = home / "warehouse.duckdb"
    hold = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
            "c.execute('create table t (x int)'); print('ready', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        env = {**os.environ, "BOT4_HOME": str(home), "BOT4_WAREHOUSE_TIMEOUT": "2"}
        env.pop("DAGSTER_HOME", None)
        status = subprocess.run([sys.executable, "-m", "bot4_dagster.cli", "status"], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
    finally:
        holder.communicate("", timeout=30)
    assert status.returncode == 2
    said = status.stdout + status.stderr
    assert f"warehouse locked by PID {holder.pid}, waiting" in said
    assert f"warehouse locked by PID {holder.pid}: gave up after" in said
