"""The attention LSTM's forward pass for serving: one LSTM layer, causal multi-head
self-attention read at the last step, residual, LayerNorm and the logistic head, in float32.

Laid out for the CPU rather than ported from torch (the weights come pre-arranged in the bundle,
see :mod:`bot4_dagster.serving.layout`, so nothing is copied at load):

- **Gates as one product per step.** The input projection of every step is computed first
  (``x @ W_ih^T + b``); each step then adds ``h @ W_hh^T`` as ``Σ_k h[k] · W_hh^T[k, :]``, an
  axpy over the 4·hidden gate row. Transposed weights make every inner loop contiguous and free
  of reductions, so LLVM vectorises it without reassociating (no fastmath: results are the same
  on every run and every host).
- **A vectorisable tanh.** ``np.tanh`` is a libm call per element; :func:`tanh32` is a rational
  approximation (odd degree 13 over even degree 6, clamped beyond ±7.905, the identity below
  4e-4) accurate to a few float32 ulps, plain arithmetic that vectorises; the sigmoid is
  ``0.5 + 0.5·tanh(x/2)``.
- **Only the attention the pooling reads.** With last-step pooling the output needs one query,
  the last step's. Per head, q·k_t = (W_kᵀ q)·h_t + q·b_k and the second term is the same for
  every t, so it cancels in the softmax; and Σ_t α_t v_t = W_v (Σ_t α_t h_t) + b_v because the
  α sum to 1. The key and value projections of the L steps collapse into two matrix-vector
  products per head.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._jit import kernel

TANH_CLAMP = np.float32(7.90531110763549805)  # beyond it tanh rounds to ±1 in float32
TANH_LINEAR = np.float32(4e-4)  # below it tanh(x) = x to float32 precision
# odd numerator and even denominator coefficients of the rational approximation of tanh
_A1, _A3, _A5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), \
    np.float32(1.48572235717979e-05)
_A7, _A9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
_A11, _A13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_B4, _B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)
_HALF = np.float32(0.5)


def tanh32_python(x: Any) -> Any:
    """tanh in float32 arithmetic, within a few ulps of ``np.tanh``."""
    if x > TANH_CLAMP:
        x = TANH_CLAMP
    elif x < -TANH_CLAMP:
        x = -TANH_CLAMP
    if abs(x) < TANH_LINEAR:
        return x
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = x * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return p / q


tanh32 = kernel(inline="always", error_model="numpy")(tanh32_python)


def sigmoid32_python(x: Any) -> Any:
    return _HALF + _HALF * tanh32(_HALF * x)


sigmoid32 = kernel(inline="always", error_model="numpy")(sigmoid32_python)


def lstm_last_attention_python(
    x: np.ndarray,  # (L, F) float32: the window, oldest first
    w_ih_t: np.ndarray,  # (F, 4H) W_ih transposed
    w_hh_t: np.ndarray,  # (H, 4H) W_hh transposed
    bias: np.ndarray,  # (4H,) b_ih + b_hh
    w_q_t: np.ndarray,  # (H, H) W_q transposed, rows scaled by 1/sqrt(d)
    b_q: np.ndarray,  # (H,) scaled by 1/sqrt(d)
    w_k: np.ndarray,  # (H, H) W_k as stored (row j: key feature j)
    w_v_t: np.ndarray,  # (H, H) W_v transposed
    b_v: np.ndarray,  # (H,)
    w_o_t: np.ndarray,  # (H, H) out_proj weight transposed
    b_o: np.ndarray,  # (H,)
    gamma: np.ndarray,  # (H,) LayerNorm weight
    beta: np.ndarray,  # (H,) LayerNorm bias
    head_w: np.ndarray,  # (H,)
    head_b: float,
    heads: int,
    eps: float,
    scratch: np.ndarray,  # (L * 4H + 2 * L * H + 7 * H + heads * L,) float32 workspace
) -> float:
    """P(class 1) of one window: the network of ``ml.lstm.AttentionNet`` with last pooling."""
    steps, n_in = x.shape
    hidden = w_hh_t.shape[0]
    width = 4 * hidden
    d = hidden // heads
    gates = scratch[:steps * width].reshape((steps, width))
    at = steps * width
    outputs = scratch[at:at + steps * hidden].reshape((steps, hidden))  # h_t by step
    at += steps * hidden
    outputs_t = scratch[at:at + steps * hidden].reshape((hidden, steps))  # the same, by feature
    at += steps * hidden
    h = scratch[at:at + hidden]
    c = scratch[at + hidden:at + 2 * hidden]
    q = scratch[at + 2 * hidden:at + 3 * hidden]
    u = scratch[at + 3 * hidden:at + 4 * hidden]  # W_kᵀ q of the current head
    pooled = scratch[at + 4 * hidden:at + 5 * hidden]
    mixed = scratch[at + 5 * hidden:at + 6 * hidden]
    z = scratch[at + 6 * hidden:at + 7 * hidden]
    at += 7 * hidden
    alpha = scratch[at:at + heads * steps].reshape((heads, steps))
    # input projections of every step
    for t in range(steps):
        row = gates[t]
        for j in range(width):
            row[j] = bias[j]
        for f in range(n_in):
            xf = x[t, f]
            wf = w_ih_t[f]
            for j in range(width):
                row[j] += xf * wf[j]
    # the recurrence (gate order i, f, g, o as torch)
    for j in range(hidden):
        h[j] = 0.0
        c[j] = 0.0
    for t in range(steps):
        row = gates[t]
        for k in range(hidden):
            hk = h[k]
            wk = w_hh_t[k]
            for j in range(width):
                row[j] += hk * wk[j]
        for j in range(hidden):
            i_gate = sigmoid32(row[j])
            f_gate = sigmoid32(row[hidden + j])
            g_gate = tanh32(row[2 * hidden + j])
            o_gate = sigmoid32(row[3 * hidden + j])
            c[j] = f_gate * c[j] + i_gate * g_gate
            h[j] = o_gate * tanh32(c[j])
        for j in range(hidden):
            outputs[t, j] = h[j]
            outputs_t[j, t] = h[j]
    # the last step's query, scaled
    for j in range(hidden):
        q[j] = b_q[j]
    for k in range(hidden):
        hk = h[k]
        wk = w_q_t[k]
        for j in range(hidden):
            q[j] += hk * wk[j]
    for j in range(hidden):
        mixed[j] = b_v[j]
    for head in range(heads):
        lo = head * d
        for k in range(hidden):
            u[k] = 0.0
        for j in range(lo, lo + d):  # u = W_k[head rows]ᵀ q[head]
            qj = q[j]
            wj = w_k[j]
            for k in range(hidden):
                u[k] += qj * wj[k]
        a = alpha[head]
        for t in range(steps):
            a[t] = 0.0
        for k in range(hidden):  # scores over the steps: Σ_k u[k] h_t[k]
            uk = u[k]
            hk_t = outputs_t[k]
            for t in range(steps):
                a[t] += uk * hk_t[t]
        top = a[0]
        for t in range(1, steps):
            top = max(top, a[t])
        total = np.float32(0.0)
        for t in range(steps):
            a[t] = math.exp(np.float64(a[t] - top))
            total += a[t]
        for k in range(hidden):
            pooled[k] = 0.0
        for t in range(steps):  # Σ_t α_t h_t
            weight = a[t] / total
            ht = outputs[t]
            for k in range(hidden):
                pooled[k] += weight * ht[k]
        for k in range(hidden):  # this head's slice of W_v (Σ α h) + b_v
            pk = pooled[k]
            wk = w_v_t[k]
            for j in range(lo, lo + d):
                mixed[j] += pk * wk[j]
    # out projection, residual, LayerNorm, head
    for j in range(hidden):
        z[j] = h[j] + b_o[j]
    for k in range(hidden):
        mk = mixed[k]
        wk = w_o_t[k]
        for j in range(hidden):
            z[j] += mk * wk[j]
    # LayerNorm and the head in float64 (scalars: as cheap, and the same in both twins)
    mean = 0.0
    for j in range(hidden):
        mean += np.float64(z[j])
    mean = mean / hidden
    var = 0.0
    for j in range(hidden):
        var += (np.float64(z[j]) - mean) ** 2
    var = var / hidden
    inv = 1.0 / math.sqrt(var + eps)
    logit = np.float64(head_b)
    for j in range(hidden):
        logit += ((np.float64(z[j]) - mean) * inv * np.float64(gamma[j])
                  + np.float64(beta[j])) * np.float64(head_w[j])
    return 1.0 / (1.0 + math.exp(-logit))


lstm_last_attention = kernel(error_model="numpy")(lstm_last_attention_python)


def scratch_size(steps: int, hidden: int, heads: int) -> int:
    """Float32 elements of the workspace :func:`lstm_last_attention` needs."""
    return steps * 4 * hidden + 2 * steps * hidden + 7 * hidden + heads * steps


def lstm_last_attention_many_python(x, w_ih_t, w_hh_t, bias, w_q_t, b_q, w_k, w_v_t, b_v, w_o_t,
                                    b_o, gamma, beta, head_w, head_b, heads, eps, scratch, out):
    """:func:`lstm_last_attention` for each window of ``x`` (n, L, F), into ``out`` (n,)."""
    for i in range(x.shape[0]):
        out[i] = lstm_last_attention(x[i], w_ih_t, w_hh_t, bias, w_q_t, b_q, w_k, w_v_t, b_v,
                                     w_o_t, b_o, gamma, beta, head_w, head_b, heads, eps,
                                     scratch)


lstm_last_attention_many = kernel(error_model="numpy")(lstm_last_attention_many_python)
