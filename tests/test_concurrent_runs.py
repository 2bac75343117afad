"""Three ``bot4 run`` at once into one fresh BOT4_HOME, each ingesting its own slice of one
symbol's history: the same warehouse as the same three one after the other. This covers the
races a newcomer meets: creating the Dagster instance's storage, registering the same new symbol
partition, writing the warehouse and the files index, and downstream assets computed while
another invocation is still ingesting."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pandas as pd
import pytest
from conftest import FTX
from test_cli import bot4

from bot4_dagster.data.warehouse import Warehouse

# three overlapping exports of FTX minutes, one day and a half in all; every stage but the
# leakage proof (which needs more history than one slice holds) and the models (which write
# their tables the way every computed stage does, and would train 40 fits per run here, nor the
# registry, which registers what the models build)
SLICES = [("2022-01-01", "2022-01-01 15:00"), ("2022-01-01 12:00", "2022-01-02 03:00"),
          ("2022-01-02", "2022-01-02 12:00")]
SELECTION = ('key:"market/bars"+ and not key:"ml/leakage_proof" and not group:models '
             'and not group:registry')

ORDER = {"market.bars": ["symbol", "ts"], "features.microstructure_features": ["symbol", "ts"],
         "ml.garch_volatility": ["symbol", "ts"], "ml.labels": ["symbol", "t0"],
         "ml.cv_folds": ["symbol", "scheme", "split", "t0"]}


def _slices(tmp_path) -> list:
    """Three overlapping exports of the FTX bars, one folder each."""
    raw = pd.read_csv(FTX, float_precision="round_trip")  # written back exactly
    ts = pd.to_datetime(raw["timestamp"], utc=True)
    folders = []
    for i, (start, end) in enumerate(SLICES):
        folder = tmp_path / f"export{i}"
        folder.mkdir()
        part = raw[(ts >= pd.Timestamp(start, tz="UTC")) & (ts < pd.Timestamp(end, tz="UTC"))]
        with gzip.open(folder / f"ftx_btc-perp_part{i}.csv.gz", "wt") as out:
            part.to_csv(out, index=False)
        folders.append(folder)
    return folders


def _args(folder) -> list[str]:
    return ["run", "--source", "files", "--path", str(folder), "--symbol", "BTC-PERP",
            "--volume-unit", "quote", "--select", SELECTION]


def _tables(home) -> dict[str, pd.DataFrame]:
    warehouse = Warehouse(home / "warehouse.duckdb")
    return {table: warehouse.query(f"select * from {table}").sort_values(order)
            .reset_index(drop=True) for table, order in ORDER.items()}


@pytest.mark.slow
def test_three_concurrent_runs_equal_the_same_three_in_sequence(tmp_path):
    folders = _slices(tmp_path)
    together = tmp_path / "together"
    processes = [subprocess.Popen([sys.executable, "-m", "bot4_dagster.cli", *_args(f)],
                                  env={**_env(together)}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for f in folders]
    outputs = [p.communicate(timeout=1800)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]

    in_turn = tmp_path / "in_turn"
    for folder in folders:
        result = bot4(in_turn, *_args(folder))
        assert result.returncode == 0, result.stdout[-4000:]

    concurrent, sequential = _tables(together), _tables(in_turn)
    assert len(concurrent["market.bars"]) == 2_160  # every slice's rows, the overlaps once
    for table, frame in sequential.items():
        pd.testing.assert_frame_equal(concurrent[table], frame, obj=table)


def _env(home) -> dict:
    import os

    env = {**os.environ, "BOT4_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    return env
