"""The attention LSTM base learner: an LSTM over the window of bars up to t0, causal multi-head
self-attention over its outputs, and a logistic head.

Training is leakage-aware and reproducible: early stopping uses a validation split taken from
the *end* of the training rows, with the training labels that reach into it purged (the caller
passes training rows only, never a test fold); a seed fixes initialisation and shuffling on CPU;
torch runs with ``threads`` threads (one trains ~4x faster than two on a 2-core host) and the
caller's thread count and global RNG are restored afterwards.

Inputs are used as given: standardise them per fold *before* ``fit``/``predict`` (the
scaler belongs to the fold's inputs, not to the model). A fitted model is saved without pickle:
the weights in one safetensors file, the hyper-parameters and shapes as its JSON metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._inputs import integer

POOLING = ("last", "attention")
FORMAT = "bot4.attention_lstm/1"
_PREDICT_BATCH = 1024


class AttentionNet(nn.Module):
    """(batch, L, n_features) → LSTM → causal self-attention (residual + LayerNorm) → pooling →
    logit. Step t only ever sees steps ≤ t, so a window's representation cannot peek ahead."""

    def __init__(self, n_features: int, hidden: int = 32, heads: int = 4, pooling: str = "last"):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
        self.pooling = pooling
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.score = nn.Linear(hidden, 1) if pooling == "attention" else None
        self.head = nn.Linear(hidden, 1)

    def _encode(self, x: torch.Tensor, weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, _ = self.lstm(x)
        steps = x.shape[1]
        future = torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=x.device), 1)
        out, attention = self.attn(h, h, h, attn_mask=future, need_weights=weights,
                                   average_attn_weights=False)
        return self.norm(h + out), attention

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, L, hidden): each step's representation after attention and LayerNorm."""
        return self._encode(x, weights=False)[0]

    def _logit(self, x: torch.Tensor, weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        z, attention = self._encode(x, weights)
        if self.score is None:
            pooled = z[:, -1]
        else:
            alpha = torch.softmax(self.score(z), dim=1)  # (batch, L, 1), sums to 1 over steps
            pooled = (alpha * z).sum(dim=1)
        return self.head(pooled).squeeze(-1), attention

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """(batch,) log-odds; what training differentiates (stable BCE-with-logits)."""
        return self._logit(x, weights=False)[0]

    def forward(self, x: torch.Tensor,
                return_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(batch,) probabilities; with ``return_attention`` also the (batch, heads, L, L)
        attention weights, zero above the diagonal, summing to 1 over keys."""
        logit, attention = self._logit(x, weights=return_attention)
        if return_attention:
            assert attention is not None
            return torch.sigmoid(logit), attention
        return torch.sigmoid(logit)


def weighted_bce(logit: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ wᵢ·BCE(logitᵢ, yᵢ) / Σ wᵢ: a zero weight is the same as dropping the row; all-zero
    weights give 0 rather than NaN."""
    loss = nn.functional.binary_cross_entropy_with_logits(logit, target, reduction="none")
    total = weight.sum()
    return (weight * loss).sum() / torch.where(total > 0, total, torch.ones_like(total))


def _instants(values: object, name: str) -> np.ndarray:
    """Comparable times: int64 ns for datetimes (tz-aware ones in UTC), integers kept exact."""
    index = pd.Index(values)
    if index.isna().any():
        raise ValueError(f"{name} has {int(index.isna().sum())} missing time(s)")
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        return index.to_numpy("datetime64[ns]").view(np.int64)
    if index.dtype.kind in "iu":
        return index.to_numpy(np.int64)
    if index.dtype.kind == "f":
        return index.to_numpy(np.float64)
    raise ValueError(f"{name} must hold datetimes or numbers (int64 ns), got dtype {index.dtype}")


def inner_validation_split(t0: object, t1: object, fraction: float,
                           embargo: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) for early stopping: the last ``fraction`` of the samples (t0 sorted;
    at least one) validate; a training label [t0ᵢ, t1ᵢ] that reaches the validation start
    (t1ᵢ ≥ t0 of the first validation sample, closed) is purged, as in ``cv.roles``; then the
    last ``embargo`` remaining training samples are dropped too (nothing follows the validation
    block, so the gap goes before it). ``fraction`` = 0: every sample trains, none validates."""
    start, end = _instants(t0, "t0"), _instants(t1, "t1")
    n = len(start)
    if len(end) != n:
        raise ValueError(f"t0 has {n} values but t1 has {len(end)}")
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    embargo = integer(embargo, "embargo", 0)
    if n > 1 and (np.diff(start) < 0).any():
        raise ValueError("t0 must be sorted: the validation split is the end of the time order")
    bad = np.flatnonzero(end < start)
    if bad.size:
        raise ValueError(f"label {bad[0]} ends before it starts: t1 = {end[bad[0]]} "
                         f"< t0 = {start[bad[0]]}")
    n_val = max(1, round(n * fraction)) if fraction > 0 else 0
    first = n - n_val
    train = np.flatnonzero(end[:first] < start[first]) if n_val else np.arange(n)
    train = train[:max(0, len(train) - embargo)] if n_val else train
    if not len(train):
        raise ValueError(f"no training samples left: of {n} samples {n_val} validate and the "
                         f"{first} before them reach into the validation span or the embargo "
                         f"of {embargo}")
    return train, np.arange(first, n)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _windows(X: object) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    if x.ndim != 3:
        raise ValueError(f"X must be 3-D windows (n, L, n_features), got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"X has an empty dimension: shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=(1, 2)))
    if bad.size:
        raise ValueError(f"X has non-finite values in {bad.size} window(s) (first: {bad[0]})")
    return x


class AttentionLSTM(ClassifierMixin, BaseEstimator):
    """scikit-learn classifier over causal windows X (n, L, n_features), y in {0, 1}.

    ``fit(X, y, sample_weight, t1, t0)``: weighted BCE (uniqueness weights), AdamW, gradient
    clipping at ``clip_norm``, early stopping with ``patience`` on ``inner_validation_split``
    (label spans t0/t1 as int64 ns or datetimes; without them nothing is purged), keeping the
    best validation state. ``progress(epoch, train_loss, val_loss)`` is called after each epoch
    (val_loss is NaN without validation). X is not standardised here: scale it per fold first.
    """

    def __init__(self, hidden: int = 32, heads: int = 4, pooling: str = "last", epochs: int = 30,
                 batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 1e-2,
                 patience: int = 5, clip_norm: float | None = 1.0,
                 validation_fraction: float = 0.2, embargo: int = 0, seed: int = 0,
                 threads: int | None = 1,
                 progress: Callable[[int, float, float], object] | None = None):
        self.hidden = hidden
        self.heads = heads
        self.pooling = pooling
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.clip_norm = clip_norm
        self.validation_fraction = validation_fraction
        self.embargo = embargo
        self.seed = seed
        self.threads = threads
        self.progress = progress

    def _check_params(self) -> None:
        for name, minimum in (("hidden", 1), ("heads", 1), ("epochs", 1), ("batch_size", 1),
                              ("patience", 1), ("embargo", 0), ("seed", 0)):
            integer(getattr(self, name), name, minimum)
        if self.threads is not None:
            integer(self.threads, "threads", 1)
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {self.pooling!r}")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {self.lr}, "
                             f"{self.weight_decay}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got "
                             f"{self.validation_fraction}")
        if self.progress is not None and not callable(self.progress):
            raise ValueError(f"progress must be callable or None, got {self.progress!r}")

    def fit(self, X, y, sample_weight=None, t1=None, t0=None) -> AttentionLSTM:
        self._check_params()
        x = _windows(X)
        n = len(x)
        target = np.asarray(y).ravel()
        if len(target) != n:
            raise ValueError(f"X has {n} windows but y has {len(target)} labels")
        if not np.isin(target, (0, 1)).all():
            raise ValueError(f"y must be 0 or 1, got values {np.unique(target)[:5].tolist()}")
        weight = (np.ones(n) if sample_weight is None
                  else np.asarray(sample_weight, dtype=np.float64).ravel())
        if len(weight) != n or not np.isfinite(weight).all() or (weight < 0).any():
            raise ValueError(f"sample_weight must be {n} finite values >= 0")
        if (t0 is None) != (t1 is None):
            raise ValueError("pass both t0 and t1 (the label spans) or neither")
        if t0 is None:  # each label spans its own instant: nothing to purge
            t0 = t1 = np.arange(n)
        if len(pd.Index(t0)) != n or len(pd.Index(t1)) != n:
            raise ValueError(f"X has {n} windows but t0/t1 have {len(pd.Index(t0))}/"
                             f"{len(pd.Index(t1))} label times")
        train, val = inner_validation_split(t0, t1, self.validation_fraction, self.embargo)
        if weight[train].sum() <= 0:
            raise ValueError("the training samples' weights sum to 0")
        started = time.perf_counter()
        with _torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._train(torch.from_numpy(x), torch.from_numpy(target.astype(np.float32)),
                        torch.from_numpy(weight.astype(np.float32)), train, val)
        self.train_seconds_ = time.perf_counter() - started
        self.classes_ = np.array([0, 1])
        self.n_features_in_, self.window_ = x.shape[2], x.shape[1]
        self.n_train_, self.n_validation_ = len(train), len(val)
        return self

    def _train(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, train: np.ndarray,
               val: np.ndarray) -> None:
        net = AttentionNet(x.shape[2], self.hidden, self.heads, self.pooling)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr,
                                      weight_decay=self.weight_decay)
        shuffle = torch.Generator().manual_seed(self.seed)
        rows = torch.from_numpy(train)
        best, best_state, best_epoch, stale = math.inf, None, 0, 0
        self.history_: list[dict[str, float]] = []
        for epoch in range(1, self.epochs + 1):
            net.train()
            order = rows[torch.randperm(len(rows), generator=shuffle)]
            loss_sum = weight_sum = 0.0
            for batch in order.split(self.batch_size):
                optimizer.zero_grad(set_to_none=True)
                loss = weighted_bce(net.logit(x[batch]), y[batch], w[batch])
                loss.backward()
                if self.clip_norm is not None:
                    nn.utils.clip_grad_norm_(net.parameters(), self.clip_norm)
                optimizer.step()
                batch_weight = float(w[batch].sum())
                loss_sum += loss.item() * batch_weight
                weight_sum += batch_weight
            train_loss = loss_sum / weight_sum
            val_loss = _loss(net, x[val], y[val], w[val]) if len(val) else math.nan
            self.history_.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            if self.progress is not None:
                self.progress(epoch, train_loss, val_loss)
            if not len(val):
                best_epoch = epoch
                continue
            if val_loss < best:
                best, best_epoch, stale = val_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_, self.best_epoch_ = net.eval(), best_epoch

    def _inputs(self, X) -> torch.Tensor:
        check_is_fitted(self, "net_")
        x = _windows(X)
        if x.shape[1:] != (self.window_, self.n_features_in_):
            raise ValueError(f"X has windows of shape {x.shape[1:]}, the model was fitted on "
                             f"{(self.window_, self.n_features_in_)}")
        return torch.from_numpy(x)

    def predict_proba(self, X) -> np.ndarray:
        """(n, 2): P(y = 0), P(y = 1)."""
        x = self._inputs(X)
        with _torch_threads(self.threads), torch.inference_mode():
            p = torch.cat([torch.sigmoid(self.net_.logit(b)) for b in x.split(_PREDICT_BATCH)])
        p1 = p.numpy().astype(np.float64)
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)]

    def attention(self, X) -> np.ndarray:
        """(n, heads, L, L) self-attention weights: row t over the keys ≤ t, summing to 1."""
        x = self._inputs(X)
        with _torch_threads(self.threads), torch.inference_mode():
            parts = [self.net_(b, return_attention=True)[1] for b in x.split(_PREDICT_BATCH)]
        return torch.cat(parts).numpy()

    def save(self, path: str | Path) -> str:
        """Write the weights and, as metadata, the hyper-parameters and shapes (``progress`` is
        not stored) to a safetensors file; returns its sha256 hex."""
        check_is_fitted(self, "net_")
        params = {k: v for k, v in self.get_params().items() if k != "progress"}
        fitted = {"n_features_in_": self.n_features_in_, "window_": self.window_,
                  "best_epoch_": self.best_epoch_, "train_seconds_": self.train_seconds_,
                  "n_train_": self.n_train_, "n_validation_": self.n_validation_,
                  "history_": self.history_}
        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        metadata = {"format": FORMAT, "params": json.dumps(params, default=_plain),
                    "fitted": json.dumps(fitted, default=_plain)}
        save_file(state, str(path), metadata=metadata)
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> AttentionLSTM:
        """The estimator ``save`` wrote, predicting identically; with ``sha256`` the bytes are
        verified first (the ones checked are the ones loaded)."""
        data = Path(path).read_bytes()
        if sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256.lower():
                raise ValueError(f"{path}: sha256 {actual} is not the expected {sha256}; the "
                                 "file changed after it was written")
        try:
            size = int.from_bytes(data[:8], "little")
            meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            params, fitted = json.loads(meta["params"]), json.loads(meta["fitted"])
            model = cls(**params)
            net = AttentionNet(fitted["n_features_in_"], model.hidden, model.heads, model.pooling)
            net.load_state_dict(load_tensors(data), strict=True)
        except Exception as error:  # a corrupt header, foreign file or mismatched weights
            raise ValueError(f"{path}: not a readable {FORMAT} file ({error})") from error
        for name, value in fitted.items():
            setattr(model, name, value)
        model.classes_, model.net_ = np.array([0, 1]), net.eval()
        return model


def _plain(value: object) -> object:
    """numpy scalars (e.g. ``epochs=np.int64(30)``) as the Python numbers JSON can hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {value!r} ({type(value).__name__}) in the model's metadata")


def _loss(net: AttentionNet, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> float:
    """Weighted BCE over all of ``x``, in evaluation mode."""
    net.eval()
    with torch.inference_mode():
        logit = torch.cat([net.logit(b) for b in x.split(_PREDICT_BATCH)])
        return float(weighted_bce(logit, y, w))

