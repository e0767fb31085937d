"""The engine's reused buffers: results stay right at any batch size, and a training step allocates no arrays."""
import tracemalloc

import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.backend import reuse
from tinygan.models.gan import GAN, Dataset, make_config

# A temporary of a (B, n) float32 activation costs 4 n bytes per batch row. A step may still allocate
# per-sample columns (the drawn labels, their one-hot rows, the loss's (2B, 1) columns) and numpy's
# iterator scratch (at most 8192 elements per operand); the test allows half of the narrowest
# activation's bytes per row, so any activation-sized temporary fails it.


def transient_bytes(fn, repeats=2):
    """The most memory fn() holds at once above what was live before it (numpy arrays included), and the growth."""
    tracemalloc.start()
    try:
        fn()  # warm: buffers are made on the first call
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(repeats):
            fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, current - base


def step_transients(config, B):
    """(peak temporary bytes, growth) of a sample-and-step iteration at batch B."""
    be = tg.Backend("numpy", "float32", seed=0)
    gan = GAN(config, be)
    rng = np.random.default_rng(0)
    data = Dataset(rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), rng.integers(0, 10, 300), be,
                   config["data_range"])

    def iteration():
        real, labels = data.sample(B)
        gan.step(real, labels if config["conditional"] else None)
    return transient_bytes(iteration, repeats=3)


def test_the_measure_sees_a_temporary():
    rows = {}
    for B in (128, 256):
        x = np.ones((B, 128), np.float32)  # the narrowest activation of both presets
        rows[B], growth = transient_bytes(lambda: x * 2)
        assert growth < x.nbytes
    assert (rows[256] - rows[128]) / 128 > 128 * 4 / 2, "a (B, 128) temporary must exceed the allowance"


@pytest.mark.parametrize("preset, overrides", [
    ("seed", {}), pytest.param("deep", {}, marks=pytest.mark.slow),
    ("seed", dict(conditional=True)),  # the one-hot label into D
    pytest.param("deep", dict(conditional=True), marks=pytest.mark.slow),  # the real AC-GAN: class head and its loss
    ("deep", dict(conditional=True, g_hidden=[32, 64], d_hidden=[64, 32])),  # narrow: a strict allowance, fast
])
def test_training_step_allocates_no_arrays(preset, overrides):
    config = make_config(preset, **overrides)
    allowed = min(config["g_hidden"] + config["d_hidden"]) * 4 / 2  # bytes per batch row
    (small, growth), (large, _) = step_transients(config, 128), step_transients(config, 256)
    per_row = (large - small) / 128
    assert per_row < allowed, (
        f"a {preset} step's temporaries grow by {per_row:.0f} bytes per batch row (peak {large} bytes at "
        f"batch 256, allowed {allowed:.0f} per row): an activation-sized array is allocated inside the step")
    assert growth < 4096, f"{growth} bytes more live after 3 steps: something accumulates"


def test_forward_and_backward_are_right_at_changing_batch_sizes(be64):
    model = tg.Sequential(tg.Dense(4, 6, be=be64), tg.LeakyReLU(0.2), tg.Dense(6, 3, be=be64), tg.Tanh())
    W1, b1, W2, b2 = (be64.to_host(p) for p, _ in model.parameters())
    for B in (5, 9, 2, 9):  # grow, shrink, regrow: buffers are reused by their leading rows
        x = be64.randn(B, 4)
        h = be64.to_host(x) @ W1 + b1
        a = np.maximum(h, 0.2 * h)
        y = np.tanh(a @ W2 + b2)
        assert np.allclose(be64.to_host(model.forward(x)), y, rtol=1e-12, atol=1e-12)
        dout = be64.randn(B, 3)
        model.zero_grad()
        dx = be64.to_host(model.backward(dout))
        da = (be64.to_host(dout) * (1 - y ** 2)) @ W2.T
        assert np.allclose(dx, (da * np.where(h > 0, 1, 0.2)) @ W1.T, rtol=1e-12, atol=1e-12)
        assert np.allclose(be64.to_host(model.layers[0].dW), be64.to_host(x).T @ (da * np.where(h > 0, 1, 0.2)))


def test_forward_output_is_reused_and_to_host_copies(be32):
    layer = tg.Dense(3, 2, be=be32)
    first = layer.forward(be32.randn(4, 3))
    kept = be32.to_host(first)
    second = layer.forward(be32.randn(4, 3))
    assert be32.xp.shares_memory(first, second), "same batch size: same buffer"
    assert not np.array_equal(kept, be32.to_host(second)), "the host copy keeps the first result"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 0.3, 1.0])
def test_leaky_relu_is_exactly_the_max_form(dtype, slope):
    be = tg.Backend("numpy", dtype, seed=1)
    x = be.randn(64, 33)
    x[0, :3] = 0.0
    act = tg.LeakyReLU(slope)
    y = act.forward(x)
    assert np.array_equal(y, np.maximum(x, x * x.dtype.type(slope)))
    assert set(np.unique(act.dydx)) <= {x.dtype.type(slope), x.dtype.type(1)}
    dout = be.randn(64, 33)
    assert np.array_equal(act.backward(dout), np.where(x > 0, dout, dout * x.dtype.type(slope)))


def test_randn_is_standard_normal_and_seeded():
    be = tg.Backend("numpy", "float32", seed=5)
    z = be.randn(200_001).astype(np.float64)  # odd size: the last Box-Muller pair is half used
    assert z.dtype == np.float64 and z.shape == (200_001,)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005 and abs(np.mean(np.abs(z) < 2) - 0.9545) < 0.003
    h = len(z) // 2
    assert abs(np.corrcoef(z[:h], z[h + 1:h + 1 + h])[0, 1]) < 0.01, "the cos and sin halves must be independent"
    out = np.empty((3, 7), np.float32)
    assert tg.Backend("numpy", seed=9).randn(out=out) is out
    assert np.array_equal(out, tg.Backend("numpy", seed=9).randn(3, 7)), "out= draws the same stream"


def test_dataset_sample_converts_the_drawn_rows():
    images = np.repeat(np.arange(200, dtype=np.uint8), 784).reshape(200, 28, 28)  # image i is all i
    be = tg.Backend("numpy", "float32", seed=0)
    data = Dataset(images, np.arange(200) % 10, be, "signed")
    x, labels = data.sample(64)
    rows = np.rint((x[:, 0] + 1) * 127.5).astype(int)  # which image each row came from
    assert np.allclose(x, np.broadcast_to(rows[:, None] / 127.5 - 1, (64, 784)), rtol=0, atol=1e-6)
    assert np.array_equal(labels, rows % 10)


def test_reuse_makes_c_contiguous_arrays_whatever_the_model_array():
    like, store = np.asfortranarray(np.zeros((3, 4), np.float32)), {}
    a = reuse(store, "f", like, (5, 4))
    assert a.flags.c_contiguous and a.dtype == np.float32 and a.shape == (5, 4)


def box_muller(seed, n, dtype):
    """The documented stream: u1, u2 from numpy's default_rng(seed); r cos(t) for the first half, r sin(t) after."""
    rng, h = np.random.default_rng(seed), (n + 1) // 2
    u1, u2 = rng.random(h, dtype=dtype), rng.random(h, dtype=dtype)
    r, t = np.sqrt(-2 * np.log(1 - u1)), 2 * np.pi * u2
    return np.concatenate([r * np.cos(t), (r * np.sin(t))[:n - h]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4, 5), (3, 7), (1,)])
def test_randn_is_box_muller_on_the_seeded_uniforms(dtype, shape):
    z = tg.Backend("numpy", dtype, seed=11).randn(*shape)
    np.testing.assert_allclose(z.ravel(), box_muller(11, z.size, np.dtype(dtype)), rtol=5e-6 if dtype == "float32" else 1e-14,
                               atol=1e-6 if dtype == "float32" else 1e-14)


def test_randn_into_a_kept_array_allocates_nothing():
    be, out = tg.Backend("numpy", "float32", seed=0), np.empty((1000, 100), np.float32)
    peak, _ = transient_bytes(lambda: be.randn(out=out))
    assert peak < out.nbytes / 8, f"{peak} bytes allocated drawing {out.nbytes} bytes of noise into a kept array"


def test_reuse_grows_and_hands_out_leading_rows():
    like, store = np.zeros(1, np.float32), {}
    a = reuse(store, "h", like, (8, 3))
    assert a is store["h"] and reuse(store, "h", like, (8, 3)) is a, "no new view object per request"
    b = reuse(store, "h", like, (5, 3))
    assert b.shape == (5, 3) and np.shares_memory(a, b) and b.flags.c_contiguous
    c = reuse(store, "h", like, (12, 3))
    assert c.shape == (12, 3) and not np.shares_memory(a, c)
    assert reuse(store, "h", like, (4, 3), dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("preset", ["seed", "deep"])
def test_what_a_step_keeps_survives_the_generator_update(preset):
    config = make_config(preset, g_hidden=[16], d_hidden=[16])
    be = tg.Backend("numpy", "float32", seed=0)
    gan = GAN(config, be)
    real = tg.Backend("numpy", "float32", seed=1).rand(8, 784)
    stats = gan.step(real)
    # d_out holds D's verdicts from the D update; the G update runs D again on buffers of its own rows
    assert gan.d_out.shape == (16, 1)
    assert float(gan.d_out[:8].mean()) == float(stats["d_real"])
    assert float(gan.d_out[8:].mean()) == float(stats["d_fake"])


def test_an_unconditional_step_ignores_labels():
    gan = GAN(make_config("seed", g_hidden=[16], d_hidden=[16]), tg.Backend("numpy", "float32", seed=0))
    stats = gan.step(tg.Backend("numpy", seed=1).rand(8, 784), np.arange(8) % 10)
    assert np.isfinite(float(stats["d_loss"]))


def test_randn_refuses_a_non_contiguous_out():
    buf = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError) as e:
        tg.Backend("numpy").randn(out=buf[:, :3])
    assert str(e.value) == ("randn(out=...) needs a C-contiguous array; got one of shape (4, 3) that is not "
                            "(pass a contiguous buffer, or copy the result into a slice)")


def test_dropout_probability_is_checked():
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        tg.Dropout(1.0)


LAYERS = {
    "dense": lambda be: tg.Dense(300, 200, be=be),
    "dense-to-1": lambda be: tg.Dense(300, 1, be=be),
    "relu": lambda be: tg.ReLU(),
    "leaky": lambda be: tg.LeakyReLU(0.2),
    "sigmoid": lambda be: tg.Sigmoid(),
    "tanh": lambda be: tg.Tanh(),
    "dropout": lambda be: tg.Dropout(0.3, be=be),
}


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_writes_into_arrays_it_keeps(name):
    be = tg.Backend("numpy", "float64", seed=0)
    layer = LAYERS[name](be)
    n_in = 300
    n_out = layer.n_out if isinstance(layer, tg.Dense) else n_in
    calls = []
    for _ in range(3):
        x, dout = be.randn(128, n_in), be.randn(128, n_out)
        y = layer.forward(x)
        calls.append((y, layer.backward(dout), be.to_host(x), be.to_host(dout)))
    (y1, dx1, _, _), (y2, dx2, x, dout) = calls[1], calls[2]
    assert np.shares_memory(y1, y2) and np.shares_memory(dx1, dx2), "forward and backward reuse their arrays"
    if isinstance(layer, tg.Dense):  # parameter gradients go through scratch arrays, then add up
        assert np.allclose(layer.buffers["dW_new"], x.T @ dout) and np.allclose(layer.buffers["db_new"], dout.sum(0))
    if isinstance(layer, tg.Dropout):
        assert np.shares_memory(layer.mask, layer.buffers["mask"]), "the mask is drawn into its kept array"
    # after the first call, a forward and backward allocate less than one byte per activation entry
    # (numpy's own iterator scratch is capped at 8192 elements per operand)
    x, dout = be.randn(512, n_in), be.randn(512, n_out)
    layer.backward(dout) if layer.forward(x) is not None else None
    peak, _ = transient_bytes(lambda: layer.backward(dout) if layer.forward(x) is not None else None)
    assert peak < 512 * n_in, f"{name}: {peak} bytes allocated by a forward and backward"


@pytest.mark.parametrize("preset, overrides", [("seed", {}), ("seed", dict(conditional=True)),
                                               ("deep", dict(conditional=True))])
def test_a_step_computes_no_gradient_and_no_copy_it_does_not_use(preset, overrides):
    config = make_config(preset, g_hidden=[16], d_hidden=[16], **overrides)
    gan, B = GAN(config, tg.Backend("numpy", "float32", seed=0)), 8
    gan.step(tg.Backend("numpy", seed=1).rand(B, 784), np.arange(B) % 10)
    assert "dx" not in gan.G.layers[0].buffers, "G's update needs no dL/dz"
    assert len(gan.D.layers[0].buffers["dx"]) == B, "D's input gradient is for G's update (B rows), not D's (2B rows)"
    sees_labels = gan.D.layers[0].n_in > 784
    assert ("d_in" in gan.buffers) == sees_labels, "G's output is copied only to append the one-hot labels"
