"""``registry/registry_promotion`` per symbol: the newest model candidate registered in MLflow
with its lineage, made the challenger and the shadow, and the decision audited. The champion
changes only through the promotion gates on live evidence (bot4_dagster.registry.promotion)."""

import dagster as dg
import pandas as pd

from ..automation.conditions import refresh_when_deps_update
from ..automation.partitions import SYMBOLS
from ..resources.registry import RegistryResource
from .keys import CANDIDATE, ENSEMBLE, REGISTRY_PROMOTION
from .metadata import column_schema, table


def _latest_float(context: dg.AssetExecutionContext, key: dg.AssetKey, name: str):
    """Metadata ``name`` of ``key``'s latest materialization of this partition, if any."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[context.partition_key]),
        limit=1).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get(name)
    return None if value is None else value.value


@dg.asset(
    key=REGISTRY_PROMOTION, partitions_def=SYMBOLS, group_name="registry",
    ins={"model_candidate": dg.AssetIn(CANDIDATE)}, deps=[ENSEMBLE],
    metadata={"partition_expr": "symbol", "table": "registry.model_versions",
              "dagster/column_schema": column_schema("registry.model_versions")},
    automation_condition=refresh_when_deps_update(), kinds={"mlflow", "duckdb"},
    code_version="1",
    description="Registers the newest ml/model_candidate bundle as a version of the MLflow "
                "model bot4.<strategy>.<symbol> with its mandatory lineage tags, and makes it "
                "the challenger and the shadow; every decision goes to the registry's audit "
                "log. The champion alias moves only through the shadow and canary gates. "
                "registry.model_versions lists the symbol's versions and their aliases.",
)
def registry_promotion(context: dg.AssetExecutionContext, model_registry: RegistryResource,
                       model_candidate: pd.DataFrame) -> dg.MaterializeResult:
    from ..registry.model_registry import RegistryError
    from ..registry.registration import register_newest

    symbol = context.partition_key
    try:
        done = register_newest(
            model_candidate, symbol=symbol, strategy=model_registry.strategy,
            deflated_sharpe=_latest_float(context, ENSEMBLE, "deflated_sharpe_ratio"),
            actor=f"dagster run {context.run_id}", registry=model_registry.registry())
    except (RegistryError, ValueError) as exc:
        raise dg.Failure(str(exc)) from None
    pinned = done.pinned
    context.log.info(f"{symbol}: {pinned.uri}: {'; '.join(done.decision.trace)}")
    metadata = {
        "model": pinned.name, "version": dg.MetadataValue.int(int(pinned.version)),
        "model_uri": pinned.uri, "tracking_uri": done.tracking_uri,
        "reused": dg.MetadataValue.bool(done.reused),
        "decision": dg.MetadataValue.md("\n".join(f"- {line}" for line in done.decision.trace)),
        **{name: table(frame) for name, frame in done.tables().items()},
    }
    if done.ui_url:
        metadata["mlflow_ui"] = dg.MetadataValue.url(done.ui_url)
    else:
        metadata["mlflow_ui"] = (f"mlflow ui --backend-store-uri {done.tracking_uri}  "
                                 f"(then open {pinned.name}, version {pinned.version})")
    return dg.MaterializeResult(value=done.versions, metadata=metadata)
