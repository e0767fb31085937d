"""A semi-supervised GAN (Salimans et al. 2016): D is a 10-class digit classifier that also tells real from generated.

D's 10 logits l give the class, and D(x) = Z / (Z + 1) with Z = sum_k exp(l_k) says "real". D learns from
labelled digits (cross-entropy), from unlabelled digits (real) and from G's digits (generated); G learns by
feature matching: its digits must give the same average features in D's last hidden layer as real ones.
"""
from ..engine.backend import reuse
from ..engine.layers import Dense, GaussianNoise, ReLU, Sequential, Sigmoid, Softplus
from ..engine.losses import feature_matching, softmax_cross_entropy, softplus, log_sum_exp, unlabelled_loss
from ..engine.norm import BatchNorm, WeightNormDense, init_from_data
from ..engine.optim import Adam

# The published MNIST recipe: D 784 -> 1000 -> 500 -> 250 -> 250 -> 250 -> 10, weight-normalised, ReLU, Gaussian
# noise 0.3 on the input and 0.5 after each hidden layer; G 100 uniform -> 500 -> 500 (softplus, batch norm)
# -> 784 sigmoid, weight-normalised output; Adam lr 3e-3, beta1 0.5; 100 labelled + 100 unlabelled + 100
# generated rows per step; 600 steps per epoch (one pass over the 60,000 unlabelled images).
# adam_eps: the recipe's Adam divides by sqrt(v + 1e-8), which is sqrt(v) + 1e-4 where v is tiny and sqrt(v)
# elsewhere (within a factor sqrt(2) at v = 1e-8). With eps 1e-8 instead, two runs at 100 labels collapsed in
# epochs 12 and 17 (G's sigmoid outputs saturated and the feature-matching loss rose to ~200); see docs/ssl.md.
DEFAULTS = dict(kind="ssl", labels=100, d_hidden=[1000, 500, 250, 250, 250], input_noise=0.3, hidden_noise=0.5,
                g_hidden=[500, 500], latent_dim=100, lr=3e-3, beta1=0.5, beta2=0.999, adam_eps=1e-4, batch_size=100,
                unlabelled_weight=1.0, ema=0.9999, epochs=300, steps_per_epoch=None, seed=0,
                image=[28, 28], classes=[str(d) for d in range(10)])  # image and classes: set from the data


def sizes_of(c):
    """(pixels, classes) of a config: from its data's image size and class names (MNIST's 784 and 10 by default)."""
    h, w = c.get("image", DEFAULTS["image"])
    return h * w, len(c.get("classes", DEFAULTS["classes"]))


def make_ssl_config(**overrides):
    """The recipe's settings with overrides applied (None means keep the default)."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown semi-supervised settings {unknown}: choose from {sorted(DEFAULTS)}")
    return {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}


def build_discriminator(c, be):
    """The classifier D: noisy weight-normalised ReLU layers, then 10 logits (the last layer's scale is trained)."""
    pixels, n_classes = sizes_of(c)
    layers, sizes = [GaussianNoise(c["input_noise"], be=be)], [pixels, *c["d_hidden"]]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [WeightNormDense(a, b, be=be, train_scale=False), ReLU(), GaussianNoise(c["hidden_noise"], be=be)]
    layers.append(WeightNormDense(sizes[-1], n_classes, be=be))
    return Sequential(*layers, be=be)


def build_generator(c, be):
    """G: bias-free Dense, batch norm (shift only), softplus per hidden layer; a weight-normalised sigmoid output."""
    pixels, layers, sizes = sizes_of(c)[0], [], [c["latent_dim"], *c["g_hidden"]]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(a, b, be=be, bias=False), BatchNorm(b, be=be, scale=False), Softplus()]
    v_std = (2 / (sizes[-1] + pixels)) ** 0.5  # the spread of a Glorot-initialised layer (only V's direction matters)
    layers += [WeightNormDense(sizes[-1], pixels, be=be, v_std=v_std), Sigmoid()]
    return Sequential(*layers, be=be)


class SSLGAN:
    """Owns G, D (the recognizer), their Adams and an average of D's weights; step() trains both once."""
    ema_key = "D_ema"  # the checkpoint entry of the averaged weights (of D here)

    def __init__(self, config, be):
        self.config, self.be, self.iteration = config, be, 0
        self.pixels, self.n_classes = sizes_of(config)
        self.G, self.D = build_generator(config, be), build_discriminator(config, be)
        self.features = len(self.D.layers) - 2  # D.forward(x, upto=features): the last hidden layer's ReLU output
        adam = dict(lr=config["lr"], betas=(config["beta1"], config["beta2"]), eps=config["adam_eps"])
        self.opt_g = Adam([(self.G.flat_params, self.G.flat_grads)], **adam)
        self.opt_d = Adam([(self.D.flat_params, self.D.flat_grads)], **adam)
        self.ema = self.D.flat_params.copy()  # averaged D weights: the recognizer that is evaluated and exported
        self.buffers = {}

    def buffer(self, name, rows, cols):
        """step()'s reusable (rows, cols) float array `name`."""
        return reuse(self.buffers, name, self.D.flat_params, (rows, cols))

    def init_from_data(self, x):
        """Data-dependent init of D's weight-normalised layers from a batch of images (N, 784), as in the recipe."""
        init_from_data(self.D, x)  # in training mode, noise included, as the recipe does
        self.ema[...] = self.D.flat_params

    def noise(self, B):
        """G's input in a reused buffer: (B, latent) uniform in [0, 1), as in the recipe."""
        return self.be.rand(out=self.buffer("z", B, self.config["latent_dim"]))

    def step(self, x_lab, y_lab, x_unl, x_unl2):
        """One D update (labelled, unlabelled and generated rows), then one G update by feature matching."""
        # x_lab: (n, 784) with labels y_lab (n,); x_unl, x_unl2: (B, 784) unlabelled, in [0, 1]
        self.D.zero_grad()
        stats = self.d_backward(x_lab, y_lab, x_unl, self.noise(len(x_unl)))
        self.opt_d.step()
        # The recipe's average starts from zeros; this one ramps its decay up, so early weights are soon forgotten
        # (a plain mean of all steps was measured to lag: 12.4% test error at epoch 9 against 9.6% live).
        d = min(self.config["ema"], (1 + self.iteration) / (10 + self.iteration))
        self.ema -= self.D.flat_params                                   # ema = d ema + (1 - d) params, in place
        self.ema *= d
        self.ema += self.D.flat_params
        self.G.zero_grad()
        stats["loss_gen"] = self.g_backward(x_unl2, self.noise(len(x_unl2)))
        self.opt_g.step()
        self.iteration += 1
        return stats

    def d_backward(self, x_lab, y_lab, x_unl, z):
        """D's losses on [labelled; unlabelled; G(z)] rows in one pass, its gradients added to D's; returns 0-d stats."""
        xp, n, B = self.be.xp, len(x_lab), len(x_unl)
        rows = self.buffer("rows", n + 2 * B, self.pixels)
        rows[:n], rows[n:n + B], rows[n + B:] = x_lab, x_unl, self.G.forward(z)
        out = self.D.forward(rows)                                       # (n + 2B, 10) logits
        loss_lab, g_lab = softmax_cross_entropy(out[:n], y_lab)          # cross-entropy on labelled rows
        loss_real, g_real = unlabelled_loss(out[n:n + B], real=True)     # -log D(x) on unlabelled rows
        loss_fake, g_fake = unlabelled_loss(out[n + B:], real=False)     # -log(1 - D(G(z))) on generated rows
        w = 0.5 * self.config["unlabelled_weight"]                       # the recipe halves each unlabelled term
        grad = self.buffer("grad", n + 2 * B, self.n_classes)
        grad[:n] = g_lab
        xp.multiply(g_real, w, out=grad[n:n + B])
        xp.multiply(g_fake, w, out=grad[n + B:])
        self.D.backward(grad, input_grad=False)
        lse = log_sum_exp(out[n:])                                       # (2B,): log Z; D(x) = exp(-softplus(-log Z))
        return {"loss": loss_lab + w * (loss_real + loss_fake), "loss_lab": loss_lab, "loss_unl": w * (loss_real + loss_fake),
                "train_err": (out[:n].argmax(axis=1) != y_lab).mean(),
                "d_real": xp.exp(-softplus(-lse[:B])).mean(), "d_fake": xp.exp(-softplus(-lse[B:])).mean()}

    def g_backward(self, x_unl2, z):
        """G's feature-matching loss through the frozen D, its gradients added to G's; returns the 0-d loss."""
        target = self.D.forward(x_unl2, upto=self.features).mean(axis=0)  # (J,): a new array, kept across the next forward
        f = self.D.forward(self.G.forward(z), upto=self.features)        # (B, J): D's last hidden features of G(z)
        loss, grad = feature_matching(f, target)
        dx = self.D.backward(grad, param_grads=False, upto=self.features)  # (B, 784): into G, not into D's gradients
        self.G.backward(dx, input_grad=False)
        return loss

    def use_average(self, on=True):
        """Swap the averaged D weights in (on) or the live ones back (off)."""
        if on:
            self.live = self.D.flat_params.copy()
            self.D.flat_params[...] = self.ema
        else:
            self.D.flat_params[...] = self.live

    def classify(self, images, batch=1000, average=True):
        """Predicted digits (N,) for images (N, 784) in [0, 1] on the device, by the averaged D in evaluation mode."""
        xp, out = self.be.xp, []
        if average:
            self.use_average(True)
        self.D.eval()
        for a in range(0, len(images), batch):
            out.append(self.D.forward(images[a:a + batch]).argmax(axis=1))
        self.D.train()
        if average:
            self.use_average(False)
        return xp.concatenate(out)

    def generate(self, z):
        """Images (N, 784) in [0, 1] from uniform noise z (N, latent), with batch statistics as in training."""
        return self.G.forward(z).copy()
