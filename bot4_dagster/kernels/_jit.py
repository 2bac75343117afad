"""The kernel twin pattern (from ``arch``): every hot loop is plain Python, compiled by numba.

Why twins: the Python version is the readable specification, the one tests compare against and the
one that runs where numba cannot (``BOT4_DISABLE_NUMBA=1``, debugging, coverage).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

#: False when ``BOT4_DISABLE_NUMBA=1`` was set at import time: kernels are then the Python twins.
NUMBA_ENABLED: bool = os.environ.get("BOT4_DISABLE_NUMBA", "").strip() != "1"

_DEFAULTS: dict[str, Any] = {"cache": True, "nogil": True}


def kernel(**njit_options: Any) -> Callable[[F], F]:
    """Return a decorator that njit-compiles a Python twin, or leaves it alone if numba is off.

    Defaults are ``cache=True, nogil=True``; ``fastmath`` stays off unless asked for, because
    reassociation can change results that tests pin.
    """
    options = {**_DEFAULTS, **njit_options}

    def decorate(fn: F) -> F:
        if not NUMBA_ENABLED:
            return fn
        import numba

        return cast(F, numba.njit(fn, **options))

    return decorate
