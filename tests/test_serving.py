"""The champion: a candidate bundle served by numba kernels from its memory-mapped arrays, equal
to the training objects on real FTX minutes, without torch, scikit-learn or scipy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from model_tables import SYMBOL, ftx_candidate

from bot4_dagster.kernels import blend, inputs, lstm, trees
from bot4_dagster.kernels.cpu import cpu_info, widest_vector_register
from bot4_dagster.ml.bundle import BundleError, read_bundle, write_bundle
from bot4_dagster.ml.dataset import FoldInputs
from bot4_dagster.ml.ensemble import BLEND_MODES
from bot4_dagster.ml.learners import LSTM, PROFILES
from bot4_dagster.ml.oof import learner_inputs
from bot4_dagster.serving.champion import LEARNERS, Champion, ChampionSlot

QUICK = PROFILES["quick"]


@pytest.fixture(scope="module")
def served():
    built = ftx_candidate(4000)
    samples = built["samples"]
    fitted = FoldInputs.fit(samples, np.arange(len(samples)), symbol=SYMBOL)
    rows = np.arange(len(samples))
    champion = Champion.load(built["stored"].path)
    return dict(built, champion=champion, inputs=fitted, rows=rows,
                raw=fitted.raw_windows(samples, rows, QUICK.window))


def test_the_champion_equals_the_training_objects_on_every_sample(served):
    samples, fitted, rows = served["samples"], served["inputs"], served["rows"]
    _, codes, P = served["champion"].predict_many(served["raw"])
    models = served["candidate"].models
    for k, name in enumerate(LEARNERS):
        expected = models[name].predict_proba(
            learner_inputs(samples, fitted, rows, name, QUICK))[:, 1]
        np.testing.assert_allclose(P[:, k], expected, rtol=0,
                                   atol=1e-5 if name == LSTM else 1e-12, err_msg=name)
    np.testing.assert_array_equal(codes, fitted.regime_codes(samples, rows))
    fit = served["candidate"].manifest["blend"]
    assert fit["mode"] == "weighted"


def test_blend_and_calibration_equal_the_training_objects_given_their_inputs(served):
    from bot4_dagster.ml.candidate import fit_ensemble

    ensemble = fit_ensemble(served["oof"], served["folds"], symbol=SYMBOL)
    champion = served["champion"]
    P = ensemble.kfold[ensemble.learners].to_numpy()[::7]
    regime = ensemble.kfold["regime"].to_numpy(np.int8)[::7]
    for mode in BLEND_MODES:
        one = champion.with_blend(mode)
        got = np.array([blend.blend_one(p, *one._blend, one._sorted) for p in P])
        np.testing.assert_allclose(got, ensemble.blenders[mode].blend(P), rtol=0, atol=1e-15,
                                   err_msg=mode)
    q = ensemble.blender.blend(P)
    got = np.array([champion.calibrate(v, int(c)) for v, c in zip(q, regime, strict=True)])
    np.testing.assert_array_equal(got, ensemble.calibrator.predict(q, regime))


def test_one_window_equals_its_row_of_the_batch(served):
    champion, raw = served["champion"], served["raw"]
    calibrated, codes, P = champion.predict_many(raw[:300])
    for i in (0, 5, 150, 299):  # the first windows are padded before the first bar
        one = champion.predict(raw[i])
        assert one.probability == calibrated[i]
        np.testing.assert_array_equal(one.learners, P[i])
        assert one.regime == ("low", "normal", "high", "crisis", "undefined")[codes[i]]
        assert 0.01 <= one.probability <= 0.99


def test_the_arrays_are_read_only_views_of_the_mapping(served):
    champion = served["champion"]
    for array in (champion.median, champion._lstm.args[0], champion._trees["extra_trees"][0],
                  champion._maps[0][0]):
        assert not array.flags.writeable and not array.flags.owndata
        assert np.shares_memory(array, np.frombuffer(champion.bundle.buffer, dtype=np.uint8))


def test_a_bundle_whose_kernels_disagree_is_refused_at_load(served, tmp_path):
    bundle = read_bundle(served["stored"].path)
    arrays = {name: np.array(value) for name, value in bundle.arrays.items()}
    arrays["serving/attention_lstm/head_b"] = arrays["serving/attention_lstm/head_b"] + 0.1
    manifest = {k: v for k, v in bundle.manifest.items()
                if k not in ("format_version", "arrays", "files")}
    stored = write_bundle(arrays, manifest, tmp_path)
    with pytest.raises(BundleError, match=r"self-test failed.*attention_lstm off by"):
        Champion.load(stored.path)
    del arrays["serving/attention_lstm/head_b"]
    stored = write_bundle(arrays, manifest, tmp_path)
    with pytest.raises(BundleError, match=r"serving/attention_lstm/head_b.*rematerialize"):
        Champion.load(stored.path)


def test_windows_of_the_wrong_shape_are_refused(served):
    champion = served["champion"]
    with pytest.raises(ValueError, match=r"a window is \(16, \d+\)"):
        champion.predict(np.zeros((15, len(champion.features))))
    with pytest.raises(ValueError, match="windows are"):
        champion.predict_many(np.zeros((2, 16, 3)))


def test_a_swap_is_one_assignment_and_returns_the_previous_champion(served):
    first = served["champion"]
    second = Champion.load(served["stored"].path)
    slot = ChampionSlot(first)
    assert slot.swap(second) is first and slot.champion is second


_SERVE = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "sklearn", "scipy", "pandas"):
            raise ImportError(f"{{name}} is not allowed on the serving path")

sys.meta_path.insert(0, Refuse())
import numpy as np
from bot4_dagster.serving.champion import Champion

champion = Champion.load({path!r})
window = np.load({window!r})
print(repr(champion.predict(window).probability))
print(sorted(m for m in ("torch", "sklearn", "scipy", "pandas") if m in sys.modules))
"""


@pytest.mark.parametrize("numba", ["compiled", "python twins"])
def test_serving_runs_without_torch_sklearn_scipy_or_pandas(served, tmp_path, numba):
    window = tmp_path / "window.npy"
    np.save(window, served["raw"][200])
    env = dict(os.environ, BOT4_DISABLE_NUMBA="1" if numba == "python twins" else "")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_SERVE.format(
        path=str(served["stored"].path), window=str(window)))], capture_output=True, text=True,
        timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    probability, modules = out.stdout.split("\n")[:2]
    assert modules == "[]"
    expected = served["champion"].predict(served["raw"][200]).probability
    assert float(probability) == pytest.approx(expected, abs=1e-12)


def test_tanh32_is_within_a_few_float32_ulps_of_numpy():
    x = np.linspace(-12, 12, 200_001, dtype=np.float32)
    got = np.array([lstm.tanh32(v) for v in x[::50]], dtype=np.float32)
    exact = np.tanh(x[::50].astype(np.float64))
    assert np.abs(got - exact).max() <= 4 * np.finfo(np.float32).eps
    assert lstm.tanh32(np.float32(20.0)) == pytest.approx(1.0, abs=1e-7)


def test_kernels_equal_their_python_twins(served):
    champion, raw = served["champion"], served["raw"][100]
    std = np.empty_like(raw)
    twin = np.empty_like(raw)
    inputs.standardize(raw, champion.median, champion.mean, champion.std, std)
    inputs.standardize_python(raw, champion.median, champion.mean, champion.std, twin)
    np.testing.assert_array_equal(std, twin)
    a = champion._lstm
    window = std.astype(np.float32)
    assert lstm.lstm_last_attention(window, *a.args, a.heads, a.eps, champion._scratch) == \
        lstm.lstm_last_attention_python(window, *a.args, a.heads, a.eps, champion._scratch)
    row = std[-1]
    args = champion._trees["hist_gradient_boosting"]
    assert trees.tree_sum_one(row, *args, 0.5) == trees.tree_sum_one_python(row, *args, 0.5)
    assert trees.logistic_one(row, *champion._logistic) == \
        trees.logistic_one_python(row, *champion._logistic)
    p = np.array([0.3, 0.55, 0.41, 0.62])
    for mode in BLEND_MODES:
        b = champion.with_blend(mode)
        assert blend.blend_one(p, *b._blend, b._sorted) == \
            blend.blend_one_python(p, *b._blend, b._sorted)
    thresholds = champion.thresholds
    for sigma in (0.0, thresholds[0], thresholds[1] * 1.01, 1e9, np.nan):
        assert inputs.regime_code(sigma, thresholds) == \
            inputs.regime_code_python(sigma, thresholds)


def test_the_lstm_kernel_vectorises_as_wide_as_the_host_allows(served):
    """zmm on an AVX-512 host (AMD znver4), ymm on an AVX2 one: the gate products are packed
    float arithmetic, as wide as the host's reference kernel (``kernels/cpu.py``)."""
    import numba

    a = served["champion"]._lstm
    fn = numba.njit(lstm.lstm_last_attention_python, cache=False, error_model="numpy")
    window = served["raw"][100].astype(np.float32)
    fn(window, *a.args, a.heads, a.eps, served["champion"]._scratch)
    widest = widest_vector_register("\n".join(fn.inspect_asm().values()))
    host = cpu_info()
    assert widest == host["kernel_vector_register"]
    assert (widest == "zmm") == host["avx512"]


def test_the_registry_serves_the_champion_by_alias(served, tmp_path):
    """M4: resolve the alias once, locate the registered bundle and map it through Champion:
    the same predictions as the bundle it was registered from, from MLflow's own copy."""
    from bot4_dagster.registry.model_registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(home=tmp_path / "mlflow")
    registered = registry.register(served["stored"].path).pinned
    registry.promote(registered.name, registered.version)
    loaded = registry.load(registered.name, CHAMPION)
    assert loaded.pinned.version == registered.version == "1"
    assert loaded.path != served["stored"].path and loaded.path.name == served["stored"].id
    window = served["raw"][17]
    ours, reference = loaded.champion.predict(window), served["champion"].predict(window)
    assert (ours.probability, ours.regime) == (reference.probability, reference.regime)
    np.testing.assert_array_equal(ours.learners, reference.learners)
    assert not loaded.champion.median.flags.writeable



def test_m6_shadow_predicts_and_paper_fills_without_touching_the_live_path(served):
    """A challenger (the same bundle served with the mean blend) shadows the champion on 300
    real FTX minutes: both predict every bar and the shadow paper-trades its own decisions,
    while the live risk state is untouched (and an import-linter contract forbids the shadow
    module the order manager, the order store and the risk package)."""
    import copy
    from decimal import Decimal

    from bot4_dagster.registry.promotion import paired_bound
    from bot4_dagster.registry.shadow import Shadow
    from bot4_dagster.trading.instrument import Instrument
    from bot4_dagster.trading.paper import Bar
    from bot4_dagster.trading.risk.state import RiskState

    samples, champion = served["samples"], served["champion"]

    def decide(prediction) -> Decimal:  # a stand-in policy: long above 0.55, short below 0.45
        p = prediction.probability
        return Decimal("0.01") * ((p > 0.55) - (p < 0.45))

    risk = RiskState()
    before = copy.deepcopy(risk)
    shadow = Shadow(champion.with_blend("mean"), version="2", decide=decide,
                    instrument=Instrument("BTC-PERP", tick="1", step="0.001"))
    rows = served["rows"][-300:]
    closes = samples.close.to_numpy()[samples.bar[rows]]
    for row, close in zip(rows, closes, strict=True):
        price = Decimal(str(round(float(close))))
        ts = int(samples.t0[row].value)
        bar = Bar(ts=ts, open=price, high=price, low=price, close=price)
        window = served["raw"][row]
        shadow.on_bar(bar, window, champion.predict(window))
    assert len(shadow.records) == 300
    assert shadow.exchange.fills  # it traded, on its own paper exchange
    assert any(r.shadow != r.champion for r in shadow.records)
    assert repr(risk) == repr(before) and risk.trading_state == before.trading_state
    differences = shadow.differences()
    assert differences.size == 299 and np.isfinite(differences).all()
    assert paired_bound(differences).n_candidate == 299


def test_b8_a_model_swap_leaves_open_protective_orders_untouched(served, tmp_path):
    """An open bracket position (entry filled, take-profit and stop working on a paper
    exchange), then a redeploy: the champion is loaded by alias from the registry and the
    serving slot swaps it for another. Not one protective order changes and nothing new reaches
    the venue."""
    from decimal import Decimal

    from bot4_dagster.registry.model_registry import ModelRegistry
    from bot4_dagster.trading.instrument import Instrument
    from bot4_dagster.trading.manager import OrderManager
    from bot4_dagster.trading.paper import Bar, PaperExchange, SlippageModel, pump

    btc = Instrument("BTCUSDT", tick=Decimal("0.1"), step=Decimal("0.001"))
    exchange = PaperExchange([btc], slippage=SlippageModel(Decimal(0)))
    manager = OrderManager(exchange, [btc], clock=iter(range(10**9, 2 * 10**9)).__next__)
    manager.on_price("BTCUSDT", Decimal(10000))
    bracket = manager.submit_bracket("BTCUSDT", "BUY", "0.01", take_profit=10500,
                                     stop_loss=9500)
    pump(exchange, manager)
    exchange.on_bar("BTCUSDT", Bar(1, Decimal(10000), Decimal(10010), Decimal(9990),
                                   Decimal(10000)))
    pump(exchange, manager)
    assert manager.positions["BTCUSDT"] == Decimal("0.01")

    def protective():
        return [(o.id, o.status, o.qty, o.price, o.trigger_price, o.leaves)
                for o in manager.list_orders(bracket.id)]
    before, sent = protective(), len(exchange._seen)

    registry = ModelRegistry(home=tmp_path / "mlflow")
    first = registry.register(served["stored"].path).pinned
    registry.promote(first.name, first.version)
    slot = ChampionSlot(registry.load(first.name).champion)
    slot.swap(served["champion"].with_blend("mean"))  # a redeploy to another champion
    assert protective() == before and len(exchange._seen) == sent
    assert exchange.position("BTCUSDT") == Decimal("0.01")
