"""What a materialization was computed from, as Dagster records it: the data version of each
input partition, for a model's lineage."""

import dagster as dg


def input_data_versions(context: dg.AssetExecutionContext,
                        keys: list[dg.AssetKey]) -> dict[str, str | None]:
    """The latest data version of each of ``keys`` in this run's partition (None if it has
    none: an input written before data versions, or never materialized)."""
    versions = {}
    for key in keys:
        record = context.instance.get_latest_data_version_record(
            key, partition_key=context.partition_key)
        event = record.asset_materialization if record is not None else None
        versions[key.to_user_string()] = (event.tags or {}).get("dagster/data_version") \
            if event is not None else None
    return versions
