"""Finite-difference proofs of every backward pass, on every available backend, in float64."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.gradcheck import check_loss, check_module

SEEDS = [0, 1, 2]
ACTIVATIONS = [tg.ReLU, lambda: tg.LeakyReLU(0.2), tg.Sigmoid, tg.Tanh]


def shape(seed, n=3, low=1, high=9):
    """A random shape (fixed by seed) for a test case."""
    return tuple(int(v) for v in np.random.default_rng(seed).integers(low, high, n))


@pytest.mark.parametrize("seed", SEEDS)
def test_dense(be64, seed):
    batch, n_in, n_out = shape(seed)
    errors = check_module(tg.Dense(n_in, n_out, be=be64), be64.randn(batch, n_in))
    assert set(errors) == {"x", "W", "b"}


@pytest.mark.parametrize("make", ACTIVATIONS, ids=["relu", "leaky", "sigmoid", "tanh"])
@pytest.mark.parametrize("seed", SEEDS)
def test_activation(be64, make, seed):
    batch, n, _ = shape(seed)
    check_module(make(), be64.randn(batch, n) * 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_sequential_every_parameter(be64, seed):
    batch, n_in, hidden = shape(seed)
    model = tg.Sequential(tg.Dense(n_in, hidden, be=be64), tg.LeakyReLU(0.2), tg.Dense(hidden, hidden, be=be64),
                          tg.Tanh(), tg.Dense(hidden, 1, be=be64), tg.Sigmoid())
    errors = check_module(model, be64.randn(batch, n_in))
    assert set(errors) == {"x", "0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}


@pytest.mark.parametrize("seed", SEEDS)
def test_bce_on_probabilities(be64, seed):
    batch, n, _ = shape(seed)
    p = 0.05 + 0.9 * be64.rand(batch, n)  # away from the clip, where the loss is smooth
    check_loss(tg.bce, p, be64.rand(batch, n))


def test_bce_clip_passes_no_gradient(be64):
    p = be64.asarray([[0.0], [1.0], [1e-9], [1e-7], [1 - 1e-7]])  # beyond and exactly at the clip
    loss, grad = tg.bce(p, be64.asarray([[1.0], [0.0], [1.0], [1.0], [0.0]]))
    assert np.isfinite(float(loss)) and float(abs(grad).max()) == 0.0
    _, grad = tg.bce(be64.asarray([[1.0001e-7], [1 - 1.0001e-7]]), be64.asarray([[1.0], [0.0]]))
    assert (abs(be64.to_host(grad)) > 1e5).all(), "just inside the clip the gradient is -1/p and 1/(1-p), halved"


def test_losses_write_their_gradient_where_told(be64):
    z, t, labels = be64.randn(6, 1), be64.rand(6, 1), be64.randint(4, 6)
    out = be64.zeros(6, 1)
    assert tg.bce_with_logits(z, t, out=out)[1] is out
    np.testing.assert_array_equal(be64.to_host(out), be64.to_host(tg.bce_with_logits(z, t)[1]))
    logits = be64.randn(6, 4)
    out = be64.zeros(6, 4)
    assert tg.softmax_cross_entropy(logits, labels, out=out)[1] is out
    np.testing.assert_array_equal(be64.to_host(out), be64.to_host(tg.softmax_cross_entropy(logits, labels)[1]))
    same = logits.copy()  # in place: the logits' own array may take the gradient
    loss, grad = tg.softmax_cross_entropy(same, labels, out=same)
    assert grad is same and float(loss) == float(tg.softmax_cross_entropy(logits, labels)[0])


def test_softmax_cross_entropy_rows_of_any_scale(be64):
    # each row is shifted by its own max: a row far below another must not underflow to log(0)
    z = be64.asarray([[0.0, 1.0, -1.0], [2000.0, 2001.0, 1999.0], [-3000.0, -2999.0, -3001.0]])
    loss, grad = tg.softmax_cross_entropy(z, be64.xp.asarray([1, 0, 2]))
    p = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()  # every row is this softmax
    assert float(loss) == pytest.approx(-(np.log(p[1]) + np.log(p[0]) + np.log(p[2])) / 3, rel=1e-12)
    want = (np.tile(p, (3, 1)) - np.eye(3)[[1, 0, 2]]) / 3
    np.testing.assert_allclose(be64.to_host(grad), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_bce_near_its_clip(be64, seed):
    """Within a few eps of the clip the loss is steep but smooth; inside the clip it is flat (gradient 0)."""
    batch, n, _ = shape(seed)
    u = be64.rand(batch, n)
    near = be64.xp.where(u < 0.5, 1.5e-7 + 1e-6 * u, 1 - 1.5e-7 - 1e-6 * (u - 0.5))  # (eps, 1 - eps), close to both ends
    t = be64.rand(batch, n)
    check_loss(tg.bce, near, t, eps=1e-11)  # a step well inside the distance to the clip
    clipped = be64.xp.where(u < 0.5, 9e-8 * u, 1 - 9e-8 * (u - 0.5))  # [0, eps) and (1 - eps, 1]
    errors = check_loss(tg.bce, clipped, t, eps=1e-11)
    assert errors["x"] == 0.0 and float(abs(tg.bce(clipped, t)[1]).max()) == 0.0


class FixedUniform:
    """Stands in for a backend inside Dropout: every rand(out=...) writes the same uniforms, so the mask is fixed."""

    def __init__(self, u):
        self.u = u

    def rand(self, *shape, out=None):
        out[...] = self.u
        return out


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_with_a_fixed_mask(be64, seed):
    batch, n, _ = shape(seed)
    drop = tg.Dropout(0.4, be=be64)
    drop.be = FixedUniform(be64.rand(batch, n))
    check_module(drop, be64.randn(batch, n))
    mask = be64.to_host(drop.mask)
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6} and (mask == 0).any() and (mask > 0).any()


def test_sigmoid_is_exact_in_both_tails(be64):
    from tinygan.engine.losses import sigmoid
    xs = np.array([[-700.0, -40.0, -17.0, -1.0, 0.0, 1.0, 17.0, 40.0, 700.0]])
    x, want = be64.asarray(xs), 1 / (1 + np.exp(-xs))  # 1 / (1 + exp(-x)) is exact in float64 for |x| <= 700
    layer = tg.Sigmoid()
    for got in (layer.forward(x), sigmoid(x)):
        np.testing.assert_allclose(be64.to_host(got), want, rtol=1e-13, atol=0)
    # dy/dx = s (1 - s) = q (1 - q) with q = sigmoid(-|x|): exact also where s rounds to 1
    q = 1 / (1 + np.exp(np.abs(be64.to_host(x))))
    d = be64.to_host(layer.backward(be64.zeros(1, 9) + 1))
    np.testing.assert_allclose(d, q * (1 - q), rtol=1e-13, atol=0)
    assert d[0, 7] > 0 and d[0, 8] > 0, "s rounds to 1 at x = 40 and 700, its derivative does not"


def test_sigmoid_float32_left_tail():
    be = tg.Backend("numpy", "float32")
    x = be.asarray([[-16.0, -17.0, -30.0, -80.0]])
    want = 1 / (1 + np.exp(-np.array([[-16.0, -17.0, -30.0, -80.0]])))
    np.testing.assert_allclose(tg.Sigmoid().forward(x), want, rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_bce_with_logits(be64, seed):
    batch, n, _ = shape(seed)
    check_loss(tg.bce_with_logits, be64.randn(batch, n) * 4, be64.rand(batch, n))


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_cross_entropy(be64, seed):
    batch, classes, _ = shape(seed, low=2)
    labels = be64.randint(classes, batch)
    check_loss(tg.softmax_cross_entropy, be64.randn(batch, classes) * 3, labels)


def generator_and_discriminator(be, z_dim, hidden, x_dim):
    G = tg.Sequential(tg.Dense(z_dim, hidden, be=be), tg.ReLU(), tg.Dense(hidden, x_dim, be=be), tg.Sigmoid())
    D = tg.Sequential(tg.Dense(x_dim, hidden, be=be), tg.LeakyReLU(0.2), tg.Dense(hidden, 1, be=be))
    return G, D


@pytest.mark.parametrize("seed", SEEDS)
def test_generator_through_frozen_discriminator(be64, seed):
    """G -> D -> BCE: G's gradients are right and D's gradients are left exactly as they were."""
    batch, hidden, x_dim = shape(seed, low=2)
    G, D = generator_and_discriminator(be64, 5, hidden, x_dim)
    z, ones = be64.randn(batch, 5), be64.zeros(batch, 1) + 1
    D.flat_grads[...] = be64.randn(D.flat_grads.size)  # sentinel values the pass must not touch
    before = D.flat_grads.copy()

    G.zero_grad()
    loss, dlogits = tg.bce_with_logits(D.forward(G.forward(z)), ones)
    G.backward(D.backward(dlogits, param_grads=False))

    assert bool((D.flat_grads == before).all()), "the generator step changed D's parameter gradients"
    grads = {n: g.copy() for n, _, g in G.named_parameters()}
    tensors = {n: p for n, p, _ in G.named_parameters()}
    errors = tg.gradcheck(lambda: tg.bce_with_logits(D.forward(G.forward(z)), ones)[0], tensors, grads)
    assert set(errors) == set(tensors)


class WrongTanh(tg.Tanh):
    """Tanh with a plausible-looking but wrong backward: 1 - tanh instead of 1 - tanh^2."""

    def backward(self, dout, param_grads=True):
        return dout * (1 - self.out)


def test_wrong_backward_is_caught(be64):
    with pytest.raises(tg.GradcheckError, match=r"gradient mismatch in x\[\d+, \d+\]: analytic"):
        check_module(WrongTanh(), be64.randn(4, 3))


def test_wrong_parameter_gradient_is_caught(be64):
    class HalfBias(tg.Dense):
        def backward(self, dout, param_grads=True):
            dx = super().backward(dout, param_grads)
            self.db *= 0.5
            return dx

    with pytest.raises(tg.GradcheckError, match=r"in b\[\d+\]"):
        check_module(HalfBias(3, 2, be=be64), be64.randn(4, 3))


@pytest.mark.parametrize("aux", [0.0, 0.7], ids=["concat", "acgan"])
def test_conditional_gan_losses(be64, aux):
    """The conditional D loss (one-hot input, or AC-GAN class logits) has the gradient it claims."""
    from tinygan.models.gan import GAN, make_config
    gan = GAN(make_config("deep", conditional=True, aux=aux, g_hidden=[6], d_hidden=[5], latent_dim=3), be64)
    out = be64.randn(7, gan.D.layers[-1].n_out) * 2
    labels, target = be64.randint(10, 7), be64.rand(7, 1)
    check_loss(lambda o: gan.d_loss(o, target, labels), out)
