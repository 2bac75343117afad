"""Every asset key, declared once. Asset modules, jobs, sensors and ``bot4 run`` refer to these
names, so a key cannot be spelled two ways."""

import dagster as dg

BARS, TRADES, QUOTES = (dg.AssetKey(["market", t]) for t in ("bars", "trades", "quotes"))
INGEST = {"bars": BARS, "trades": TRADES, "quotes": QUOTES}  # table -> its ingest asset

FEATURES = dg.AssetKey(["features", "microstructure_features"])
VOLATILITY = dg.AssetKey(["ml", "garch_volatility"])
LABELS = dg.AssetKey(["ml", "labels"])
FOLDS = dg.AssetKey(["ml", "cv_folds"])
LEAKAGE = dg.AssetKey(["ml", "leakage_proof"])
PERF_MANIFEST = dg.AssetKey(["perf", "manifest"])
BASE_MODELS = dg.AssetKey(["ml", "base_models"])
OOF = dg.AssetKey(["ml", "oof_predictions"])
ENSEMBLE = dg.AssetKey(["ml", "stacking_ensemble"])
CALIBRATOR = dg.AssetKey(["ml", "calibrator"])
CANDIDATE = dg.AssetKey(["ml", "model_candidate"])  # its table: ml.model_candidates
REGISTRY_PROMOTION = dg.AssetKey(["registry", "registry_promotion"])
