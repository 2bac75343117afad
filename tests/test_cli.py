"""``bot4 run`` (what ``make run`` calls) on the bundled data, offline, twice: same tables, runs
recorded in the Dagster instance under BOT4_HOME so ``make ui`` shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from bot4_dagster.data.warehouse import Warehouse


def bot4(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BOT4_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "bot4_dagster.cli", *args], env=env, check=False,
                          capture_output=True, text=True, timeout=600)


def test_bot4_run_materializes_the_bundled_data_and_is_idempotent(tmp_path):
    home = tmp_path / "state"
    first = bot4(home, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    for expected in ("runs: 9/9 succeeded",
                     ("assets materialized: features/microstructure_features, market/bars, "
                      "ml/cv_folds, ml/garch_volatility, ml/labels, ml/leakage_proof, "
                      "perf/manifest"),
                     "checks: 8 passed, 0 failed", "market.bars", "10,062",
                     str(home / "warehouse.duckdb"), "make ui", "http://127.0.0.1:3000"):
        assert expected in first.stdout, expected
    assert "leaked" not in first.stderr

    counts = Warehouse(home / "warehouse.duckdb").row_counts()
    second = bot4(home, "run")
    assert second.returncode == 0, second.stdout + second.stderr
    assert Warehouse(home / "warehouse.duckdb").row_counts() == counts == {
        "features.microstructure_features": 10_062, "market.bars": 10_062,
        "ml.cv_folds": 234_310, "ml.garch_volatility": 10_062, "ml.labels": 10_042,
        "ml.leakage_proof": 10, "perf.manifest": 0}

    dagster_home = home / "dagster_home"
    assert "enabled: false" in (dagster_home / "dagster.yaml").read_text()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 18 and all(r.is_success for r in runs)
        assert {r.job_name for r in runs} == {"ingest_bars", "microstructure_features",
                                              "garch_volatility", "labels_and_folds",
                                              "perf_manifest_job"}


def test_bot4_run_reports_a_bad_source_and_exits_non_zero(tmp_path):
    result = bot4(tmp_path / "state", "run", "--source", "files", "--path", str(tmp_path / "none"))
    assert result.returncode != 0
    assert "no data files at" in (result.stdout + result.stderr)
