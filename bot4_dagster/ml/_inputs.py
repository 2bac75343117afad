"""Argument checks shared by the statistics modules: one wording for the same mistake."""

from __future__ import annotations

import operator

import numpy as np


def finite_vector(x: object, name: str, min_size: int = 0) -> np.ndarray:
    """``x`` as a contiguous, finite 1-D float64 array of at least ``min_size`` values."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} observations, got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} non-finite values (first at index {bad[0]})")
    return arr


def integer(value: object, name: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum`` (bools and floats are refused)."""
    try:
        out = operator.index(value)  # type: ignore[arg-type]  # a TypeError is the check
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out
