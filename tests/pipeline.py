"""Running assets in-process for a symbol partition, as the asset tests do (``bot4 run`` launches
the same job, ``symbol_pipeline``, through the code location), and corrupted input files."""

from __future__ import annotations

import gzip
from pathlib import Path

import dagster as dg
import pandas as pd

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def materialize(defs: dg.Definitions, instance: dg.DagsterInstance, symbol: str,
                *assets: dg.AssetKey, ops: dict | None = None) -> dg.ExecuteInProcessResult:
    """Materialize ``assets`` (default: all of them) of one symbol; ``ops`` is op config, e.g.
    ``{"market__bars": {"start": "2022-01-01"}}``."""
    run_config = dict(QUIET)
    if ops:
        run_config["ops"] = {op: {"config": config} for op, config in ops.items()}
    return defs.resolve_job_def("symbol_pipeline").execute_in_process(
        instance=instance, partition_key=symbol, raise_on_error=False, run_config=run_config,
        asset_selection=list(assets) or None)


def failure_of(result: dg.ExecuteInProcessResult):
    """The user failure (dg.Failure) of the first failed step."""
    return result.get_step_failure_events()[0].step_failure_data.user_failure_data


def metadata_of(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    return next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key == key)


def corrupt_copy(src: Path, dst: Path, row: int, column: str, value: str) -> None:
    """A gzip CSV copy of ``src`` with one cell replaced (file row 2 is the first data row)."""
    frame = pd.read_csv(src)
    frame[column] = frame[column].astype(object)
    frame.loc[row - 2, column] = value
    with gzip.open(dst, "wt") as out:
        frame.to_csv(out, index=False)
