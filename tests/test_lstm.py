"""The attention LSTM (bot4_dagster.ml.lstm): causal attention, reproducible training, purged
early stopping, weighted loss, scikit-learn conventions and pickle-free storage.

Everything is tiny (a few hundred windows of 16 steps, hidden 8-16, a few epochs) so the file
runs in seconds on one core.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from bot4_dagster.ml.lstm import (
    AttentionLSTM,
    AttentionNet,
    inner_validation_split,
    weighted_bce,
)

L, F = 16, 3
SMALL = dict(hidden=8, heads=2, epochs=3, batch_size=64)


def sequences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose label is the sign of feature 0's mean over the window."""
    x = np.random.default_rng(seed).normal(size=(n, L, F)).astype(np.float32)
    return x, (x[:, :, 0].mean(axis=1) > 0).astype(np.int64)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return sequences(240, seed=1)


@pytest.fixture(scope="module")
def fitted(data) -> AttentionLSTM:
    x, y = data
    return AttentionLSTM(**SMALL, pooling="attention").fit(x, y)


def states_equal(a: AttentionLSTM, b: AttentionLSTM) -> bool:
    sa, sb = a.net_.state_dict(), b.net_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------------------------
# the network: causal attention
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_attention_weights_are_causal_distributions(fitted, data, pooling):
    x, _ = data
    if pooling == "attention":
        weights = fitted.attention(x[:50])
    else:
        torch.manual_seed(0)
        net = AttentionNet(F, hidden=8, heads=4, pooling=pooling).eval()
        with torch.no_grad():
            p, w = net(torch.from_numpy(x[:50]), return_attention=True)
        assert p.shape == (50,) and ((p > 0) & (p < 1)).all()
        weights = w.numpy()
    heads = 2 if pooling == "attention" else 4
    assert weights.shape == (50, heads, L, L)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    future = np.triu(np.ones((L, L), dtype=bool), 1)
    assert (weights[..., future] == 0).all()
    assert (weights[..., ~future] > 0).all()  # every allowed key gets some weight


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_step_t_never_sees_later_steps(pooling):
    torch.manual_seed(3)
    net = AttentionNet(F, hidden=8, heads=2, pooling=pooling).eval()
    x = torch.randn(5, L, F)
    with torch.no_grad():
        base = net.encode(x)
        assert base.shape == (5, L, 8)
        for t in (0, 5, L - 2):
            later = x.clone()
            later[:, t + 1:] = torch.randn(5, L - t - 1, F) * 3
            moved = net.encode(later)
            torch.testing.assert_close(moved[:, :t + 1], base[:, :t + 1], rtol=0, atol=1e-6)
            assert (moved[:, t + 1:] - base[:, t + 1:]).abs().max() > 1e-3
        # and the prediction does depend on steps before the last one
        earlier = x.clone()
        earlier[:, 2] += 3.0
        assert (net(earlier) - net(x)).abs().max() > 1e-4


def test_network_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of heads"):
        AttentionNet(F, hidden=10, heads=4)
    with pytest.raises(ValueError, match="pooling"):
        AttentionNet(F, pooling="mean")


# --------------------------------------------------------------------------------------------
# the loss and the purged validation split
# --------------------------------------------------------------------------------------------


def test_weighted_bce_zero_weight_is_dropping_the_row():
    g = torch.Generator().manual_seed(0)
    logit, y = torch.randn(40, generator=g), (torch.rand(40, generator=g) > 0.5).float()
    w = torch.rand(40, generator=g) + 0.1
    keep = torch.arange(40) % 2 == 0
    zeroed = torch.where(keep, w, torch.zeros_like(w))
    torch.testing.assert_close(weighted_bce(logit, y, zeroed),
                               weighted_bce(logit[keep], y[keep], w[keep]))
    # scale-free, equal to the plain mean for equal weights, and the weights do matter
    torch.testing.assert_close(weighted_bce(logit, y, 7 * w), weighted_bce(logit, y, w))
    torch.testing.assert_close(weighted_bce(logit, y, torch.ones(40)),
                               torch.nn.functional.binary_cross_entropy_with_logits(logit, y))
    assert not torch.isclose(weighted_bce(logit, y, w), weighted_bce(logit, y, torch.ones(40)))
    assert weighted_bce(logit, y, torch.zeros(40)).item() == 0.0


def test_zero_weights_train_like_dropped_rows(data):
    """One full batch per epoch and no validation: the rows of weight 0 contribute nothing."""
    x, y = data
    keep = np.arange(len(x)) % 2 == 0
    params = dict(SMALL, epochs=4, batch_size=1000, validation_fraction=0.0)
    weighted = AttentionLSTM(**params).fit(x, y, sample_weight=keep.astype(float))
    dropped = AttentionLSTM(**params).fit(x[keep], y[keep])
    for name, tensor in weighted.net_.state_dict().items():
        torch.testing.assert_close(tensor, dropped.net_.state_dict()[name], rtol=1e-4, atol=1e-5)
    plain = AttentionLSTM(**params).fit(x, y)
    assert not states_equal(plain, weighted)


def test_split_purges_labels_reaching_validation():
    t0 = np.arange(20, dtype=np.int64) * 10
    t1 = t0 + 35  # each label ends 3.5 samples later
    train, val = inner_validation_split(t0, t1, 0.25, embargo=0)
    np.testing.assert_array_equal(val, np.arange(15, 20))
    # 10 i + 35 >= 150 for i >= 12: samples 12, 13, 14 are purged
    np.testing.assert_array_equal(train, np.arange(12))
    train, _ = inner_validation_split(t0, t1, 0.25, embargo=2)
    np.testing.assert_array_equal(train, np.arange(10))
    # closed interval: ending exactly at the validation start is an overlap
    ends = t0.copy()
    ends[14] = t0[15]
    train, _ = inner_validation_split(t0, ends, 0.25)
    np.testing.assert_array_equal(train, np.arange(14))
    # t1 need not be sorted: only the overlapping label goes
    ends = t0.copy()
    ends[3] = 10_000
    train, _ = inner_validation_split(t0, ends, 0.25)
    np.testing.assert_array_equal(train, np.r_[0:3, 4:15])
    train, val = inner_validation_split(t0, t1, 0.0)
    np.testing.assert_array_equal(train, np.arange(20))
    assert val.size == 0


@pytest.mark.parametrize("seed", range(5))
def test_split_never_overlaps_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 60
    t0 = np.cumsum(rng.integers(0, 4, n)).astype(np.int64)  # ties included
    t1 = t0 + rng.integers(0, 15, n) * rng.integers(0, 2, n)
    train, val = inner_validation_split(t0, t1, 0.3, embargo=3)
    assert len(val) == 18 and val[-1] == n - 1
    for i in train:
        assert not any(t0[i] <= t1[j] and t1[i] >= t0[j] for j in val)
    clean = [i for i in range(val[0]) if t1[i] < t0[val[0]]]
    assert list(train) == clean[:len(clean) - 3]


def test_split_accepts_datetimes_and_ns():
    t0 = pd.date_range("2024-01-01", periods=30, freq="h", tz="Europe/Berlin")
    t1 = t0 + pd.Timedelta(hours=4)
    expected = inner_validation_split(t0.asi8, t1.asi8, 0.2, embargo=1)
    for a, b in ((t0, t1), (t0.tz_convert(None).to_numpy(), t1.tz_convert(None).to_numpy())):
        got = inner_validation_split(a, b, 0.2, embargo=1)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
    # 6 validate (24..29); labels ending at or after 24:00 h (t0 >= 20 h) are purged, then one
    np.testing.assert_array_equal(expected[0], np.arange(19))


def test_split_rejects_bad_input():
    t0 = np.arange(10)
    with pytest.raises(ValueError, match="sorted"):
        inner_validation_split(t0[::-1], t0[::-1], 0.2)
    with pytest.raises(ValueError, match="ends before it starts"):
        inner_validation_split(t0, t0 - 1, 0.2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        inner_validation_split(t0, t0, 1.0)
    with pytest.raises(ValueError, match="t1 has 9"):
        inner_validation_split(t0, t0[:9], 0.2)
    with pytest.raises(ValueError, match="no training samples left"):
        inner_validation_split(t0, t0 + 100, 0.2)
    with pytest.raises(ValueError, match="missing"):
        inner_validation_split(pd.DatetimeIndex(["2024-01-01", None]), t0[:2], 0.5)


def test_fit_purges_with_label_spans(data):
    x, y = data
    t0 = np.arange(len(x), dtype=np.int64) * 60_000_000_000  # one window a minute, in ns
    model = AttentionLSTM(**dict(SMALL, epochs=1)).fit(x, y, t0=t0, t1=t0 + 10 * 60_000_000_000)
    assert (model.n_train_, model.n_validation_) == (len(x) - 48 - 10, 48)
    with pytest.raises(ValueError, match="both t0 and t1"):
        AttentionLSTM(**SMALL).fit(x, y, t1=t0)
    with pytest.raises(ValueError, match="label times"):
        AttentionLSTM(**SMALL).fit(x, y, t0=t0[1:], t1=t0[1:])


# --------------------------------------------------------------------------------------------
# training: determinism, early stopping, learning
# --------------------------------------------------------------------------------------------


def test_same_seed_same_model_other_seed_differs(data):
    x, y = data
    a = AttentionLSTM(**SMALL, seed=5).fit(x, y)
    torch.manual_seed(123)  # the caller's global RNG must not matter (nor be disturbed)
    state = torch.random.get_rng_state()
    b = AttentionLSTM(**SMALL, seed=5).fit(x, y)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert states_equal(a, b)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert a.history_ == b.history_
    c = AttentionLSTM(**SMALL, seed=6).fit(x, y)
    assert not states_equal(a, c)
    assert not np.array_equal(a.predict_proba(x), c.predict_proba(x))


def test_threads_are_restored(data):
    x, y = data
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        model = AttentionLSTM(**dict(SMALL, epochs=1), threads=1).fit(x, y)
        assert torch.get_num_threads() == 2
        model.predict_proba(x)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_early_stopping_keeps_the_best_epoch():
    """Random labels and a high learning rate overfit: validation loss turns up and stops it."""
    x = np.random.default_rng(7).normal(size=(200, L, F)).astype(np.float32)
    y = np.random.default_rng(8).integers(0, 2, 200)
    calls = []
    params = dict(hidden=16, heads=2, epochs=40, batch_size=16, lr=2e-2, weight_decay=0.0,
                  patience=3, clip_norm=None)
    model = AttentionLSTM(**params,
                          progress=lambda *a: calls.append(a)).fit(x, y)
    ran = len(model.history_)
    assert ran < 40  # it stopped early
    val = [h["val_loss"] for h in model.history_]
    assert model.best_epoch_ == int(np.argmin(val)) + 1 == ran - 3
    assert [h["epoch"] for h in model.history_] == list(range(1, ran + 1))
    assert calls == [(h["epoch"], h["train_loss"], h["val_loss"]) for h in model.history_]
    assert all(math.isfinite(v) for c in calls for v in c)
    assert model.train_seconds_ > 0
    # the kept weights are the best epoch's: training exactly that long gives the same tensors
    short = AttentionLSTM(**dict(params, epochs=model.best_epoch_)).fit(x, y)
    assert states_equal(model, short)
    x_val = x[-40:]
    np.testing.assert_array_equal(model.predict_proba(x_val), short.predict_proba(x_val))


def test_it_learns_a_sequence_rule():
    x, y = sequences(400, seed=2)
    x_test, y_test = sequences(400, seed=3)
    model = AttentionLSTM(hidden=16, heads=2, epochs=30, batch_size=32, lr=5e-3).fit(x, y)
    proba = model.predict_proba(x_test)
    assert proba.shape == (400, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y_test, proba[:, 1]) > 0.9
    assert set(np.unique(model.predict(x_test))) <= {0, 1}
    assert (model.predict(x_test) == y_test).mean() > 0.8


# --------------------------------------------------------------------------------------------
# scikit-learn conventions and input checks
# --------------------------------------------------------------------------------------------


def test_sklearn_conventions(data):
    x, y = data
    progress = print
    model = AttentionLSTM(hidden=8, heads=2, pooling="attention", progress=progress)
    assert is_classifier(model)
    params = model.get_params()
    assert params["hidden"] == 8 and params["pooling"] == "attention"
    assert params["progress"] is progress and params["threads"] == 1
    twin = clone(model)
    assert twin.get_params() == params and twin is not model
    with pytest.raises(NotFittedError):
        model.predict_proba(x)
    with pytest.raises(NotFittedError):
        model.attention(x)
    with pytest.raises(NotFittedError):
        model.save("never.safetensors")
    fitted = AttentionLSTM(**SMALL).fit(x, y)
    assert fitted.n_features_in_ == F and fitted.window_ == L
    assert not hasattr(clone(fitted), "net_")
    assert fitted.get_params()["epochs"] == SMALL["epochs"]  # untouched by fit


@pytest.mark.parametrize(("change", "message"), [
    (dict(hidden=10, heads=4), "multiple of heads"),
    (dict(pooling="max"), "pooling"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(clip_norm=0.0), "clip_norm"),
    (dict(lr=0.0), "lr > 0"),
    (dict(progress="log"), "callable"),
])
def test_bad_parameters(data, change, message):
    x, y = data
    with pytest.raises(ValueError, match=message):
        AttentionLSTM(**{**SMALL, **change}).fit(x, y)


def test_bad_inputs(fitted, data):
    x, y = data
    with pytest.raises(ValueError, match="3-D"):
        AttentionLSTM(**SMALL).fit(x[:, :, 0], y)
    with pytest.raises(ValueError, match="0 or 1"):
        AttentionLSTM(**SMALL).fit(x, y * 2)
    with pytest.raises(ValueError, match="labels"):
        AttentionLSTM(**SMALL).fit(x, y[:-1])
    with pytest.raises(ValueError, match="sample_weight"):
        AttentionLSTM(**SMALL).fit(x, y, sample_weight=-np.ones(len(y)))
    bad = x.copy()
    bad[7, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .* \(first: 7\)"):
        AttentionLSTM(**SMALL).fit(bad, y)
    with pytest.raises(ValueError, match="fitted on"):
        fitted.predict_proba(x[:, :8])


# --------------------------------------------------------------------------------------------
# storage without pickle
# --------------------------------------------------------------------------------------------


def test_save_load_round_trip(fitted, data, tmp_path):
    x, _ = data
    path = tmp_path / "model.safetensors"
    digest = fitted.save(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = AttentionLSTM.load(path, sha256=digest)
    assert states_equal(fitted, loaded)
    np.testing.assert_array_equal(loaded.predict_proba(x), fitted.predict_proba(x))
    np.testing.assert_array_equal(loaded.attention(x[:5]), fitted.attention(x[:5]))
    expected = {k: v for k, v in fitted.get_params().items() if k != "progress"}
    assert {k: v for k, v in loaded.get_params().items() if k != "progress"} == expected
    for name in ("n_features_in_", "window_", "best_epoch_", "history_", "n_train_"):
        assert getattr(loaded, name) == getattr(fitted, name)
    assert AttentionLSTM.load(path).best_epoch_ == fitted.best_epoch_  # no digest: no check
    numpy_params = clone(fitted).set_params(epochs=np.int64(1), lr=np.float32(0.01))
    numpy_params.fit(x[:60], np.arange(60) % 2)
    numpy_params.save(tmp_path / "numpy.safetensors")
    assert AttentionLSTM.load(tmp_path / "numpy.safetensors").get_params()["epochs"] == 1
    with safe_open(str(path), "pt") as stored:  # plain tensors and JSON, nothing executable
        meta = stored.metadata()
        assert set(stored.keys()) == set(fitted.net_.state_dict())
    assert json.loads(meta["params"])["pooling"] == "attention"
    assert json.loads(meta["fitted"])["window_"] == L


def test_tampered_or_foreign_files_are_refused(fitted, tmp_path):
    path = tmp_path / "model.safetensors"
    digest = fitted.save(path)
    with pytest.raises(ValueError, match=r"model\.safetensors: sha256 .* is not the expected"):
        AttentionLSTM.load(path, sha256="0" * 64)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # one weight changes
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"model\.safetensors: sha256"):
        AttentionLSTM.load(path, sha256=digest)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(raw[:100]))
    with pytest.raises(ValueError, match=r"truncated\.safetensors: not a readable"):
        AttentionLSTM.load(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(ValueError, match=r"foreign\.safetensors: not a readable"):
        AttentionLSTM.load(foreign)
