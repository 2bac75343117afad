"""The serving path: a candidate bundle served from memory-mapped arrays by numba kernels."""
