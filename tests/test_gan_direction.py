"""Which way one GAN.step moves D and G, without any oracle: the objective's signs, on every backend."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from tinygan.models.gan import GAN, IMAGE, N_CLASSES, make_config

from conftest import make_backend

SMALL = {"seed": dict(g_hidden=[32], d_hidden=[32], latent_dim=16),
         "deep": dict(g_hidden=[32, 64], d_hidden=[64, 32], latent_dim=16)}
MODES = {
    "seed": ("seed", {}),
    "deep": ("deep", {}),
    "seed-onehot": ("seed", dict(conditional=True)),
    "deep-acgan": ("deep", dict(conditional=True)),
    "deep-smooth": ("deep", dict(smooth=0.9)),
}


BUNDLED = Path(__file__).resolve().parents[1] / "tinygan" / "data" / "mnist_data"


def digits(B):
    """The first B MNIST test digits (uint8 (B, 784)) and labels, read from the bundled IDX files."""
    with gzip.open(BUNDLED / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + B * IMAGE), np.uint8, offset=16).reshape(B, IMAGE)
    with gzip.open(BUNDLED / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + B), np.uint8, offset=8).astype(np.int64)
    return images, labels


def setup(name, backend, B=32, seed=0):
    """A float64 GAN of the mode's preset (narrow layers) and a fixed batch of real digits with labels."""
    preset, overrides = MODES[name]
    config = make_config(preset, **SMALL[preset], **overrides)
    be = make_backend(backend, "float64", seed)
    gan = GAN(config, be)
    u8, y = digits(B)
    real = be.asarray(u8 / 255 if config["data_range"] == "unit" else u8 / 127.5 - 1)
    labels = be.xp.asarray(y) if config["conditional"] else None
    return gan, real, labels


def d_logits(gan, x):
    """D's logits (N, 1 [+10]) for D's input rows x."""
    return gan.D.forward(x, upto=gan.logits)


def record_loss_gradients(gan):
    """A list that receives a copy of each adversarial-loss gradient gan.step computes (D update, then G update)."""
    seen, loss = [], gan.loss

    def recording(z, t, out=None):
        result = loss(z, t, out=out)
        seen.append(result[1].copy())
        return result
    gan.loss = recording
    return seen


@pytest.mark.parametrize("backend", ["numpy", "cupy"])
@pytest.mark.parametrize("name", MODES)
def test_d_step_separates_real_from_fake(name, backend):
    """The D update pushes each real row's D(x) towards 'real' and each fake row's down, and widens D(x) - D(G(z)).

    D(x) and D(G(z)) need not each move their own way after one Adam step: its first update is
    lr * sign(gradient) for every parameter, and D's shared weights (output layer, biases) take the sign
    of the real and fake parts' sum. In the seed design at initialisation G's images are uniformly grey
    while digits are mostly black, so the fake rows dominate and D(x) dips a little while D(G(z)) drops
    a lot (22 of 30 seeds). Their difference, D's objective, widens in every case.
    """
    gan, real, labels = setup(name, backend)
    B, seen = len(real), record_loss_gradients(gan)
    stats = gan.step(real, labels)
    d_grad = gan.be.to_host(seen[0])[:, 0]  # the D update's gradient at the adversarial logit: (2B,)
    d_real = gan.be.to_host(gan.d_out)[:B, 0]  # D(x) per real row, from the D update's forward
    assert (np.sign(d_grad[:B]) == np.sign(d_real - gan.config["smooth"])).all(), \
        "the D update must push every real row's D(x) towards the real target (1, or `smooth`)"
    assert (d_grad[B:] > 0).all(), "the D update must push every fake row's logit down (towards 'fake')"
    assert (gan.be.to_host(seen[1]) < 0).all(), "the G update must push every fake row's logit up"
    both = gan.buffers["both"][:2 * B]  # the D update's rows: real, then fake (the G update leaves them)
    p = gan.be.to_host(gan.prob(d_logits(gan, both)[:, :1]))[:, 0]
    assert p[:B].mean() - p[B:].mean() > float(stats["d_real"]) - float(stats["d_fake"]), \
        "the D update must widen the gap D(x) - D(G(z)) on its own batch"


@pytest.mark.parametrize("backend", ["numpy", "cupy"])
@pytest.mark.parametrize("name", MODES)
def test_g_step_raises_d_of_g_for_fixed_noise(name, backend):
    """After the G update, D (as updated) rates G's images from the same noise higher; AC-GAN: as the asked digit."""
    gan, real, labels = setup(name, backend)
    G_before = gan.G.flat_params.copy()
    gan.step(real, labels)
    z = gan.G.layers[0].x.copy()  # the G update's input: noise (and one-hot labels)

    def log_d_fake():
        fake = gan.G.forward(z)
        if gan.D.layers[0].n_in > IMAGE:  # D takes the label too: the same one-hot columns as G's input
            fake = gan.be.xp.concatenate([fake, z[:, -N_CLASSES:]], axis=1)
        out = d_logits(gan, fake)
        p = gan.prob(out[:, :1])
        return gan.be.to_host(out), float(gan.be.xp.log(p).mean()), float(p.mean())

    out_after, log_after, after = log_d_fake()
    gan.G.flat_params[...], live = G_before, gan.G.flat_params.copy()
    out_before, log_before, before = log_d_fake()
    gan.G.flat_params[...] = live
    assert log_after > log_before, "the G update must lower its loss, -mean log D(G(z)), for its own noise"
    assert after > before, "the G update must raise D(G(z)) for its own noise"
    if gan.aux:  # AC-GAN: the class head's probability of the requested digit rises too
        wanted = gan.be.to_host(z[:, -N_CLASSES:]).argmax(axis=1)

        def log_p_wanted(out):
            c = out[:, 1:] - out[:, 1:].max(axis=1, keepdims=True)
            return (c[np.arange(len(c)), wanted] - np.log(np.exp(c).sum(axis=1))).mean()
        assert log_p_wanted(out_after) > log_p_wanted(out_before), "the G update must make the requested digit likelier"
