"""Machine-learning library: GARCH, residual diagnostics, labels, CV, models, calibration, stats."""
