"""Dagster assets: thin wrappers that load inputs, call the library, store outputs, add metadata."""
