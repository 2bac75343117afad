"""What ``registry/registry_promotion`` does, without Dagster: register a symbol's newest model
candidate and make it the challenger, in shadow; the champion moves only through the shadow →
canary gates (``promotion``) on live evidence, never because a new bundle was trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .audit import Record
from .model_registry import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_STRATEGY,
    ModelRegistry,
    Pinned,
    RegistryError,
)
from .promotion import STEPS, paired_sample_size
from .versions import versions_table


@dataclass(frozen=True)
class Registration:
    pinned: Pinned
    reused: bool
    aliases: dict[str, str]
    decision: Record
    tracking_uri: str
    versions: pd.DataFrame  # registry.model_versions of the symbol

    @property
    def ui_url(self) -> str | None:
        """The version's page in the MLflow UI of a tracking server (None when embedded)."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        return (f"{self.tracking_uri.rstrip('/')}/#/models/{self.pinned.name}/versions/"
                f"{self.pinned.version}")

    def tables(self) -> dict[str, pd.DataFrame]:
        """The version's lineage tags and the model's aliases, for a reader."""
        return {"lineage": pd.DataFrame(sorted(self.pinned.tags.items()),
                                        columns=["tag", "value"]),
                "aliases": pd.DataFrame(sorted(self.aliases.items()),
                                        columns=["alias", "version"])}


def register_newest(candidates: pd.DataFrame, *, symbol: str, strategy: str = DEFAULT_STRATEGY,
                    deflated_sharpe: float | None = None, actor: str = "",
                    registry: ModelRegistry | None = None) -> Registration:
    """Register the newest row of ``candidates`` (``ml.model_candidates`` of ``symbol``) and,
    unless it already is, make it the challenger and the shadow; the decision is audited with
    the candidate's deflated Sharpe ratio and what promotion still needs."""
    if candidates.empty:
        raise RegistryError(f"{symbol}: no model candidate to register (materialize "
                            "ml/model_candidate first)")
    registry = registry or ModelRegistry()
    newest = candidates.iloc[-1]
    registered = registry.register(Path(str(newest["path"])), strategy=strategy, actor=actor)
    pinned = registered.pinned
    aliases = registry.aliases(pinned.name)
    inputs = {"bundle_id": str(newest["id"]), "deflated_sharpe_ratio": deflated_sharpe,
              "reused": registered.reused}
    held = [alias for alias in (CHAMPION, CHALLENGER) if aliases.get(alias) == pinned.version]
    if held:
        decision = registry.record(pinned.name, version=pinned.version, actor=actor,
                                   inputs=inputs, trace=[f"version {pinned.version} already "
                                                         f"holds {held[0]}: no alias changes"])
    else:
        trace = [f"registered bundle {newest['id']} as version {pinned.version}",
                 f"deflated Sharpe ratio of the walk-forward selection: "
                 f"{'not recorded' if deflated_sharpe is None else f'{deflated_sharpe:.3f}'}",
                 f"next: shadow on live bars until {paired_sample_size():,} paired decisions, "
                 f"then canary steps {', '.join(f'{s:.0%}' for s in STEPS[1:])}"]
        if CHAMPION not in aliases:
            trace.append("there is no champion yet: the first is promoted by a human "
                         "(ModelRegistry.promote)")
        decision = registry.assign_challenger(pinned.name, pinned.version, actor=actor,
                                              inputs=inputs, trace=trace)
        aliases = registry.aliases(pinned.name)
    versions = registry.client.search_model_versions(f"name = '{pinned.name}'")
    return Registration(pinned, registered.reused, aliases, decision, registry.tracking_uri,
                        versions_table(versions, aliases, model=pinned.name, symbol=symbol))

