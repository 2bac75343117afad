"""Which runs a selection needs, from the asset graph (``bot4 run``; ``launch.py`` runs them).

One run per symbol partition holds every selected per-symbol asset (job ``symbol_pipeline``, or
the smallest job that holds the selection): its execution plan orders the steps by the graph, and
a failed step or blocking check stops what depends on it inside the run. Unpartitioned assets run
once; a run waits for the runs of its upstream assets. Nothing here lists stages.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg

from .partitions import SYMBOLS


class PlanError(ValueError):
    """The selection cannot be launched (unknown asset, partitioning the launcher does not know)."""


@dataclass
class PlannedRun:
    """One run to launch: a job, the assets it materializes, and the runs it waits for."""

    job: str
    assets: tuple[dg.AssetKey, ...]
    partition: str | None = None
    upstream: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return self.partition or ", ".join(a.to_user_string() for a in self.assets)


@dataclass
class Plan:
    runs: list[PlannedRun]
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def plan_runs(graph, selection: str | None, symbols: Iterable[str],
              fed: Mapping[str, set[dg.AssetKey]] | None = None,
              sourced: set[dg.AssetKey] = frozenset()) -> Plan:
    """The runs that materialize ``selection`` (Dagster's selection syntax; default everything)
    for ``symbols``. ``sourced`` are the assets that read the source (the ingest assets);
    ``fed`` maps a symbol to those its source can feed, and the others are left out for that
    symbol (a bars-only source has no trades to ingest)."""
    keys = _select(graph, selection)
    by_partitioning: dict[bool, list[dg.AssetKey]] = {True: [], False: []}
    for key in keys:
        partitions = graph.get(key).partitions_def
        if partitions is not None and partitions != SYMBOLS:
            raise PlanError(f"{key.to_user_string()} is partitioned by {partitions}; bot4 run "
                            "launches symbol-partitioned and unpartitioned assets")
        by_partitioning[partitions is not None].append(key)
    fed = fed or {}
    runs, notes = [], []
    for symbol in sorted(symbols) if by_partitioning[True] else []:
        assets = [k for k in by_partitioning[True] if k not in sourced or k in fed.get(symbol, ())]
        if dropped := [k for k in by_partitioning[True] if k not in assets]:
            notes.append(f"{symbol}: the source holds no data for "
                         f"{', '.join(k.to_user_string() for k in dropped)}")
        if assets:
            runs.append(PlannedRun(_job_for(graph, assets), tuple(assets), symbol))
    if by_partitioning[False]:
        runs.append(PlannedRun(_job_for(graph, by_partitioning[False]),
                               tuple(by_partitioning[False])))
    for i, run in enumerate(runs):
        parents = {p for a in run.assets for p in graph.get(a).parent_keys}
        run.upstream = tuple(j for j, other in enumerate(runs) if j != i
                             and parents & set(other.assets)
                             and (other.partition is None or run.partition is None
                                  or other.partition == run.partition))
    return Plan(runs, notes)


def _select(graph, selection: str | None) -> list[dg.AssetKey]:
    everything = graph.materializable_asset_keys
    if not selection:
        return sorted(everything, key=lambda k: k.to_user_string())
    if bare := re.fullmatch(r"(\+*)([\w./-]+)(\+*)", selection.strip()):  # ml/labels+
        selection = f'{bare[1]}key:"{bare[2]}"{bare[3]}'
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            chosen = dg.AssetSelection.from_string(selection).resolve(graph)
    except dg.DagsterError as exc:  # DagsterInvalidAssetSelectionError
        raise PlanError(f"--select {selection!r}: {exc}; e.g. 'ml/labels+', "
                        "'group:features', 'key:\"market/bars\"'") from None
    if not chosen:
        raise PlanError(f"--select {selection!r} matches no asset; assets: "
                        f"{', '.join(sorted(k.to_user_string() for k in everything))}")
    return sorted(chosen & everything, key=lambda k: k.to_user_string())


def _job_for(graph, assets: list[dg.AssetKey]) -> str:
    """The smallest named job that materializes all of ``assets``."""
    names = set(graph.get_materialization_job_names(assets[0]))
    for key in assets[1:]:
        names &= set(graph.get_materialization_job_names(key))
    named = [n for n in names if not n.startswith("__")]
    if not named:
        raise PlanError("no job holds " + ", ".join(a.to_user_string() for a in assets))
    return min(named, key=lambda n: (len(graph.get_materialization_asset_keys_for_job(n)), n))
