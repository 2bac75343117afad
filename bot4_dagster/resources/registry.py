"""Where the model registry is, as a resource so the UI's launchpad can point a run at a
team's MLflow server: ``tracking_uri`` (default: ``MLFLOW_TRACKING_URI``, else the embedded
SQLite store under ``BOT4_HOME/mlflow``) and the strategy that names the registered models."""

from __future__ import annotations

import dagster as dg


class RegistryResource(dg.ConfigurableResource):
    """README, "Model registry"."""

    tracking_uri: str | None = None
    strategy: str = "triple_barrier"

    def registry(self):
        # imported here: mlflow takes ~2.5 s to import, and only the registry's steps need it
        from ..registry.model_registry import ModelRegistry

        return ModelRegistry(self.tracking_uri)


__all__ = ["RegistryResource"]
