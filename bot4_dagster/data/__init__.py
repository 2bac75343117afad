"""Market data: formats, sources (bundled, files, binance), validation and the DuckDB warehouse."""
