"""Benchmarks of bot4_dagster against public references: ``python -m benchmarks [-k substr]``.

Each ``bench_*.py`` module exposes ``run(report)`` and adds its benchmarks to the report.
"""
