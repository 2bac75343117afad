"""The four fitted base learners as plain numeric arrays, and a numpy reference forward pass.

The serving side maps one safetensors file and predicts without torch or scikit-learn, so every
learner is reduced to named arrays plus a small JSON-able ``meta``:

- ``hist_gradient_boosting``: every tree of ``_predictors`` as flat node arrays concatenated
  over trees (``tree_offsets``: where each tree starts, then the total), children as absolute
  node indices (-1 at leaves), and ``_baseline_prediction``. A missing value goes the way the
  node's ``missing_go_to_left`` says: scikit-learn sets it at fit time, to the child with more
  samples when the feature had no missing values, so the arrays carry that case too.
- ``extra_trees``: the same node arrays from each ``tree_`` with the leaf value normalised to
  P(class 1); inputs are compared as float32, as scikit-learn's trees do.
- ``logistic``: the StandardScaler's ``mean_``/``scale_``, then ``coef_`` and ``intercept_``.
- ``attention_lstm``: every tensor of the network's ``state_dict`` (float32, names kept) and
  its hidden size, heads, pooling, window and LayerNorm epsilon.

``predict_flat`` is the readable reference the serving kernels are checked against; it follows
scikit-learn 1.9's predictors and ``lstm.AttentionNet`` step for step. ``flatten`` reads
scikit-learn internals (``_predictors``, ``_baseline_prediction``, the predictor node dtype) and
refuses a scikit-learn it was not written against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HGB, EXTRA_TREES, LOGISTIC, LSTM = ("hist_gradient_boosting", "extra_trees", "logistic",
                                    "attention_lstm")
SKLEARN_TESTED = (1, 9)  # the major.minor whose private tree layout ``flatten`` reads
TREE_ARRAYS = ("feature", "threshold", "left", "right", "is_leaf", "missing_go_to_left",
               "value", "tree_offsets")
LSTM_TENSORS = ("lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0",
                "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                "attn.out_proj.bias", "norm.weight", "norm.bias", "head.weight", "head.bias")
SCORE_TENSORS = ("score.weight", "score.bias")  # attention pooling only
_HGB_NODE_FIELDS = {"value", "feature_idx", "num_threshold", "missing_go_to_left", "left",
                    "right", "is_leaf", "is_categorical"}


@dataclass(frozen=True)
class FlatModel:
    """One learner as arrays (what goes into safetensors) and JSON-able ``meta``."""

    name: str
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def named_arrays(self) -> dict[str, np.ndarray]:
        """The arrays keyed ``<name>/<key>``, so several learners share one file."""
        return {f"{self.name}/{key}": value for key, value in self.arrays.items()}

    @classmethod
    def from_named(cls, name: str, arrays: dict[str, np.ndarray],
                   meta: dict[str, Any]) -> FlatModel:
        """The inverse of ``named_arrays``: this learner's arrays out of a shared mapping."""
        prefix = f"{name}/"
        own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        return cls(name, own, dict(meta))


# --- flatten: fitted learner -> arrays (needs scikit-learn / torch, imported by the caller) -----


def flatten(learner_name: str, model: Any) -> FlatModel:
    """``model`` (a fitted learner of ``learners.make_learner(learner_name)``) as arrays."""
    flatteners = {HGB: _flatten_hgb, EXTRA_TREES: _flatten_extra_trees,
                  LOGISTIC: _flatten_logistic, LSTM: _flatten_lstm}
    if learner_name not in flatteners:
        raise ValueError(f"unknown learner {learner_name!r}; choose one of "
                         f"{', '.join(flatteners)}")
    arrays, meta = flatteners[learner_name](model)
    return FlatModel(learner_name, arrays, {"learner": learner_name, **meta})


def _check_sklearn() -> None:
    import sklearn

    version = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
    if version != SKLEARN_TESTED:
        raise ValueError(f"flat_models reads scikit-learn {SKLEARN_TESTED[0]}.{SKLEARN_TESTED[1]}"
                         f" internals; this is scikit-learn {sklearn.__version__}: check the "
                         "tree layouts and update SKLEARN_TESTED")


def _binary_classes(model: Any, kind: str) -> list[Any]:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ValueError(f"{kind}: the model is not fitted (no classes_)")
    if len(classes) != 2:
        raise ValueError(f"{kind}: only binary classifiers are flattened, this one has "
                         f"{len(classes)} classes")
    return np.asarray(classes).tolist()


def _expect(model: Any, cls: type, kind: str) -> None:
    if not isinstance(model, cls):
        raise ValueError(f"{kind} must be a {cls.__name__}, got {type(model).__name__}")


def _concatenate_trees(trees: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-tree node arrays (children relative, -1 at leaves) as one set with absolute children."""
    sizes = np.array([len(t["value"]) for t in trees], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    out = {key: np.concatenate([t[key] for t in trees]) for key in trees[0]}
    shift = np.repeat(offsets[:-1], sizes)
    for side in ("left", "right"):
        out[side] = np.where(out["is_leaf"] == 1, -1, out[side] + shift).astype(np.int64)
    out["tree_offsets"] = offsets
    return out


def _flatten_hgb(model: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    _expect(model, HistGradientBoostingClassifier, HGB)
    _check_sklearn()
    classes = _binary_classes(model, HGB)
    if model.n_trees_per_iteration_ != 1 or type(model._loss).__name__ != "HalfBinomialLoss":
        raise ValueError(f"{HGB}: expected one tree per iteration and the binomial log loss")
    categorical = model.is_categorical_
    if model._preprocessor is not None or (categorical is not None and categorical.any()):
        raise ValueError(f"{HGB}: categorical features are not supported by the flat form "
                         "(their bitset splits are not stored); encode them numerically")
    trees = []
    for iteration in model._predictors:
        nodes = iteration[0].nodes
        missing = _HGB_NODE_FIELDS - set(nodes.dtype.names)
        if missing:
            raise ValueError(f"{HGB}: predictor nodes lack fields {sorted(missing)}")
        if nodes["is_categorical"].any():
            raise ValueError(f"{HGB}: a tree has a categorical split; not supported")
        leaf = nodes["is_leaf"].astype(np.uint8)
        trees.append({
            "feature": np.where(leaf == 1, 0, nodes["feature_idx"]).astype(np.int64),
            "threshold": nodes["num_threshold"].astype(np.float64),
            "left": nodes["left"].astype(np.int64), "right": nodes["right"].astype(np.int64),
            "is_leaf": leaf, "missing_go_to_left": nodes["missing_go_to_left"].astype(np.uint8),
            "value": nodes["value"].astype(np.float64)})
    arrays = _concatenate_trees(trees)
    arrays["baseline"] = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1)
    return arrays, {"n_features": int(model.n_features_in_), "n_trees": len(trees),
                    "classes": classes}


def _flatten_extra_trees(model: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from sklearn.ensemble import ExtraTreesClassifier

    _expect(model, ExtraTreesClassifier, EXTRA_TREES)
    _check_sklearn()
    classes = _binary_classes(model, EXTRA_TREES)
    if model.n_outputs_ != 1:
        raise ValueError(f"{EXTRA_TREES}: only single-output forests are flattened")
    trees = []
    for estimator in model.estimators_:
        tree = estimator.tree_
        leaf = (tree.children_left == -1).astype(np.uint8)
        value = tree.value[:, 0, :].astype(np.float64)  # class fractions (counts before 1.4)
        total = value.sum(axis=1)
        trees.append({
            "feature": np.where(leaf == 1, 0, tree.feature).astype(np.int64),
            "threshold": tree.threshold.astype(np.float64),
            "left": tree.children_left.astype(np.int64),
            "right": tree.children_right.astype(np.int64), "is_leaf": leaf,
            "missing_go_to_left": np.asarray(tree.missing_go_to_left, dtype=np.uint8),
            "value": value[:, 1] / np.where(total == 0, 1.0, total)})
    return _concatenate_trees(trees), {"n_features": int(model.n_features_in_),
                                       "n_trees": len(trees), "classes": classes}


def _flatten_logistic(model: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _expect(model, Pipeline, LOGISTIC)
    steps = [step for _, step in model.steps]
    if len(steps) != 2 or not isinstance(steps[0], StandardScaler) \
            or not isinstance(steps[1], LogisticRegression):
        raise ValueError(f"{LOGISTIC} must be Pipeline(StandardScaler, LogisticRegression), got "
                         f"{[type(s).__name__ for s in steps]}")
    scaler, logistic = steps
    classes = _binary_classes(logistic, LOGISTIC)
    n = int(scaler.n_features_in_)
    mean = scaler.mean_ if scaler.with_mean else np.zeros(n)
    scale = scaler.scale_ if scaler.with_std else np.ones(n)
    arrays = {"mean": np.asarray(mean, np.float64), "scale": np.asarray(scale, np.float64),
              "coef": np.asarray(logistic.coef_, np.float64).reshape(1, n),
              "intercept": np.asarray(logistic.intercept_, np.float64).reshape(1)}
    return arrays, {"n_features": n, "classes": classes}


def _flatten_lstm(model: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from .lstm import AttentionLSTM

    _expect(model, AttentionLSTM, LSTM)
    net = getattr(model, "net_", None)
    if net is None:
        raise ValueError(f"{LSTM}: the model is not fitted (no net_)")
    lstm = net.lstm
    if lstm.num_layers != 1 or lstm.bidirectional or not lstm.batch_first \
            or lstm.proj_size or not lstm.bias:
        raise ValueError(f"{LSTM}: the flat forward pass covers one unidirectional, biased, "
                         "batch-first LSTM layer")
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    expected = set(LSTM_TENSORS) | (set(SCORE_TENSORS) if model.pooling == "attention" else set())
    if set(state) != expected:
        raise ValueError(f"{LSTM}: unexpected network tensors {sorted(set(state) ^ expected)}; "
                         "the flat forward pass mirrors lstm.AttentionNet")
    return state, {"n_features": int(model.n_features_in_), "window": int(model.window_),
                   "hidden": int(model.hidden), "heads": int(model.heads),
                   "pooling": str(model.pooling), "layer_norm_eps": float(net.norm.eps)}


# --- predict_flat: arrays -> P(class 1), numpy only ---------------------------------------------


def predict_flat(flat: FlatModel, X: Any) -> np.ndarray:
    """P(class 1) (float64, one per row) from the arrays alone: tabular X (n, features) for the
    scikit-learn learners, windows (n, window, features) for the LSTM."""
    predictors = {HGB: _predict_hgb, EXTRA_TREES: _predict_extra_trees,
                  LOGISTIC: _predict_logistic, LSTM: _predict_lstm}
    learner = flat.meta.get("learner", flat.name)
    if learner not in predictors:
        raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(predictors)}")
    return predictors[learner](flat, X)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-z) = inf for z << 0 gives exactly 0, as expit
        return 1.0 / (1.0 + np.exp(-z))


def _tabular(X: Any, n_features: int, dtype: type, kind: str) -> np.ndarray:
    x: np.ndarray = np.asarray(X, dtype=dtype)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"{kind}: X must have shape (n, {n_features}), got {x.shape}")
    return x


def _require(flat: FlatModel, names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in flat.arrays]
    if missing:
        raise ValueError(f"{flat.name}: arrays {missing} are missing")


def _check_trees(flat: FlatModel, n_features: int) -> None:
    """Node arrays that traverse safely: every child lies after its node and inside its tree
    (so a walk ends within the tree's size), every split reads an existing feature."""
    _require(flat, TREE_ARRAYS)
    a = flat.arrays
    n_nodes = len(a["value"])
    if any(len(a[k]) != n_nodes for k in TREE_ARRAYS[:-1]):
        raise ValueError(f"{flat.name}: node arrays differ in length")
    offsets = a["tree_offsets"]
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != n_nodes \
            or (np.diff(offsets) <= 0).any():
        raise ValueError(f"{flat.name}: tree_offsets must rise from 0 to the {n_nodes} nodes")
    node = np.arange(n_nodes)
    end = np.repeat(offsets[1:], np.diff(offsets))
    split = a["is_leaf"] == 0
    for side in ("left", "right"):
        child = a[side][split]
        if ((child <= node[split]) | (child >= end[split])).any():
            raise ValueError(f"{flat.name}: a {side} child lies outside its tree or before its "
                             "node")
    if ((a["feature"][split] < 0) | (a["feature"][split] >= n_features)).any():
        raise ValueError(f"{flat.name}: a split reads a feature outside 0..{n_features - 1}")


def _leaf_values(a: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """(n, trees): the value of the leaf each row reaches in each tree. A NaN input goes where
    ``missing_go_to_left`` says; otherwise ``x <= threshold`` goes left (both libraries' rule)."""
    starts = a["tree_offsets"][:-1]
    node = np.repeat(starts[None, :], len(x), axis=0)
    row = np.repeat(np.arange(len(x))[:, None], len(starts), axis=1)
    inner = a["is_leaf"][node] == 0
    while inner.any():
        at, r = node[inner], row[inner]
        value = x[r, a["feature"][at]]
        left = np.where(np.isnan(value), a["missing_go_to_left"][at] == 1,
                        value <= a["threshold"][at])
        node[inner] = np.where(left, a["left"][at], a["right"][at])
        inner = a["is_leaf"][node] == 0
    return np.asarray(a["value"][node], dtype=np.float64)


def _predict_hgb(flat: FlatModel, X: Any) -> np.ndarray:
    n_features = int(flat.meta["n_features"])
    _check_trees(flat, n_features)
    _require(flat, ("baseline",))
    leaves = _leaf_values(flat.arrays, _tabular(X, n_features, np.float64, HGB))
    raw = np.full(len(leaves), float(flat.arrays["baseline"][0]))
    for tree in leaves.T:  # tree by tree, the order scikit-learn adds them in
        raw += tree
    return _sigmoid(raw)


def _predict_extra_trees(flat: FlatModel, X: Any) -> np.ndarray:
    n_features = int(flat.meta["n_features"])
    _check_trees(flat, n_features)
    leaves = _leaf_values(flat.arrays, _tabular(X, n_features, np.float32, EXTRA_TREES))
    total = np.zeros(len(leaves))
    for tree in leaves.T:
        total += tree
    return total / leaves.shape[1]


def _predict_logistic(flat: FlatModel, X: Any) -> np.ndarray:
    _require(flat, ("mean", "scale", "coef", "intercept"))
    a = flat.arrays
    x = _tabular(X, int(flat.meta["n_features"]), np.float64, LOGISTIC)
    if not np.isfinite(x).all():
        raise ValueError(f"{LOGISTIC}: X has non-finite values (scikit-learn refuses them too)")
    z = (x - a["mean"]) / a["scale"]
    return _sigmoid((z @ a["coef"].T + a["intercept"]).ravel())


def _predict_lstm(flat: FlatModel, X: Any) -> np.ndarray:
    m = flat.meta
    _require(flat, LSTM_TENSORS + (SCORE_TENSORS if m["pooling"] == "attention" else ()))
    shape = (int(m["window"]), int(m["n_features"]))
    # float32 first: the network sees float32 inputs; the arithmetic then runs in float64
    x = np.asarray(X, dtype=np.float32).astype(np.float64)
    if x.ndim != 3 or x.shape[1:] != shape:
        raise ValueError(f"{LSTM}: X must be windows (n, {shape[0]}, {shape[1]}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{LSTM}: X has non-finite values")
    w = {k: np.asarray(v, dtype=np.float64) for k, v in flat.arrays.items()}
    h = _lstm_outputs(w, x, int(m["hidden"]))
    z = _layer_norm(h + _causal_attention(w, h, int(m["heads"])), w["norm.weight"],
                    w["norm.bias"], float(m["layer_norm_eps"]))
    if m["pooling"] == "last":
        pooled = z[:, -1]
    else:
        alpha = _softmax(z @ w["score.weight"].T + w["score.bias"], axis=1)  # (n, L, 1)
        pooled = (alpha * z).sum(axis=1)
    return _sigmoid((pooled @ w["head.weight"].T + w["head.bias"]).ravel())


def _lstm_outputs(w: dict[str, np.ndarray], x: np.ndarray, hidden: int) -> np.ndarray:
    """(n, L, hidden): one LSTM layer from zero state, gates in PyTorch's order i, f, g, o."""
    n, steps, _ = x.shape
    inputs = x @ w["lstm.weight_ih_l0"].T + w["lstm.bias_ih_l0"] + w["lstm.bias_hh_l0"]
    h, c = np.zeros((n, hidden)), np.zeros((n, hidden))
    out = np.empty((n, steps, hidden))
    for t in range(steps):
        i, f, g, o = np.split(inputs[:, t] + h @ w["lstm.weight_hh_l0"].T, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out[:, t] = h
    return out


def _causal_attention(w: dict[str, np.ndarray], h: np.ndarray, heads: int) -> np.ndarray:
    """nn.MultiheadAttention(h, h, h) with the future masked: step t attends to steps ≤ t."""
    n, steps, hidden = h.shape
    d = hidden // heads
    q, k, v = np.split(h @ w["attn.in_proj_weight"].T + w["attn.in_proj_bias"], 3, axis=-1)

    def by_head(t: np.ndarray) -> np.ndarray:  # (n, L, hidden) -> (n, heads, L, d)
        return t.reshape(n, steps, heads, d).transpose(0, 2, 1, 3)

    scores = by_head(q) @ by_head(k).transpose(0, 1, 3, 2) / np.sqrt(d)
    scores[..., np.triu(np.ones((steps, steps), dtype=bool), 1)] = -np.inf
    mixed = _softmax(scores, axis=-1) @ by_head(v)
    merged = mixed.transpose(0, 2, 1, 3).reshape(n, steps, hidden)
    return merged @ w["attn.out_proj.weight"].T + w["attn.out_proj.bias"]


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _layer_norm(z: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = z.mean(axis=-1, keepdims=True)
    var = ((z - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as nn.LayerNorm
    return (z - mean) / np.sqrt(var + eps) * weight + bias
