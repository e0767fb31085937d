"""GAN.step against a PyTorch twin in float64: same weights, batches, noise, labels and dropout masks.

The twin is written from the objective, not from gan.py: one D update on real and fake rows (real
labelled `smooth`, fake 0; AC-GAN adds aux x the class cross-entropy), then one non-saturating G update
through D, then the EMA of G's weights. Every random number tinygan draws is recorded by the backend and
replayed, in the same order, by the twin.
"""
import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.backend import BackendError
from tinygan.models.gan import GAN, IMAGE, N_CLASSES, make_config

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the GAN oracle needs `pip install torch`")
import torch._dynamo  # noqa: E402,F401  (the first optimizer step imports it, ~4 s: done here, forked test runs share it)
F = torch.nn.functional
RTOL = 1e-9  # float64 on both sides; several Adam steps in


class RecordingBackend(tg.Backend):
    """A float64 backend that keeps a host copy of every random draw once `tape` is a list."""

    def __init__(self, name, seed=0):
        super().__init__(name, "float64", seed)
        self.tape = None

    def keep(self, kind, a):
        if self.tape is not None:
            self.tape.append((kind, self.to_host(a).copy()))
        return a

    def randn(self, *shape, out=None):
        return self.keep("randn", super().randn(*shape, out=out))

    def rand(self, *shape, out=None):
        return self.keep("rand", super().rand(*shape, out=out))

    def randint(self, high, size):
        return self.keep("randint", super().randint(high, size))


class Replay:
    """The twin's random numbers: the recorded draws, handed out in order, each checked for kind and shape."""

    def __init__(self, tape):
        self.tape, self.i = tape, 0

    def __call__(self, kind, shape):
        assert self.i < len(self.tape), f"the twin wants a {kind} draw {shape}, but tinygan drew no more"
        got, a = self.tape[self.i]
        assert (got, a.shape) == (kind, tuple(shape)), f"draw {self.i}: twin wants {kind} {shape}, tinygan drew {got} {a.shape}"
        self.i += 1
        return torch.from_numpy(a)


class ReplayDropout(torch.nn.Module):
    """Dropout whose mask comes from the replayed uniforms: keep where u >= p, scaled by 1 / (1 - p)."""

    def __init__(self, p, draw):
        super().__init__()
        self.p, self.draw = p, draw

    def forward(self, x):
        u = self.draw("rand", x.shape)
        return x * (u >= self.p).double() / (1 - self.p)


def twin_model(model, draw):
    """A torch float64 copy of a tinygan Sequential, with the same weights."""
    mods = []
    for layer in model.layers:
        if isinstance(layer, tg.Dense):
            lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(model.be.to_host(layer.W).T.copy()))
                lin.bias.copy_(torch.from_numpy(model.be.to_host(layer.b).copy()))
            mods.append(lin)
        elif isinstance(layer, tg.Dropout):
            mods.append(ReplayDropout(layer.p, draw))
        elif isinstance(layer, tg.LeakyReLU):
            mods.append(torch.nn.LeakyReLU(layer.slope))
        else:
            mods.append({tg.ReLU: torch.nn.ReLU, tg.Sigmoid: torch.nn.Sigmoid, tg.Tanh: torch.nn.Tanh}[type(layer)]())
    return torch.nn.Sequential(*mods)


def flat(tensors):
    """Torch Linear tensors in tinygan's flat order and layout: per layer W as (in, out), then b."""
    return np.concatenate([t.detach().numpy().T.ravel() if t.ndim == 2 else t.detach().numpy() for t in tensors])


class TwinGAN:
    """The GAN step in PyTorch, from the objective."""

    def __init__(self, gan, draw):
        c, self.draw = gan.config, draw
        self.c, self.cond, self.aux = c, c["conditional"], gan.aux
        self.G, self.D = twin_model(gan.G, draw), twin_model(gan.D, draw)
        adam = dict(lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=1e-8)
        self.opt_g, self.opt_d = torch.optim.Adam(self.G.parameters(), **adam), torch.optim.Adam(self.D.parameters(), **adam)
        self.ema = [p.detach().clone() for p in self.G.parameters()] if c["ema"] else None
        self.iteration = 0

    def onehot(self, y):
        return F.one_hot(y, N_CLASSES).double()

    def g_input(self, B, y):
        z = self.draw("randn", (B, self.c["latent_dim"]))
        return torch.cat([z, self.onehot(y)], 1) if self.cond else z

    def d_input(self, x, y):
        return torch.cat([x, self.onehot(y)], 1) if self.cond and not self.aux else x

    def losses(self, out, target, y):
        """(adversarial + aux x class loss, D's probability of 'real' per row)."""
        if self.c["d_logits"]:
            p = torch.sigmoid(out[:, :1])
            loss = F.binary_cross_entropy_with_logits(out[:, :1], target)
        else:  # D ends in a sigmoid: the original design's BCE on probabilities
            p = out[:, :1]
            loss = F.binary_cross_entropy(p, target)
        if self.aux:
            loss = loss + self.aux * F.cross_entropy(out[:, 1:], y)
        return loss, p

    def step(self, real, y):
        B = len(real)
        fake_y = self.draw("randint", (B,)) if self.cond else None
        with torch.no_grad():
            fake = self.G(self.g_input(B, fake_y))
        out = self.D(torch.cat([self.d_input(real, y), self.d_input(fake, fake_y)]))
        target = torch.cat([torch.full((B, 1), self.c["smooth"], dtype=torch.float64), torch.zeros(B, 1, dtype=torch.float64)])
        both_y = torch.cat([y, fake_y]) if self.cond else None
        d_loss, p = self.losses(out, target, both_y)
        self.opt_d.zero_grad()
        d_loss.backward()
        self.d_grads = flat([q.grad for q in self.D.parameters()])  # the G update below adds to D's .grad
        self.opt_d.step()

        z_y = self.draw("randint", (B,)) if self.cond else None
        out = self.D(self.d_input(self.G(self.g_input(B, z_y)), z_y))
        g_loss, _ = self.losses(out, torch.ones(B, 1, dtype=torch.float64), z_y)
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()

        self.iteration += 1
        if self.ema is not None:
            d = min(self.c["ema"], (1 + self.iteration) / (10 + self.iteration))
            with torch.no_grad():
                for e, w in zip(self.ema, self.G.parameters()):
                    e.copy_(d * e + (1 - d) * w)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_real": p[:B].mean().item(),
                "d_fake": p[B:].mean().item()}


def close(ours, ref, what):
    ref = np.asarray(ref)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=RTOL * max(np.abs(ref).max(), 1e-300), err_msg=what)


def batches(config, steps, B, seed=0):
    """Sparse random digit-like images in the preset's range, with labels: [(x (B, 784), y (B,))]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        u8 = rng.integers(0, 256, (B, IMAGE)) * (rng.random((B, IMAGE)) < 0.2)
        x = u8 / 255 if config["data_range"] == "unit" else u8 / 127.5 - 1
        out.append((x, rng.integers(0, N_CLASSES, B)))
    return out


# Each preset's design (activations, output layers, loss, data range, optimiser, EMA, aux) in every mode.
# Two run at full size; the rest with narrow hidden layers, so the whole oracle takes seconds.
SMALL = {"seed": dict(g_hidden=[16], d_hidden=[16], latent_dim=8),
         "deep": dict(g_hidden=[16, 32], d_hidden=[32, 16], latent_dim=8)}
MODES = {
    "seed": ("seed", {}),                                    # full size (marked slow below)
    "deep-acgan": ("deep", dict(conditional=True)),          # full size: the real AC-GAN configuration, EMA 0.999
    "deep": ("deep", SMALL["deep"]),
    "seed-onehot": ("seed", dict(conditional=True, **SMALL["seed"])),
    "deep-onehot": ("deep", dict(conditional=True, aux=0.0, **SMALL["deep"])),
    "seed-smooth-ema": ("seed", dict(smooth=0.9, ema=0.9, **SMALL["seed"])),
    "deep-acgan-smooth": ("deep", dict(conditional=True, smooth=0.9, aux=0.7, **SMALL["deep"])),
    "seed-dropout": ("seed", dict(d_dropout=0.3, **SMALL["seed"])),
    "deep-onehot-dropout": ("deep", dict(conditional=True, aux=0.0, d_dropout=0.4, **SMALL["deep"])),
}


FULL_SIZE = {"seed", "deep-acgan"}


@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.slow) if m in FULL_SIZE else m for m in MODES])
@pytest.mark.parametrize("backend", ["numpy", "cupy"])
def test_gan_step_matches_pytorch(name, backend, steps=3, B=16):
    preset, overrides = MODES[name]
    config = make_config(preset, **overrides)
    try:
        be = RecordingBackend(backend, seed=1)
    except BackendError as e:
        pytest.skip(str(e))
    gan = GAN(config, be)
    be.tape = []  # record from here: the weights are copied, not replayed
    twin = TwinGAN(gan, Replay(be.tape))
    for i, (x, y) in enumerate(batches(config, steps, B)):
        ours = gan.step(be.asarray(x), be.xp.asarray(y) if config["conditional"] else None)
        theirs = twin.step(torch.from_numpy(x), torch.from_numpy(y))
        for k in ("d_loss", "g_loss", "d_real", "d_fake"):
            close(float(ours[k]), theirs[k], f"{name}: {k} at step {i + 1}")
        # D's gradients stay those of its own update (G's update goes through a frozen D); G's are G's
        close(be.to_host(gan.D.flat_grads), twin.d_grads, f"{name}: D's gradient at step {i + 1}")
        close(be.to_host(gan.G.flat_grads), flat([q.grad for q in twin.G.parameters()]), f"{name}: G's gradient at step {i + 1}")
    assert twin.draw.i == len(be.tape), "tinygan drew random numbers the twin did not use"

    for model, tmodel, opt, topt, who in ((gan.G, twin.G, gan.opt_g, twin.opt_g, "G"),
                                          (gan.D, twin.D, gan.opt_d, twin.opt_d, "D")):
        params = list(tmodel.parameters())
        close(be.to_host(model.flat_params), flat(params), f"{name}: {who}'s parameters after {steps} steps")
        close(be.to_host(opt.m[0]), flat([topt.state[p]["exp_avg"] for p in params]), f"{name}: {who}'s Adam m")
        close(be.to_host(opt.v[0]), flat([topt.state[p]["exp_avg_sq"] for p in params]), f"{name}: {who}'s Adam v")
        assert opt.t == steps == int(topt.state[params[0]]["step"])
    if config["ema"]:
        close(be.to_host(gan.ema), flat(twin.ema), f"{name}: the EMA of G's weights")
    else:
        assert gan.ema is None and twin.ema is None
