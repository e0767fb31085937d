"""--trace: per-layer records, bit-identical training, each diagnosis provoked on purpose, the report and the CLI."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tinygan.engine.backend import Backend
from tinygan.data.mnist import load_mnist, to_unit
from tinygan.models.gan import GAN, PRESETS, Dataset, make_config
from tinygan.run.report import draw_internals
from tinygan.measure.trace import BINS, Tracer, load_trace_classifier, measure_overhead

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(g_hidden=[16], d_hidden=[16], batch_size=16, latent_dim=8)


pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


def mnist():
    """1000 images and labels of the bundled test split."""
    x, y = load_mnist("test", download=False, verbose=False)
    return x[:1000], y[:1000]


def make(preset="seed", seed=0, **overrides):
    """A tiny GAN and a Dataset of 1000 real digits."""
    config = make_config(preset, seed=seed, **{**TINY, **overrides})
    be = Backend("numpy", "float32", seed)
    return GAN(config, be), Dataset(*mnist(), be, config["data_range"])


def train(gan, data, tracer, steps, before_step=None):
    """Run steps like train_mnist.py does; returns the trace records."""
    traces = []
    for _ in range(steps):
        if before_step:
            before_step(gan)
        traced = tracer and tracer.due(gan.iteration + 1)
        if traced:
            tracer.snapshot()
        real, y = data.sample(gan.config["batch_size"])
        y = y if gan.config["conditional"] else None
        gan.step(real, y)
        if traced:
            traces.append((gan.iteration, tracer.record(real, y)))
    return traces


def names(tracer):
    return [d["name"] for d in tracer.diagnoses]


def test_trace_records_every_layer_and_is_json():
    gan, data = make("deep", d_dropout=0.3)
    it, t = train(gan, data, Tracer(gan, every=2), 6)[-1]
    assert it == 6
    assert list(t["layers"]) == ["G.0 Dense", "G.1 LeakyReLU", "G.2 Dense", "G.3 Tanh",
                                 "D.0 Dense", "D.1 LeakyReLU", "D.3 Dense"]  # D.2 is the dropout
    g0 = t["layers"]["G.0 Dense"]
    assert g0["w_norm"] == pytest.approx(np.linalg.norm(gan.G.layers[0].W), rel=1e-3)
    assert g0["g_norm"] == pytest.approx(np.linalg.norm(gan.G.layers[0].dW), rel=1e-3)
    assert 0 < g0["update_ratio"] < 0.1
    assert set(t["layers"]["G.1 LeakyReLU"]) == {"dead", "mean", "std"}
    assert set(t["layers"]["G.3 Tanh"]) == {"saturated", "mean", "std"}
    for key in ("d_real_hist", "d_fake_hist"):
        assert len(t[key]) == BINS and sum(t[key]) == pytest.approx(1, abs=1e-3)
    assert t["spread"] > 0 and "class_hist" not in t
    json.loads(json.dumps(t))  # plain floats and lists only


def test_update_ratio_is_the_step_taken():
    gan, data = make()
    tracer = Tracer(gan, every=1)
    tracer.snapshot()
    W0 = gan.G.layers[2].W.copy()
    real, _ = data.sample(16)
    gan.step(real)
    ratio = tracer.record(real)["layers"]["G.2 Dense"]["update_ratio"]
    W1 = gan.G.layers[2].W
    assert ratio == pytest.approx(np.linalg.norm(W1 - W0) / np.linalg.norm(W1), rel=1e-3)


@pytest.mark.parametrize("preset, extra", [("seed", {}), ("deep", {"d_dropout": 0.3, "conditional": True}),
                                           ("deep", {"conditional": True, "aux": 1.0})], ids=["seed", "cond", "acgan"])
def test_tracing_leaves_training_bit_identical(preset, extra):
    if "aux" in extra and "aux" not in PRESETS[preset]:
        pytest.skip("this GAN has no AC-GAN mode")
    plain, data = make(preset, **extra)
    train(plain, data, None, 12)
    traced, data = make(preset, **extra)
    train(traced, data, Tracer(traced, every=3), 12)
    assert np.array_equal(plain.G.flat_params, traced.G.flat_params)
    assert np.array_equal(plain.D.flat_params, traced.D.flat_params)


def test_a_diagnosis_is_named_once_per_episode():
    gan, _ = make()
    tracer = Tracer(gan, patience=2)
    healthy = {"layers": {}, "g_grad_norm": 1.0, "d_fake_mean": 0.3, "spread": 0.2}
    winning = dict(healthy, d_fake_mean=0.01)
    found = [tracer.diagnose(t, it) for it, t in
             enumerate([healthy, winning, winning, winning, winning, healthy, winning, winning], start=1)]
    assert [[d["began"] for d in new] for new in found] == [[], [], [2], [], [], [], [], [7]]
    assert found[2][0]["name"] == "discriminator winning" and found[2][0]["iteration"] == 3
    with pytest.raises(ValueError, match="unknown thresholds"):
        Tracer(gan, patince=2)


def test_discriminator_winning_with_a_too_high_d_learning_rate():
    control, data = make()
    tracer = Tracer(control, every=5)
    train(control, data, tracer, 40)
    assert "discriminator winning" not in names(tracer)
    gan, data = make()
    gan.opt_d.lr = 5e-3  # D learns 25 times faster than G
    tracer = Tracer(gan, every=5)
    train(gan, data, tracer, 40)
    assert names(tracer).count("discriminator winning") == 1
    d = next(d for d in tracer.diagnoses if d["name"] == "discriminator winning")
    assert d["iteration"] == d["began"] + 10 and "mean D(G(z))" in d["message"]
    assert tracer.streaks["discriminator winning"][1] > 3  # still winning, and not named again


def test_vanishing_generator_gradient():
    gan, data = make()
    tracer = Tracer(gan, every=5)
    train(gan, data, tracer, 15)
    assert "vanishing G gradient" not in names(tracer)
    backward = gan.G.backward
    gan.G.backward = lambda dout, *args, **kw: backward(dout * 1e-9, *args, **kw)  # the path into G vanishes
    train(gan, data, tracer, 15)
    vanishing = [d for d in tracer.diagnoses if d["name"] == "vanishing G gradient"]
    assert len(vanishing) == 1 and vanishing[0]["began"] == 20


def force_constant(gan):
    """Zero the last Dense of G: every noise vector gives the same image."""
    gan.G.layers[2].W[...] = 0


def test_mode_collapse_without_classifier_uses_sample_spread():
    gan, data = make()
    tracer = Tracer(gan, every=5)
    train(gan, data, tracer, 10)
    train(gan, data, tracer, 15, before_step=force_constant)
    assert names(tracer) == ["mode collapse"]
    assert tracer.diagnoses[0]["began"] == 15 and "fixed-noise samples differ" in tracer.diagnoses[0]["message"]


def test_mode_collapse_with_classifier_is_a_fall_in_class_entropy(monkeypatch):
    gan, data = make()
    classifier, note = load_trace_classifier(gan.be)
    if classifier is None:
        pytest.skip(note)
    x, labels = mnist()
    real = to_unit(x[:500]).reshape(500, 784)                 # ten digits, then ...
    ones = np.repeat(real[np.flatnonzero(labels[:500] == 1)[:1]], 500, axis=0)  # ... one image of a 1
    shown = []
    monkeypatch.setattr(gan, "generate", lambda z, y=None: shown[-1])
    tracer = Tracer(gan, every=5, classifier=classifier, spread_floor=0, spread=0)  # entropy alone decides
    shown.append(real)
    train(gan, data, tracer, 10)
    shown.append(ones)
    traces = train(gan, data, tracer, 15)
    assert traces[0][1]["entropy"] < 0.1 and traces[0][1]["class_hist"][1] > 0.9
    assert names(tracer) == ["mode collapse"]
    assert tracer.diagnoses[0]["began"] == 15 and "look like a 1" in tracer.diagnoses[0]["message"]


def test_early_blobs_are_not_mode_collapse():
    gan, data = make()
    classifier, note = load_trace_classifier(gan.be)
    if classifier is None:
        pytest.skip(note)
    tracer = Tracer(gan, every=5, classifier=classifier)
    traces = train(gan, data, tracer, 20)
    assert traces[-1][1]["entropy"] < 0.5  # an untrained G's samples look like one digit ...
    assert "mode collapse" not in names(tracer)  # ... but the entropy never fell


def test_dead_layer_from_a_very_negative_bias():
    gan, data = make()
    gan.G.layers[0].b[...] = -100  # G.1 ReLU never fires, and passes no gradient to bring it back
    tracer = Tracer(gan, every=5)
    traces = train(gan, data, tracer, 15)
    assert traces[-1][1]["layers"]["G.1 ReLU"]["dead"] == 1
    assert "dead layer G.1 ReLU" in names(tracer)
    assert "dead layer D.1 ReLU" not in names(tracer)


def test_report_draws_with_and_without_traces(tmp_path):
    gan, data = make()
    tracer = Tracer(gan, every=2)
    gan.opt_d.lr = 2e-2
    records = [dict(iter=it, d_loss=1.0, g_loss=1.0, d_real=0.9, d_fake=0.1, trace=t)
               for it, t in train(gan, data, tracer, 20)]
    records.insert(3, dict(iter=5, d_loss=1.0, g_loss=1.0, d_real=0.9, d_fake=0.1))  # an untraced line
    draw_internals(records, tmp_path / "a.png", note="class histogram skipped: no weights")
    draw_internals([], tmp_path / "b.png")
    for name in ("a.png", "b.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 1_000_000


def test_measure_overhead_reports_step_and_trace_cost():
    gan, data = make()
    m = measure_overhead(gan, data, every=100, steps=10, points=2)
    assert m["step_s"] > 0 and m["trace_s"] > 0 and m["every"] == 100
    assert m["overhead"] == pytest.approx(m["trace_s"] / (100 * m["step_s"]))


def load_train_script():
    spec = importlib.util.spec_from_file_location("train_mnist", ROOT / "examples" / "train_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_trace_writes_records_and_the_report(tmp_path, capsys):
    out = tmp_path / "run"
    load_train_script().main(["--trace", "--trace-every", "10", "--log-every", "25", "--iterations", "50",
                              "--g-hidden", "16", "--d-hidden", "16", "--batch-size", "16", "--lr", "2e-2",
                              "--sample-every", "1000", "--out", str(out)])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [10, 20, 25, 30, 40, 50]
    assert [r["iter"] for r in records if "trace" in r] == [10, 20, 30, 40, 50]
    assert all({"d_loss", "g_loss", "d_real", "d_fake", "seconds"} <= set(r) for r in records)
    assert "G.0 Dense" in records[0]["trace"]["layers"]
    assert (out / "internals.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr()
    assert "internals.png" in printed.out
    logged = [d for r in records if "trace" in r for d in r["trace"]["diagnoses"]]
    assert all(f"diagnosis at iteration {d['iteration']}: {d['message']}" in printed.out + printed.err
               for d in logged)
