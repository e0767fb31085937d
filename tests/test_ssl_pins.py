"""Pins of the semi-supervised recipe that no gradient or oracle test sees: the settings SSLGAN hands on, the
architecture, the step counter and the average's ramp, accumulating gradients, and the unlabelled weight."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.losses import softmax_cross_entropy, unlabelled_loss
from tinygan.models.ssl import SSLGAN, make_ssl_config


def small(be, **overrides):
    """A small noise-free semi-supervised GAN (its losses are deterministic functions of its weights)."""
    return SSLGAN(make_ssl_config(**{**dict(d_hidden=[7, 6], g_hidden=[5, 4], latent_dim=3, input_noise=0.0,
                                            hidden_noise=0.0), **overrides}), be)


def batches(be, n=6, B=5):
    r = tg.Backend(be.name, be.dtype.name, seed=7)
    return r.rand(n, 784), r.randint(10, n), r.rand(B, 784), r.rand(B, 784), r.rand(B, 3)


def test_the_recipe_defaults():
    """The published MNIST settings (Salimans et al. 2016), with Adam's eps at 1e-4 (docs/ssl.md)."""
    assert make_ssl_config() == dict(
        kind="ssl", labels=100, d_hidden=[1000, 500, 250, 250, 250], input_noise=0.3, hidden_noise=0.5,
        g_hidden=[500, 500], latent_dim=100, lr=3e-3, beta1=0.5, beta2=0.999, adam_eps=1e-4, batch_size=100,
        unlabelled_weight=1.0, ema=0.9999, epochs=100, steps_per_epoch=None, seed=0,
        # the cures, all off: the recipe alone (below 10 labels per class the command adds FEW_LABELS)
        validation=0, exclude_labelled=False, adam_eps_inside=False, g_lr=None, decay_fraction=0.0, warmup_epochs=0,
        entropy_weight=0.0, balance_weight=0.0, consistency_weight=0.0, pull_away_weight=0.0, pseudo_threshold=None,
        image=[28, 28], classes=[str(d) for d in range(10)])


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown semi-supervised settings \['bogus'\]: choose from \['adam_eps', "):
        make_ssl_config(bogus=1)


def test_both_adams_take_lr_betas_and_eps_from_the_config():
    """Adam's own defaults (lr 1e-3, eps 1e-8) collapsed two runs: every setting must come from the config."""
    be = tg.Backend("numpy", "float64", seed=0)
    gan = small(be, lr=0.0123, beta1=0.31, beta2=0.95, adam_eps=3e-5)
    for name, opt in (("G", gan.opt_g), ("D", gan.opt_d)):
        assert (opt.lr, opt.betas, opt.eps) == (0.0123, (0.31, 0.95), 3e-5), f"{name}'s Adam"
    assert len(gan.opt_g.params) == 1 and gan.opt_g.params[0][0] is gan.G.flat_params
    assert gan.opt_g.params[0][1] is gan.G.flat_grads
    assert len(gan.opt_d.params) == 1 and gan.opt_d.params[0][0] is gan.D.flat_params
    assert gan.opt_d.params[0][1] is gan.D.flat_grads
    gan = SSLGAN(make_ssl_config(), be)  # and the recipe's own values by default
    for opt in (gan.opt_g, gan.opt_d):
        assert (opt.lr, opt.betas, opt.eps) == (3e-3, (0.5, 0.999), 1e-4)


def test_the_recipe_architecture():
    """D: fixed-scale (train_scale=False) hidden layers, only the logits layer trains its scale; G: bias-free
    Dense and shift-only batch norm (scale=False), then a weight-normalised sigmoid output with a trained scale."""
    be = tg.Backend("numpy", "float32", seed=0)
    gan = SSLGAN(make_ssl_config(), be)
    assert repr(gan.D) == (
        "Sequential(GaussianNoise(0.3), "
        + "".join(f"WeightNormDense({a}, {b}, train_scale=False), ReLU(), GaussianNoise(0.5), "
                  for a, b in [(784, 1000), (1000, 500), (500, 250), (250, 250), (250, 250)])
        + "WeightNormDense(250, 10))")
    d_shapes = {n: p.shape for n, p, _ in gan.D.named_parameters()}
    sizes = [784, 1000, 500, 250, 250, 250]
    expected = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        expected.update({f"{1 + 3 * i}.V": (a, b), f"{1 + 3 * i}.b": (b,)})
    expected.update({"16.V": (250, 10), "16.g": (10,), "16.b": (10,)})
    assert d_shapes == expected
    assert gan.D.flat_params.size == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])) + 250 * 10 + 20
    d_state = [n for n, _ in gan.D.named_arrays()][len(expected):]
    assert d_state == ["1.g", "4.g", "7.g", "10.g", "13.g"], "hidden scales are saved, not trained"

    assert repr(gan.G) == ("Sequential(Dense(100, 500, bias=False), BatchNorm(500, scale=False), Softplus(), "
                           "Dense(500, 500, bias=False), BatchNorm(500, scale=False), Softplus(), "
                           "WeightNormDense(500, 784), Sigmoid())")
    g_shapes = {n: p.shape for n, p, _ in gan.G.named_parameters()}
    assert g_shapes == {"0.W": (100, 500), "1.beta": (500,), "3.W": (500, 500), "4.beta": (500,),
                        "6.V": (500, 784), "6.g": (784,), "6.b": (784,)}
    assert gan.G.flat_params.size == 100 * 500 + 500 + 500 * 500 + 500 + 500 * 784 + 2 * 784
    assert [n for n, _ in gan.G.named_arrays()][len(g_shapes):] == [
        "1.running_mean", "1.running_var", "4.running_mean", "4.running_var"]
    assert gan.features == 15 and type(gan.D.layers[15]).__name__ == "GaussianNoise"
    # G's output layer starts at the spread of a Glorot layer (its direction is random, its length set by g = 1)
    V = be.to_host(gan.G.layers[6].V)
    assert abs(V.std() - (2 / (500 + 784)) ** 0.5) < 2e-4 and np.all(be.to_host(gan.G.layers[6].g) == 1)


def test_batch_norm_running_statistics_start_at_mean_0_variance_1():
    be = tg.Backend("numpy", "float64", seed=0)
    gan = small(be)
    norms = [layer for layer in gan.G.layers if isinstance(layer, tg.BatchNorm)]
    assert len(norms) == 2
    for layer in norms + [tg.BatchNorm(3, be=be), tg.BatchNorm(3, be=be, scale=False)]:
        assert np.all(be.to_host(layer.running_mean) == 0) and np.all(be.to_host(layer.running_var) == 1)
    # so before any training step G in evaluation mode normalises by sqrt(1 + eps) only
    layer, x = norms[0], be.randn(4, 5)
    layer.training = False
    assert np.allclose(be.to_host(layer.forward(x)), be.to_host(x) / np.sqrt(1 + layer.eps), rtol=1e-14)


def test_steps_count_from_zero_by_one_and_the_average_ramps_its_decay():
    """iteration 0, 1, 2, ...; each step's average uses d = min(ema, (1 + t) / (10 + t)) with t before the step."""
    be = tg.Backend("numpy", "float64", seed=0)
    for ema in (0.9999, 0.2):  # 0.2 < (1 + 2) / 12: the third step's decay is the configured one
        gan = small(be, ema=ema, input_noise=0.3, hidden_noise=0.5)
        x_lab, y_lab, x_unl, x_unl2, _ = batches(be)
        assert gan.iteration == 0
        avg = gan.ema.copy()
        for t in range(4):
            gan.step(x_lab, y_lab, x_unl, x_unl2)
            assert gan.iteration == t + 1
            d = min(ema, (1 + t) / (10 + t))
            avg = d * avg + (1 - d) * gan.D.flat_params
            np.testing.assert_allclose(gan.ema, avg, rtol=1e-12, atol=1e-15, err_msg=f"average after step {t + 1}")


def test_the_average_restarts_from_the_data_initialised_weights():
    be = tg.Backend("numpy", "float64", seed=0)
    gan = small(be)
    before = gan.ema.copy()
    gan.init_from_data(be.rand(40, 784))
    assert not np.array_equal(gan.D.flat_params, before)
    assert np.array_equal(gan.ema, gan.D.flat_params) and gan.ema is not gan.D.flat_params


@pytest.mark.parametrize("weight", [0.3, 2.0])
def test_the_unlabelled_weight_multiplies_the_unlabelled_terms(weight):
    """loss = cross-entropy + weight * (real + generated) / 2, and D's gradient is the same combination."""
    be = tg.Backend("numpy", "float64", seed=0)
    gan = small(be, unlabelled_weight=weight)
    x_lab, y_lab, x_unl, _, z = batches(be)
    gan.D.zero_grad()
    stats = gan.d_backward(x_lab, y_lab, x_unl, z)
    grad = gan.D.flat_grads.copy()
    out = gan.D.forward(np.concatenate([x_lab, x_unl, gan.G.forward(z)]))
    n, B = len(x_lab), len(x_unl)
    lab = float(softmax_cross_entropy(out[:n].copy(), y_lab)[0])
    unl = 0.5 * (float(unlabelled_loss(out[n:n + B], True)[0]) + float(unlabelled_loss(out[n + B:], False)[0]))
    assert np.isclose(float(stats["loss_lab"]), lab, rtol=1e-12)
    assert np.isclose(float(stats["loss_unl"]), weight * unl, rtol=1e-12)
    assert np.isclose(float(stats["loss"]), lab + weight * unl, rtol=1e-12)
    grads = {}
    for w in (0.0, 1.0):  # the gradient is linear in the weight
        gan.config["unlabelled_weight"] = w
        gan.D.zero_grad()
        gan.d_backward(x_lab, y_lab, x_unl, z)
        grads[w] = gan.D.flat_grads.copy()
    assert not np.allclose(grads[0.0], grads[1.0])
    np.testing.assert_allclose(grad, grads[0.0] + weight * (grads[1.0] - grads[0.0]), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("layer", ["weight-norm", "batch-norm"])
def test_normalised_layers_accumulate_parameter_gradients(be64, layer):
    """Two backward passes add up (the engine's rule: gradients accumulate with +=, zero_grad clears them)."""
    if layer == "weight-norm":
        m = tg.WeightNormDense(5, 4, be=be64, train_scale=True)
        m.g[...] = be64.rand(4) + 0.5
    else:
        m = tg.BatchNorm(4, be=be64, scale=True)
        m.gamma[...] = be64.randn(4)
    x = be64.randn(6, m.n_in if layer == "weight-norm" else 4)
    dout = be64.randn(6, 4)
    m.forward(x)
    m.backward(dout)
    once = {n: be64.to_host(g).copy() for n, _, g in m.named_parameters()}
    assert set(once) == ({"V", "g", "b"} if layer == "weight-norm" else {"gamma", "beta"})
    m.forward(x)
    m.backward(dout)
    for n, _, g in m.named_parameters():
        assert np.any(once[n] != 0), n
        np.testing.assert_allclose(be64.to_host(g), 2 * once[n], rtol=1e-12, err_msg=f"d{n} after two passes")


def test_normalised_layers_print_their_settings():
    be = tg.Backend("numpy", "float64", seed=0)
    assert repr(tg.BatchNorm(3, be=be)) == "BatchNorm(3)" and repr(tg.BatchNorm(3, be=be, scale=False)) == "BatchNorm(3, scale=False)"
    assert repr(tg.WeightNormDense(2, 3, be=be)) == "WeightNormDense(2, 3)"
    assert repr(tg.WeightNormDense(2, 3, be=be, train_scale=False)) == "WeightNormDense(2, 3, train_scale=False)"


def test_the_step_statistics():
    """train_err: the share of labelled rows whose largest logit is not their label; d_real, d_fake: mean Z / (Z + 1)."""
    be = tg.Backend("numpy", "float64", seed=0)
    gan = small(be)
    x_lab, y_lab, x_unl, _, z = batches(be, n=40)
    gan.D.zero_grad()
    stats = gan.d_backward(x_lab, y_lab, x_unl, z)
    out = gan.D.forward(np.concatenate([x_lab, x_unl, gan.G.forward(z)]))
    n, B = len(x_lab), len(x_unl)
    err = float((out[:n].argmax(axis=1) != y_lab).mean())
    assert 0 < err < 1 and float(stats["train_err"]) == err
    Z = np.exp(out[n:]).sum(axis=1)
    assert np.isclose(float(stats["d_real"]), (Z / (Z + 1))[:B].mean(), rtol=1e-12)
    assert np.isclose(float(stats["d_fake"]), (Z / (Z + 1))[B:].mean(), rtol=1e-12)
    assert not np.isclose(float(stats["d_real"]), float(stats["d_fake"]), rtol=1e-6)


def test_the_average_swaps_in_and_classify_puts_the_live_weights_back():
    be = tg.Backend("numpy", "float64", seed=0)
    gan = small(be)
    gan.ema[...] = be.randn(gan.ema.size)
    live, ema = gan.D.flat_params.copy(), gan.ema.copy()
    gan.use_average()  # on by default
    assert np.array_equal(gan.D.flat_params, ema)
    gan.use_average(False)
    assert np.array_equal(gan.D.flat_params, live)
    for average in (True, False):
        gan.classify(be.rand(7, 784), batch=3, average=average)
        assert np.array_equal(gan.D.flat_params, live) and np.array_equal(gan.ema, ema), f"average={average}"


def test_normalised_layer_defaults():
    """V starts at std 0.1 (its length sets how far Adam's steps turn it); batch norm's running statistics move a
    tenth of the way to each batch's (unbiased variance) and its eps is 1e-6."""
    be = tg.Backend("numpy", "float64", seed=0)
    V = be.to_host(tg.WeightNormDense(400, 300, be=be).V)
    assert abs(V.std() - 0.1) < 1e-3
    layer = tg.BatchNorm(3, be=be)
    x = be.randn(5, 3) * 1e-3 + 2.0  # variance ~1e-6, where eps shows
    y = be.to_host(layer.forward(x))
    xh = be.to_host(x)
    assert np.allclose(be.to_host(layer.running_mean), 0.1 * xh.mean(axis=0), rtol=1e-12)
    assert np.allclose(be.to_host(layer.running_var), 0.9 + 0.1 * xh.var(axis=0, ddof=1), rtol=1e-12)
    ref = (xh - xh.mean(axis=0)) / np.sqrt(xh.var(axis=0) + 1e-6)
    assert np.allclose(y, ref, rtol=1e-10)
    pair = tg.BatchNorm(3, be=be)  # a batch of two: the unbiased variance is twice the biased one
    x2 = be.randn(2, 3)
    pair.forward(x2)
    assert np.allclose(be.to_host(pair.running_var), 0.9 + 0.1 * be.to_host(x2).var(axis=0, ddof=1), rtol=1e-12)


def test_a_step_reuses_its_arrays_and_computes_no_gradient_it_does_not_use():
    """After a first step, steps allocate none of their arrays again; neither G's dL/dz nor D's dL/dimage on its
    own update is computed (D's input gradient is needed only for the B generated rows of G's update)."""
    be = tg.Backend("numpy", "float64", seed=0)
    gan = small(be, input_noise=0.3, hidden_noise=0.5)
    x_lab, y_lab, x_unl, x_unl2, _ = batches(be)
    gan.step(x_lab, y_lab, x_unl, x_unl2)
    kept = {name: id(a) for name, a in gan.buffers.items()}
    assert len(kept) == 3
    gan.step(x_lab, y_lab, x_unl, x_unl2)
    assert {name: id(a) for name, a in gan.buffers.items()} == kept, "a step allocated its arrays again"
    assert "dx" not in gan.G.layers[0].buffers, "G's update computed dL/dz"
    assert len(gan.D.layers[1].buffers["dx"]) == len(x_unl2), "D's update computed dL/dimage"


def test_weight_norm_dense_allocates_nothing_of_its_weights_or_batch_size_after_the_first_pass():
    """Its W, y, dW, dx and scratch arrays are kept and reused: a training step allocates no weight- or batch-sized
    array (only (out,) vectors, and numpy's 64 KB reduction scratch)."""
    import tracemalloc
    be = tg.Backend("numpy", "float64", seed=0)
    layer = tg.WeightNormDense(784, 300, be=be)
    x, dout = be.rand(256, 784), be.randn(256, 300)
    layer.forward(x)
    layer.backward(dout)
    tracemalloc.start()
    try:
        layer.forward(x)
        layer.backward(dout)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, f"a pass allocated {peak} B; V has {layer.V.nbytes} B, y {256 * 300 * 8} B"


def test_the_generator_output_starts_at_the_spread_of_a_glorot_layer_from_its_last_hidden_layer():
    be = tg.Backend("numpy", "float32", seed=0)
    gan = SSLGAN(make_ssl_config(d_hidden=[8], g_hidden=[50, 400], latent_dim=10), be)
    V = be.to_host(gan.G.layers[-2].V)
    assert V.shape == (400, 784) and abs(V.std() / (2 / (400 + 784)) ** 0.5 - 1) < 0.01


@pytest.mark.parametrize("setting", [dict(lr=float("nan")), dict(epochs=-5), dict(entropy_weight=-1),
                                     dict(batch_size=0), dict(decay_fraction=1.5), dict(pseudo_threshold=0)])
def test_settings_out_of_range_are_refused_by_name(setting):
    (key, value), = setting.items()
    with pytest.raises(ValueError, match=rf"make_ssl_config: {key} is "):
        make_ssl_config(**setting)
    config = make_ssl_config()
    config[key] = value                          # a config built by hand reaches SSLGAN: refused there too
    with pytest.raises(ValueError, match=rf"SSLGAN: {key} is "):
        SSLGAN(config, tg.Backend("numpy"))
