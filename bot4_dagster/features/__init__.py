"""Feature engineering: the 21 microstructure features, batch and incremental."""
