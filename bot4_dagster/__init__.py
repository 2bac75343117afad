"""bot4_dagster: the ML layer of the Bot4 trading bot as Dagster software-defined assets.

Layers (see README, "Architecture"): ``kernels`` (numba only) <- domain library
(``data``, ``features``, ``ml``, ``trading``, ``registry``, ``perf``; no Dagster) <- the Dagster
layer (``assets``, ``resources``, ``automation``, ``definitions``).
"""

__version__ = "0.1.0"
