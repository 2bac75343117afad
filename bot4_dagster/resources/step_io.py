"""What one op hands the next inside a run (the training fan-out), as Parquet or JSON files under
``BOT4_HOME/steps/<run id>/``: never pickle, and readable by a person who wants to look."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ..settings import state_dir


class StepIOManager(dg.ConfigurableIOManager):
    """DataFrames as Parquet, plain data (dicts, lists, numbers, text) as JSON."""

    def _path(self, context: dg.OutputContext) -> Path:
        return state_dir() / "steps" / context.run_id / "__".join(context.get_identifier()[1:])

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = _with(path, ".partial")
        if isinstance(obj, pd.DataFrame):
            obj.to_parquet(partial, index=False)
            final = _with(path, ".parquet")
        else:
            partial.write_text(json.dumps(obj))
            final = _with(path, ".json")
        os.replace(partial, final)  # a killed step leaves no half file under the final name

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None:
            raise ValueError("StepIOManager loads only the outputs of other ops of the run")
        path = self._path(upstream)
        if _with(path, ".parquet").exists():
            return pd.read_parquet(_with(path, ".parquet"))
        return json.loads(_with(path, ".json").read_text())


def _with(path: Path, suffix: str) -> Path:
    """``path`` with ``suffix`` appended (step keys hold dots, so not ``with_suffix``)."""
    return path.with_name(path.name + suffix)
