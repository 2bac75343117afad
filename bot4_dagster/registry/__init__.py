"""The model registry: the promotion statistics and the rollback rule, pure functions with
readable traces; the MLflow-backed registry that acts on them is still to come."""
