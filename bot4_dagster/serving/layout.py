"""The arrays the serving kernels read, in the layout they read them, computed once when a
candidate is built and stored in its bundle (``serving/...``), so loading copies nothing.

- ``serving/attention_lstm/*``: the network's tensors transposed for contiguous inner loops,
  the two LSTM biases summed, the key/value/query projections split out of ``in_proj`` and the
  query scaled by 1/√d (see :mod:`bot4_dagster.kernels.lstm`), all float32;
- ``serving/blend/*``: the parameters of every blend mode, so the serving side can run any
  of them (the candidate ships one, named in its manifest): weights of the mean and weighted
  blends, the rank blend's sorted training probabilities and isotonic knots, the stacking
  meta-learner's coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

LSTM_PREFIX = "serving/attention_lstm/"
BLEND_PREFIX = "serving/blend/"
LSTM_ARRAYS = ("w_ih_t", "w_hh_t", "bias", "w_q_t", "b_q", "w_k", "w_v_t", "b_v", "w_o_t",
               "b_o", "gamma", "beta", "head_w", "head_b")


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def lstm_layout(state: Mapping[str, np.ndarray], heads: int) -> dict[str, np.ndarray]:
    """The serving arrays of an ``AttentionNet`` with last-step pooling, from its state dict
    (the names of ``flat_models.LSTM_TENSORS``)."""
    hidden = state["lstm.weight_hh_l0"].shape[1]
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
    scale = np.float32(1.0 / math.sqrt(hidden // heads))
    w_in, b_in = state["attn.in_proj_weight"], state["attn.in_proj_bias"]
    w_q, w_k, w_v = (w_in[i * hidden:(i + 1) * hidden] for i in range(3))
    b_q, b_v = b_in[:hidden], b_in[2 * hidden:]
    arrays = {
        "w_ih_t": state["lstm.weight_ih_l0"].T,
        "w_hh_t": state["lstm.weight_hh_l0"].T,
        "bias": _f32(state["lstm.bias_ih_l0"]) + _f32(state["lstm.bias_hh_l0"]),
        "w_q_t": (_f32(w_q) * scale).T, "b_q": _f32(b_q) * scale,
        "w_k": w_k, "w_v_t": w_v.T, "b_v": b_v,
        "w_o_t": state["attn.out_proj.weight"].T, "b_o": state["attn.out_proj.bias"],
        "gamma": state["norm.weight"], "beta": state["norm.bias"],
        "head_w": state["head.weight"].reshape(-1), "head_b": state["head.bias"].reshape(1),
    }
    return {LSTM_PREFIX + name: _f32(value) for name, value in arrays.items()}


def blend_layout(blenders: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The parameters of every fitted ``StackingEnsemble`` of ``blenders`` (mode → blender)."""
    out: dict[str, np.ndarray] = {}
    for mode, blender in blenders.items():
        prefix = f"{BLEND_PREFIX}{mode}/"
        if mode in ("mean", "weighted"):
            out[prefix + "weights"] = np.asarray(blender.weights_, dtype=np.float64)
        elif mode == "rank":
            out[prefix + "train_sorted"] = np.ascontiguousarray(blender.train_sorted_,
                                                                dtype=np.float64)
            out[prefix + "x"] = np.asarray(blender.rank_thresholds_, dtype=np.float64)
            out[prefix + "y"] = np.asarray(blender.rank_probabilities_, dtype=np.float64)
        elif mode == "stacking":
            out[prefix + "coef"] = np.asarray(blender.meta_.coef_[0], dtype=np.float64)
            out[prefix + "intercept"] = np.asarray(blender.meta_.intercept_, dtype=np.float64)
            out[prefix + "clip"] = np.array([blender.clip_], dtype=np.float64)
    return out
