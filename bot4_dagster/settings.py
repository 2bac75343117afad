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
"""


def state_dir() -> Path:
    return Path(os.environ.get("BOT4_HOME", ".bot4")).expanduser().resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get("BOT4_WAREHOUSE", state_dir() / "warehouse.duckdb")).resolve()


def cache_dir() -> Path:
    return state_dir() / "cache"


def dagster_home() -> Path:
    """DAGSTER_HOME if set, else ``<state>/dagster_home``, created with telemetry off."""
    home = Path(os.environ.get("DAGSTER_HOME") or state_dir() / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home
