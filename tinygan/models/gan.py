"""A GAN: generator, discriminator, their Adams, and one training step."""
from ..engine.backend import reuse, xp_of
from ..data.dataset import Dataset  # noqa: F401  (it lived here; tinygan.models.gan.Dataset keeps working)
from ..engine.layers import Dense, Dropout, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh
from ..engine.losses import bce_with_logits, sigmoid, softmax_cross_entropy
from ..engine.optim import Adam

from ..run.limits import MAX_BATCH, MAX_SAMPLES
from .fields import GAN_FIELDS, IMAGE, N_CLASSES, config_problem  # noqa: F401  (IMAGE, N_CLASSES: MNIST's, the
# default: a config's "image" and "classes", set from the data, override them)


def check_labels(labels, n, conditional, xp, n_classes=N_CLASSES):
    """labels as n class numbers 0..n_classes-1, an array of xp (the backend's), or a ValueError naming the argument."""
    if not conditional:
        raise ValueError("sample: argument labels is for a conditional GAN; this one is unconditional (labels=None)")
    y = xp.asarray(labels)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"sample: argument labels must be {n} integer digits, got shape {y.shape} of {y.dtype}")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        kind = "digits" if n_classes == N_CLASSES else "classes"
        raise ValueError(f"sample: argument labels must be {kind} 0-{n_classes - 1}, "
                         f"got {int(y.min())}..{int(y.max())}")
    return y


PRESETS = {
    # The original design: Keras MLP GAN on [0, 1] data, sigmoid outputs and clipped BCE.
    "seed": dict(g_hidden=[128], d_hidden=[128], act="relu", g_out="sigmoid", d_logits=False,
                 data_range="unit", lr=2e-4, beta1=0.5, beta2=0.999, batch_size=64, iterations=10000,
                 latent_dim=100, d_dropout=0.0, smooth=1.0, ema=0.0),
    # The stronger MLP of the popular reference implementations, on [-1, 1] data.
    "deep": dict(g_hidden=[128, 256, 512, 1024], d_hidden=[512, 256], act="leaky", g_out="tanh", d_logits=True,
                 data_range="signed", lr=2e-4, beta1=0.5, beta2=0.999, batch_size=64, iterations=10000,
                 latent_dim=100, d_dropout=0.0, smooth=1.0, ema=0.0),
}
# aux: weight of the AC-GAN class loss (conditional only). The deep preset uses it, and an EMA of G's
# weights for samples (measured in README, Results).
PRESETS["seed"].update(aux=0.0)
PRESETS["deep"].update(aux=0.3, ema=0.999, iterations=20000)  # about 8 minutes on 2 cores


def make_config(preset="seed", **overrides):
    """A preset's settings with overrides applied (None means keep the preset's value)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    config = dict(PRESETS[preset], preset=preset, conditional=False, seed=0)
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(f"unknown settings {unknown}: choose from {sorted(config)}")
    config.update({k: v for k, v in overrides.items() if v is not None})
    problem = config_problem(config, GAN_FIELDS)
    if problem:
        key, text = problem
        raise ValueError(f"make_config: {key or 'the model'} {text}" if key is None else
                         f"make_config: argument {key} {text}")
    return config


def mlp(sizes, act, out, be, dropout=0.0):
    """Dense layers of the given sizes with an activation (and dropout) between, then `out`."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(a, b, be=be))
        if i < len(sizes) - 2:
            layers.append(ReLU() if act == "relu" else LeakyReLU(0.2))
            if dropout:
                layers.append(Dropout(dropout, be=be))
    if out:
        layers.append({"sigmoid": Sigmoid, "tanh": Tanh}[out]())
    return Sequential(*layers, be=be)


class GAN:
    """Owns G, D and their Adams; step() trains both on one real batch."""
    ema_key = "G_ema"  # the checkpoint entry of the averaged weights (of G here)

    def __init__(self, config, be):
        present = {k: v for k, v in GAN_FIELDS.items() if k in config} if isinstance(config, dict) else {}
        problem = config_problem(config, present) if isinstance(config, dict) else (None, "is not a dictionary")
        if problem:
            key, text = problem
            raise ValueError(f"GAN: config {text}" if key is None else f"GAN: config[{key!r}] {text}")
        self.config, self.be, self.iteration = config, be, 0
        self.counter = None  # the iteration as a device array, once use_device_counters() is called
        h, w = config.get("image", (28, 28))
        self.pixels, self.n_classes = h * w, len(config.get("classes", range(N_CLASSES)))
        c, extra = config, self.n_classes if config["conditional"] else 0
        # Conditional: G always sees the one-hot label. D either sees it too (aux = 0), or, as in
        # AC-GAN (aux > 0), sees only the image and predicts its class from 10 extra logits.
        self.aux = c.get("aux", 0.0) if c["conditional"] else 0.0
        if self.aux and not c["d_logits"]:
            raise ValueError("aux > 0 (AC-GAN) needs a discriminator that outputs logits (the deep preset)")
        d_extra, d_out = (0, 1 + self.n_classes) if self.aux else (extra, 1)
        self.G = mlp([c["latent_dim"] + extra, *c["g_hidden"], self.pixels], c["act"], c["g_out"], be)
        self.D = mlp([self.pixels + d_extra, *c["d_hidden"], d_out], c["act"], None if c["d_logits"] else "sigmoid", be,
                     c["d_dropout"])
        adam = dict(lr=c["lr"], betas=(c["beta1"], c["beta2"]))
        # One fused Adam update per model, over its flat parameter and gradient buffers.
        self.opt_g = Adam([(self.G.flat_params, self.G.flat_grads)], **adam)
        self.opt_d = Adam([(self.D.flat_params, self.D.flat_grads)], **adam)
        self.ema = self.G.flat_params.copy() if c["ema"] else None  # averaged G weights for sampling
        # D's loss is BCE(sigmoid(logit), target) in both presets. The seed preset's D ends in a Sigmoid layer;
        # the loss is computed from the logit below it: the same maths as BCE on D's probability, but exact
        # without a clip, so G's gradient does not vanish where D(G(z)) is tiny.
        self.loss = bce_with_logits
        self.logits = None if c["d_logits"] else -1  # D's layers up to its logits: all, or all but the Sigmoid
        self.eye = be.xp.eye(self.n_classes, dtype=be.dtype)  # one-hot rows for labels
        self.buffers = {}  # step()'s reused arrays: noise, D's concatenated input, targets

    def buffer(self, name, rows, cols):
        """step()'s reusable (rows, cols) float array `name`."""
        return reuse(self.buffers, name, self.G.flat_params, (rows, cols))

    def with_labels(self, x, labels):
        """x, with the one-hot label appended in conditional mode."""
        if not self.config["conditional"]:
            return x
        return self.put(self.be.xp.empty((len(x), x.shape[1] + self.n_classes), x.dtype), x, labels)  # (B, n + 10)

    def d_input(self, x, labels):
        """What D sees: the image, plus the one-hot label unless D predicts the label itself."""
        return x if self.aux else self.with_labels(x, labels)

    def noise(self, B, labels):
        """G's input in a reused buffer: (B, latent) standard normal noise, then the one-hot labels if conditional."""
        z = self.be.randn(out=self.buffer("z", B, self.config["latent_dim"]))
        if labels is None:
            return z
        return self.put(self.buffer("z_labels", B, z.shape[1] + self.n_classes), z, labels)

    def put(self, dst, x, labels):
        """Write x into dst's first columns and the one-hot labels into the rest, if dst has room for them."""
        n = x.shape[1]
        dst[:, :n] = x
        if dst.shape[1] > n:
            dst[:, n:] = self.eye[labels]
        return dst

    def d_loss(self, out, target, labels):
        """D's adversarial loss on logit column 0, plus aux x class loss on columns 1-10 (AC-GAN); grad: (N, 1 [+10])."""
        grad = self.buffer("d_grad", *out.shape)  # the gradients are written into one reused (N, 1 [+10]) array
        loss, _ = self.loss(out[:, :1], target, out=grad[:, :1])
        if not self.aux:
            return loss, grad
        # The class head works in a contiguous copy: numpy would buffer every operation on the strided view.
        logits = self.buffer("class_logits", len(out), self.n_classes)
        logits[...] = out[:, 1:]
        class_loss, class_grad = softmax_cross_entropy(logits, labels, out=logits)
        class_grad *= self.aux
        grad[:, 1:] = class_grad
        return loss + self.aux * class_loss, grad

    def prob(self, logits):
        """D's probability that a row is real, sigmoid(logit), from D's logit column."""
        return sigmoid(logits)

    def step(self, real, labels=None):
        """One D update on real and fake, then one G update through a frozen D; returns 0-d arrays."""
        be, B = self.be, real.shape[0]  # real: (B, 784) in the preset's data range
        if self.config["conditional"] and labels is None:
            raise ValueError("a conditional GAN's step needs the real batch's labels")
        if not self.config["conditional"]:
            labels = None  # an unconditional GAN ignores labels it is given
        d_cols = self.D.layers[0].n_in  # 784, or 794 when D also sees the one-hot label

        # Discriminator: real labelled `smooth` (1, or 0.9 for one-sided smoothing), fake labelled 0.
        # Both go through D as one concatenated batch: mean BCE over 2B = (loss_real + loss_fake) / 2.
        fake_labels = be.randint(self.n_classes, B) if labels is not None else None
        fake = self.G.forward(self.noise(B, fake_labels))
        both = self.buffer("both", 2 * B, d_cols)               # (2B, 784 [+10]): real rows, then fake rows
        self.put(both[:B], real, labels)
        self.put(both[B:], fake, fake_labels)
        target = self.buffer("target", 2 * B, 1)
        target[:B], target[B:] = self.config["smooth"], 0
        both_labels = be.xp.concatenate([labels, fake_labels]) if labels is not None else None
        self.D.zero_grad()
        out = self.D.forward(both, upto=self.logits)            # (2B, 1 [+10 class logits])
        d_loss, grad = self.d_loss(out, target, both_labels)
        self.D.backward(grad, input_grad=False, upto=self.logits)
        self.opt_d.step()
        p = self.d_out = self.buffer("d_out", 2 * B, 1)        # (2B, 1): D(x) rows, then D(G(z)) rows
        p[...] = self.prob(out[:, :1])                          # a copy: the G update reuses D's buffers
        d_real, d_fake = p[:B].mean(), p[B:].mean()

        # Generator, non-saturating: minimise BCE(D(G(z)), 1) = -log D(G(z)). D is frozen: its
        # backward returns the input gradient and leaves D's parameter gradients alone.
        z_labels = be.randint(self.n_classes, B) if labels is not None else None
        self.G.zero_grad()
        fake = self.G.forward(self.noise(B, z_labels))
        if d_cols > self.pixels:                                      # D takes the one-hot label too
            fake = self.put(self.buffer("d_in", B, d_cols), fake, z_labels)
        out = self.D.forward(fake, upto=self.logits)
        ones = self.buffer("ones", B, 1)
        ones[...] = 1
        g_loss, grad = self.d_loss(out, ones, z_labels)         # AC-GAN: also "look like digit y"
        dx = self.D.backward(grad, param_grads=False, upto=self.logits)  # (B, 784 [+10])
        self.G.backward(dx[:, :self.pixels], input_grad=False)        # the label columns are inputs, not G's
        self.opt_g.step()

        self.iteration += 1
        if self.ema is not None:  # ema = d ema + (1 - d) params; d ramps up so the start is forgotten
            d = min(self.config["ema"], (1 + self.iteration) / (10 + self.iteration))
            if self.counter is not None:
                d = self.device_decay()  # the same number, from the device's count
            self.ema -= self.G.flat_params  # written as d (ema - params) + params: three passes, no temporary
            self.ema *= d
            self.ema += self.G.flat_params
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}

    def use_device_counters(self):
        """Keep the step counts on the device (both Adams, the EMA): no per-step number comes from the host.

        Call it after loading a checkpoint; a captured CUDA graph needs it, and on numpy the results are the same."""
        self.opt_d.use_device_counter()
        self.opt_g.use_device_counter()
        xp = self.be.xp
        self.counter = xp.full((3,), self.iteration, dtype=xp.float64)  # iteration, then two scratch slots
        self.decay = xp.empty((1,), dtype=self.be.dtype)

    def device_decay(self):
        """min(ema, (1 + t) / (10 + t)) after advancing the device's iteration t; a 1-element array."""
        xp, t, w = self.be.xp, self.counter[:1], self.counter[1:]
        t += 1
        xp.add(t, 1, out=w[:1])
        xp.add(t, 10, out=w[1:])
        xp.divide(w[:1], w[1:], out=w[:1])
        xp.minimum(w[:1], self.config["ema"], out=w[:1])
        self.decay[...] = w[:1]
        return self.decay

    def generate(self, z, labels=None):
        """Images in [0, 1], shape (N, 784), from noise z (and labels); uses the EMA weights if kept."""
        if self.ema is not None:
            live = self.G.flat_params.copy()
            self.G.flat_params[...] = self.ema
        out = self.G.forward(self.with_labels(z, labels))
        if self.ema is not None:
            self.G.flat_params[...] = live
        return (out + 1) / 2 if self.config["g_out"] == "tanh" else out.copy()  # G's output buffer is reused

    def sample(self, n, labels=None, batch=1000):
        """n host images (n, 28, 28) in [0, 1] for the given labels (conditional: random if None)."""
        be, out = self.be, []
        if type(n) is not int and not (hasattr(n, "dtype") and n.dtype.kind in "iu" and n.ndim == 0):
            raise ValueError(f"sample: argument n must be an integer, not {type(n).__name__}")
        if not 1 <= n <= MAX_SAMPLES:
            raise ValueError(f"sample: argument n={n} must be from 1 to {MAX_SAMPLES:,}")
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"sample: argument batch={batch} must be from 1 to {MAX_BATCH}")
        if labels is not None:
            labels = check_labels(labels, n, self.config["conditional"], be.xp, self.n_classes)
        if self.config["conditional"] and labels is None:
            labels = be.randint(self.n_classes, n)
        for a in range(0, n, batch):
            y = None if labels is None else be.xp.asarray(labels[a:a + batch])
            z = be.randn(min(batch, n - a), self.config["latent_dim"])
            out.append(be.to_host(self.generate(z, y)).reshape(-1, *self.config.get("image", (28, 28))))
        return xp_of(out[0]).concatenate(out)  # host arrays: xp_of gives numpy here

