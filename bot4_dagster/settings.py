"""Where bot4 keeps its state: one folder (``BOT4_HOME``, default ``./.bot4``) holding the DuckDB
warehouse, the Dagster instance (DAGSTER_HOME), download caches and benchmark reports."""

from __future__ import annotations

import os
from pathlib import Path

DAGSTER_YAML = """\
# Written by bot4. Runs are stored in SQLite under this folder; see README ("Teams") for Postgres.
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
    tag_concurrency_limits:  # runs of one symbol partition never overlap (as in `bot4 run`)
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
python_logs:  # "warehouse locked by PID N, waiting…" from inside a step reaches the run's log
  managed_python_loggers:
    - bot4_dagster.warehouse
  python_log_level: WARNING
"""


def state_dir() -> Path:
    return Path(os.environ.get("BOT4_HOME", ".bot4")).expanduser().resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get("BOT4_WAREHOUSE", state_dir() / "warehouse.duckdb")).resolve()


def cache_dir() -> Path:
    return state_dir() / "cache"


def candidates_dir() -> Path:
    """Where model candidate bundles are stored, one directory each."""
    return state_dir() / "models" / "candidates"


def registry_dir() -> Path:
    """The embedded model registry: MLflow's SQLite store and artifacts, and the audit log."""
    return state_dir() / "mlflow"


def bench_dir() -> Path:
    """Where ``make bench`` writes its reports."""
    return state_dir() / "bench"


def latest_bench_report() -> Path:
    """The report of the latest ``make bench``, which the perf manifest reads."""
    return bench_dir() / "latest.json"


def dagster_home() -> Path:
    """DAGSTER_HOME if set, else ``<state>/dagster_home``, created with telemetry off."""
    home = Path(os.environ.get("DAGSTER_HOME") or state_dir() / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home
