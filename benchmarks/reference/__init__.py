"""Independent plain pandas/numpy transcriptions that tests and benchmarks compare against."""
