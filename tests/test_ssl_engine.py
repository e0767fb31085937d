"""The semi-supervised GAN's engine pieces: finite-difference proofs in float64 on every backend, and behaviour."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.gradcheck import check_loss, check_module
from tinygan.engine.losses import feature_matching, log_sum_exp, unlabelled_loss
from tinygan.models.ssl import SSLGAN, make_ssl_config

SEEDS = [0, 1, 2]


def shape(seed, n=3, low=2, high=9):
    """A random shape (fixed by seed) for a test case."""
    return tuple(int(v) for v in np.random.default_rng(seed).integers(low, high, n))


@pytest.mark.parametrize("seed", SEEDS)
def test_softplus(be64, seed):
    batch, n, _ = shape(seed)
    check_module(tg.Softplus(), be64.randn(batch, n) * 4)


def test_softplus_and_its_slope_are_exact_in_both_tails(be64):
    x = be64.asarray([[-800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0]])
    layer = tg.Softplus()
    y, slope = be64.to_host(layer.forward(x)), be64.to_host(layer.backward(be64.zeros(1, 7) + 1))
    ref = np.logaddexp(0, be64.to_host(x))
    assert np.allclose(y, ref, rtol=1e-15, atol=0) and np.isfinite(y).all()
    with np.errstate(over="ignore"):  # exp(1000) is inf, and 1 / (1 + inf) = 0 is the right reference
        sig = 1 / (1 + np.exp(-be64.to_host(x)))
    assert np.allclose(slope[:, 1:], sig[:, 1:], rtol=1e-12, atol=0), "sigmoid(-40) = 4e-18 must keep its digits"
    assert slope[0, 0] == 0.0 and slope[0, -1] == 1.0


@pytest.mark.parametrize("train_scale", [True, False], ids=["trained-scale", "fixed-scale"])
@pytest.mark.parametrize("seed", SEEDS)
def test_weight_norm_dense(be64, seed, train_scale):
    batch, n_in, n_out = shape(seed)
    # V's scale does not change the output; at std 1 the finite differences are far from V's curvature
    layer = tg.WeightNormDense(n_in, n_out, be=be64, train_scale=train_scale, v_std=1.0)
    layer.g[...] = be64.rand(n_out) + 0.5
    layer.b[...] = be64.randn(n_out)
    errors = check_module(layer, be64.randn(batch, n_in))
    assert set(errors) == ({"x", "V", "g", "b"} if train_scale else {"x", "V", "b"})


def test_weight_norm_weights_have_length_g(be64):
    layer = tg.WeightNormDense(6, 4, be=be64)
    layer.g[...] = be64.asarray([0.5, 1.0, 2.0, 3.0])
    W = be64.to_host(layer.weight(layer.V))
    assert np.allclose(np.sqrt((W ** 2).sum(axis=0)), [0.5, 1.0, 2.0, 3.0], rtol=1e-12)
    V = be64.to_host(layer.V)
    assert np.allclose(W / np.sqrt((W ** 2).sum(axis=0)), V / np.sqrt((V ** 2).sum(axis=0)), rtol=1e-12)


def test_data_dependent_init_standardises_each_layer(be64):
    model = tg.Sequential(tg.WeightNormDense(7, 5, be=be64, train_scale=False), tg.ReLU(),
                          tg.WeightNormDense(5, 3, be=be64), be=be64)
    x = be64.randn(400, 7) * 3 + 2
    tg.init_from_data(model, x)
    for upto in (1, 3):  # the output of each weight-normalised layer on the batch that initialised it
        h = be64.to_host(model.forward(x, upto=upto))
        assert np.allclose(h.mean(axis=0), 0, atol=1e-12) and np.allclose(h.std(axis=0), 1, rtol=1e-12)


@pytest.mark.parametrize("scale", [True, False], ids=["scale", "shift-only"])
@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_training(be64, seed, scale):
    batch, n, _ = shape(seed, low=3)
    layer = tg.BatchNorm(n, be=be64, scale=scale)
    layer.beta[...] = be64.randn(n)
    if scale:
        layer.gamma[...] = be64.randn(n)
    errors = check_module(layer, be64.randn(batch, n) * 2 + 1)
    assert set(errors) == ({"x", "gamma", "beta"} if scale else {"x", "beta"})


def test_batch_norm_evaluation_uses_running_statistics(be64):
    layer = tg.BatchNorm(4, be=be64)
    x = be64.randn(500, 4) * be64.asarray([1.0, 2.0, 3.0, 4.0]) + be64.asarray([-1.0, 0.0, 1.0, 2.0])
    y = be64.to_host(layer.forward(x))
    assert np.allclose(y.mean(axis=0), 0, atol=1e-12) and np.allclose(y.std(axis=0), 1, rtol=1e-5)
    for _ in range(200):  # momentum 0.1: the running statistics converge to the batch's
        layer.forward(x)
    xh = be64.to_host(x)
    assert np.allclose(be64.to_host(layer.running_mean), xh.mean(axis=0), rtol=1e-9)
    assert np.allclose(be64.to_host(layer.running_var), xh.var(axis=0, ddof=1), rtol=1e-9), "unbiased variance"
    layer.training = False
    one = be64.to_host(layer.forward(x[:1]))  # a batch of one: only running statistics can normalise it
    assert np.allclose(one, (xh[:1] - xh.mean(0)) / np.sqrt(xh.var(0, ddof=1) + layer.eps), rtol=1e-9)
    check_module(layer, be64.randn(3, 4))  # in evaluation the layer is affine in x


def test_gaussian_noise_trains_noisy_and_evaluates_clean(be64):
    layer = tg.GaussianNoise(0.5, be=be64)
    x = be64.zeros(4000, 50) + 2.0
    noise = be64.to_host(layer.forward(x)) - 2.0
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.5) < 0.01
    dout = be64.randn(4000, 50)
    assert layer.backward(dout) is dout, "added noise passes the gradient through unchanged"
    layer.training = False
    assert layer.forward(x) is x
    check_module(layer, be64.randn(3, 5))


def test_dense_without_bias(be64):
    layer = tg.Dense(4, 3, be=be64, bias=False)
    assert [n for n, _, _ in layer.named_parameters()] == ["W"]
    check_module(layer, be64.randn(5, 4))


@pytest.mark.parametrize("real", [True, False], ids=["real", "generated"])
@pytest.mark.parametrize("seed", SEEDS)
def test_unlabelled_loss(be64, seed, real):
    batch, k, _ = shape(seed)
    check_loss(lambda z: unlabelled_loss(z, real), be64.randn(batch, k) * 3)


def test_unlabelled_loss_is_the_recipe_and_stable(be64):
    z = be64.asarray([[-300.0, -290.0, -310.0], [0.1, -0.2, 0.3], [400.0, 390.0, 380.0]])
    lse = np.logaddexp.reduce(be64.to_host(z), axis=1)
    d = 1 / (1 + np.exp(-lse))  # D(x) = Z / (Z + 1)
    real, _ = unlabelled_loss(z, real=True)
    fake, _ = unlabelled_loss(z, real=False)
    assert np.allclose(be64.to_host(log_sum_exp(z)), lse, rtol=1e-15)
    # real rows: -LSE + softplus(LSE) = -log D(x); generated rows: softplus(LSE) = -log(1 - D(x))
    assert np.isclose(float(real), np.mean(-lse + np.logaddexp(0, lse)), rtol=1e-12)
    assert np.isclose(float(fake), np.mean(np.logaddexp(0, lse)), rtol=1e-12)
    assert np.isclose(float(real), -np.mean(np.log(d)), rtol=1e-12) and np.isfinite(float(fake))


@pytest.mark.parametrize("seed", SEEDS)
def test_feature_matching(be64, seed):
    batch, j, _ = shape(seed)
    target = be64.randn(j)
    check_loss(lambda f: feature_matching(f, target), be64.randn(batch, j))
    f = be64.randn(batch, j)
    loss, _ = feature_matching(f, target)
    assert np.isclose(float(loss), np.mean((be64.to_host(f).mean(axis=0) - be64.to_host(target)) ** 2), rtol=1e-12)


def tiny_ssl(be, noise=0.0):
    """A small semi-supervised GAN; with noise 0 its losses are deterministic functions of the parameters."""
    config = make_ssl_config(d_hidden=[7, 6], g_hidden=[5], latent_dim=3, input_noise=noise, hidden_noise=noise)
    return SSLGAN(config, be)


def batches(be, n=6, B=5):
    r = tg.Backend(be.name, be.dtype.name, seed=7)
    return r.rand(n, 784), r.randint(10, n), r.rand(B, 784), r.rand(B, 784), r.rand(B, 3)


def test_discriminator_gradient_of_the_whole_objective(be64):
    """Cross-entropy + unlabelled terms through D: every parameter's gradient by finite differences."""
    gan = tiny_ssl(be64)
    x_lab, y_lab, x_unl, _, z = batches(be64)
    gan.D.zero_grad()
    gan.d_backward(x_lab, y_lab, x_unl, z)
    grads = {n: g.copy() for n, _, g in gan.D.named_parameters()}
    tensors = {n: p for n, p, _ in gan.D.named_parameters()}
    tg.gradcheck(lambda: gan.d_backward(x_lab, y_lab, x_unl, z)["loss"], tensors, grads)


def test_generator_gradient_through_the_frozen_discriminator(be64):
    """Feature matching reaches G through D; D's own gradients are left exactly as they were."""
    gan = tiny_ssl(be64)
    _, _, _, x_unl2, z = batches(be64)
    gan.D.flat_grads[...] = be64.randn(gan.D.flat_grads.size)  # sentinels the G pass must not touch
    before = gan.D.flat_grads.copy()
    gan.G.zero_grad()
    gan.g_backward(x_unl2, z)
    assert bool((gan.D.flat_grads == before).all()), "the generator update changed D's gradients"
    grads = {n: g.copy() for n, _, g in gan.G.named_parameters()}
    tensors = {n: p for n, p, _ in gan.G.named_parameters()}
    tg.gradcheck(lambda: gan.g_backward(x_unl2, z), tensors, grads)


def test_steps_move_the_objectives_the_right_way():
    be = tg.Backend("numpy", "float64", seed=0)
    gan = tiny_ssl(be)
    x_lab, y_lab, x_unl, x_unl2, z = batches(be)
    before = gan.d_backward(x_lab, y_lab, x_unl, z)
    for _ in range(5):
        gan.D.zero_grad()
        gan.d_backward(x_lab, y_lab, x_unl, z)
        gan.opt_d.step()
    after = gan.d_backward(x_lab, y_lab, x_unl, z)
    assert float(after["loss"]) < float(before["loss"]) and float(after["loss_lab"]) < float(before["loss_lab"])
    g_before = float(gan.g_backward(x_unl2, z))
    for _ in range(5):
        gan.G.zero_grad()
        gan.g_backward(x_unl2, z)
        gan.opt_g.step()
    assert float(gan.g_backward(x_unl2, z)) < g_before


def test_average_of_d_and_classify():
    be = tg.Backend("numpy", "float32", seed=0)
    gan = tiny_ssl(be, noise=0.3)
    x_lab, y_lab, x_unl, x_unl2, _ = batches(be)
    live, ema = gan.D.flat_params.copy(), gan.ema.copy()
    gan.step(x_lab, y_lab, x_unl, x_unl2)
    d = min(gan.config["ema"], 1 / 10)  # the first step's ramped decay
    assert np.allclose(gan.ema, d * ema + (1 - d) * gan.D.flat_params, rtol=1e-6)
    assert not np.array_equal(gan.D.flat_params, live)
    gan.ema[...] = live  # classify must use the average, and leave the live weights in place
    trained = gan.D.flat_params.copy()
    digits = gan.classify(x_lab)
    gan.D.flat_params[...] = live
    gan.D.eval()
    assert np.array_equal(digits, gan.D.forward(x_lab).argmax(axis=1))
    gan.D.flat_params[...] = trained
    ref = gan.D.forward(x_lab).argmax(axis=1)
    gan.D.train()
    assert np.array_equal(gan.classify(x_lab, average=False), ref)
    assert np.array_equal(gan.D.flat_params, trained) and gan.D.layers[0].training, "classify restores D"


def test_feature_matching_reads_the_last_hidden_layer_after_its_relu(be64):
    """The recipe matches D's last hidden ReLU output (before its noise), not a pre-activation nor the logits."""
    gan = tiny_ssl(be64)
    D, k = gan.D, gan.features
    assert type(D.layers[k - 1]).__name__ == "ReLU" and type(D.layers[k]).__name__ == "GaussianNoise"
    assert [type(layer).__name__ for layer in D.layers[k:]] == ["GaussianNoise", "WeightNormDense"]
    f = D.forward(be64.rand(5, 784) - 0.5, upto=k)  # (5, 6): the last hidden width, rectified
    assert f.shape == (5, 6) and bool((f >= 0).all())


def test_g_lr_eps_inside_and_the_decay_reach_the_two_adams():
    be = tg.Backend("numpy", "float32", seed=0)
    config = make_ssl_config(d_hidden=[7, 6], g_hidden=[5], latent_dim=3, lr=0.01, g_lr=0.002, adam_eps_inside=True,
                             decay_fraction=0.5, epochs=2, steps_per_epoch=2)
    gan = SSLGAN(config, be)
    assert gan.opt_d.eps_inside and gan.opt_g.eps_inside
    x_lab, y_lab, x_unl, x_unl2, _ = batches(be)
    seen = []
    for _ in range(4):  # 4 steps, the last half decayed: factors 1, 1, 1, 0.5
        gan.step(x_lab, y_lab, x_unl, x_unl2)
        seen.append((gan.opt_d.lr, gan.opt_g.lr))
    assert np.allclose(seen, [(0.01, 0.002), (0.01, 0.002), (0.01, 0.002), (0.005, 0.001)])
    plain = SSLGAN(make_ssl_config(d_hidden=[7, 6], g_hidden=[5], latent_dim=3), be)
    assert plain.opt_g.lr == plain.opt_d.lr == 3e-3 and not plain.opt_d.eps_inside, "off by default"


def test_warmup_steps_train_d_on_the_labelled_rows_alone():
    be = tg.Backend("numpy", "float64", seed=0)
    config = make_ssl_config(d_hidden=[7, 6], g_hidden=[5], latent_dim=3, input_noise=0.0, hidden_noise=0.0,
                             warmup_epochs=1, steps_per_epoch=2, epochs=3)
    gan, twin = SSLGAN(config, be), SSLGAN(config, tg.Backend("numpy", "float64", seed=0))
    x_lab, y_lab, x_unl, x_unl2, _ = batches(be)
    g0 = gan.G.flat_params.copy()
    for _ in range(2):  # the warm-up epoch: D by cross-entropy on the labelled rows, the same step as a plain one
        stats = gan.step(x_lab, y_lab, x_unl, x_unl2)
        twin.D.zero_grad()
        loss, grad = tg.softmax_cross_entropy(twin.D.forward(x_lab), y_lab)
        twin.D.backward(grad, input_grad=False)
        twin.opt_d.step()
        assert float(stats["loss_unl"]) == float(stats["loss_gen"]) == 0.0 and np.isclose(float(stats["loss"]), float(loss))
    assert np.array_equal(gan.G.flat_params, g0) and gan.opt_g.t == 0, "G is not updated during the warm-up"
    assert np.allclose(gan.D.flat_params, twin.D.flat_params, rtol=1e-12)
    gan.step(x_lab, y_lab, x_unl, x_unl2)  # then the GAN starts
    assert not np.array_equal(gan.G.flat_params, g0) and gan.iteration == 3


def test_the_whole_objectives_with_the_regularizers_by_finite_differences(be64):
    """Entropy and balance of the unlabelled logits reach every D parameter, pull-away every G parameter."""
    config = make_ssl_config(d_hidden=[7, 6], g_hidden=[5], latent_dim=3, input_noise=0.0, hidden_noise=0.0,
                             entropy_weight=0.6, balance_weight=1.5, pull_away_weight=0.8)
    gan = SSLGAN(config, be64)
    x_lab, y_lab, x_unl, x_unl2, z = batches(be64)
    gan.D.zero_grad()
    stats = gan.d_backward(x_lab, y_lab, x_unl, z)
    assert {"loss_ent", "loss_bal"} <= set(stats) and "loss_con" not in stats
    grads = {n: g.copy() for n, _, g in gan.D.named_parameters()}
    tg.gradcheck(lambda: gan.d_backward(x_lab, y_lab, x_unl, z)["loss"], {n: p for n, p, _ in gan.D.named_parameters()}, grads)
    gan.G.zero_grad()
    gan.g_backward(x_unl2, z)
    grads = {n: g.copy() for n, _, g in gan.G.named_parameters()}
    tg.gradcheck(lambda: gan.g_backward(x_unl2, z), {n: p for n, p, _ in gan.G.named_parameters()}, grads)


def test_consistency_runs_one_bigger_pass_and_off_means_the_plain_pass():
    be = tg.Backend("numpy", "float32", seed=0)
    x_lab, y_lab, x_unl, _, z = batches(be)
    plain, cons = tiny_ssl(be, noise=0.3), SSLGAN(make_ssl_config(
        d_hidden=[7, 6], g_hidden=[5], latent_dim=3, consistency_weight=1.0), be)
    rows = []
    for gan in (plain, cons):
        forward = gan.D.forward
        gan.D.forward = lambda x, **kw: rows.append(len(x)) or forward(x, **kw)
        stats = gan.d_backward(x_lab, y_lab, x_unl, z)
    assert rows == [6 + 2 * 5, 6 + 3 * 5], "one D pass each: the unlabelled rows once more when consistency is on"
    assert float(stats["loss_con"]) > 0 and "loss_con" not in plain.d_backward(x_lab, y_lab, x_unl, z)
