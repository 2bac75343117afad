"""The model registry: an MLflow-backed store of model candidate bundles with lineage, aliases
and an audit log (``model_registry``, ``audit``, ``lineage``), and the pure rules that decide
on it: the promotion statistics and gates (``promotion``) and the rollback rule (``rollback``)."""
