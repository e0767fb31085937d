"""A semi-supervised GAN (Salimans et al. 2016): D is a 10-class digit classifier that also tells real from generated.

D's 10 logits l give the class, and D(x) = Z / (Z + 1) with Z = sum_k exp(l_k) says "real". D learns from
labelled digits (cross-entropy), from unlabelled digits (real) and from G's digits (generated); G learns by
feature matching: its digits must give the same average features in D's last hidden layer as real ones.
"""
from ..engine.backend import reuse
from ..engine.layers import Dense, GaussianNoise, ReLU, Sequential, Sigmoid, Softplus
from ..engine.losses import feature_matching, softmax_cross_entropy, softplus, log_sum_exp, unlabelled_loss
from ..engine.norm import BatchNorm, WeightNormDense, init_from_data
from ..engine.optim import Adam, linear_decay
from ..engine.regularizers import class_balance, consistency, entropy, pull_away
from .fields import SSL_FIELDS, sizes_of  # (pixels, classes) of a config: its data's, MNIST's 784 and 10 by default

# The published MNIST recipe: D 784 -> 1000 -> 500 -> 250 -> 250 -> 250 -> 10, weight-normalised, ReLU, Gaussian
# noise 0.3 on the input and 0.5 after each hidden layer; G 100 uniform -> 500 -> 500 (softplus, batch norm)
# -> 784 sigmoid, weight-normalised output; Adam lr 3e-3, beta1 0.5; 100 labelled + 100 unlabelled + 100
# generated rows per step; 600 steps per epoch (one pass over the 60,000 unlabelled images).
# adam_eps: the recipe's Adam divides by sqrt(v + 1e-8), which is sqrt(v) + 1e-4 where v is tiny and sqrt(v)
# elsewhere (within a factor sqrt(2) at v = 1e-8). With eps 1e-8 instead, two runs at 100 labels collapsed in
# epochs 12 and 17 (G's sigmoid outputs saturated and the feature-matching loss rose to ~200); see docs/ssl.md.
DEFAULTS = dict(kind="ssl", labels=100, d_hidden=[1000, 500, 250, 250, 250], input_noise=0.3, hidden_noise=0.5,
                g_hidden=[500, 500], latent_dim=100, lr=3e-3, beta1=0.5, beta2=0.999, adam_eps=1e-4, batch_size=100,
                unlabelled_weight=1.0, ema=0.9999, epochs=100, steps_per_epoch=None, seed=0,
                # the cures for few labels, all off by default (docs/ssl.md, Options): validation digits held out,
                # labelled digits kept out of the unlabelled pool, Adam's eps inside the root, G's own lr, linear lr
                # decay over the last fraction of the epochs, supervised-only warm-up epochs, regularizer weights,
                # and self-training's confidence threshold (None: off)
                validation=0, exclude_labelled=False, adam_eps_inside=False, g_lr=None, decay_fraction=0.0,
                warmup_epochs=0, entropy_weight=0.0, balance_weight=0.0, consistency_weight=0.0,
                pull_away_weight=0.0, pseudo_threshold=None,
                image=[28, 28], classes=[str(d) for d in range(10)])  # image and classes: set from the data


# Below 10 labelled images per class the recipe alone fails (docs/ssl.md: 50-54% error at 20 labels); there the
# command's defaults add the cures chosen on a validation split at 20 labels (docs/ssl.md, "Choosing the defaults").
FEW_LABELS = dict(entropy_weight=1.0, balance_weight=1.0, consistency_weight=1.0, exclude_labelled=True)


def few_label_defaults(config, chosen=()):
    """config with FEW_LABELS set, except the keys in chosen, when it has fewer than 10 labels per class."""
    if config["labels"] < 10 * len(config["classes"]):
        config.update({k: v for k, v in FEW_LABELS.items() if k not in chosen})
    return config


def make_ssl_config(**overrides):
    """The recipe's settings with overrides applied (None means keep the default)."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown semi-supervised settings {unknown}: choose from {sorted(DEFAULTS)}")
    return check_ssl_config({**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}, "make_ssl_config")


def check_ssl_config(config, where):
    """config, or ValueError naming the first setting out of the range a checkpoint allows (None: not yet set)."""
    for key, (ok, what, *_) in SSL_FIELDS.items():
        value = config.get(key)
        if value is not None and not ok(value):
            raise ValueError(f"{where}: {key} is {value!r}, it must be {what}")
    return config


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
        self.config, self.be, self.iteration = check_ssl_config(config, "SSLGAN"), be, 0
        self.pixels, self.n_classes = sizes_of(config)
        self.G, self.D = build_generator(config, be), build_discriminator(config, be)
        self.features = len(self.D.layers) - 2  # D.forward(x, upto=features): the last hidden layer's ReLU output
        adam = dict(betas=(config["beta1"], config["beta2"]), eps=config["adam_eps"], eps_inside=config["adam_eps_inside"])
        self.opt_g = Adam([(self.G.flat_params, self.G.flat_grads)], lr=config["g_lr"] or config["lr"], **adam)
        self.opt_d = Adam([(self.D.flat_params, self.D.flat_grads)], lr=config["lr"], **adam)
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
        c = self.config
        if c["decay_fraction"]:  # both learning rates: constant, then linearly to 0 over the last fraction
            f = linear_decay(self.iteration, c["epochs"] * c["steps_per_epoch"], c["decay_fraction"])
            self.opt_d.lr, self.opt_g.lr = f * c["lr"], f * (c["g_lr"] or c["lr"])
        if self.iteration < c["warmup_epochs"] * (c["steps_per_epoch"] or 0):
            return self.warmup_step(x_lab, y_lab)
        self.D.zero_grad()
        stats = self.d_backward(x_lab, y_lab, x_unl, self.noise(len(x_unl)))
        self.opt_d.step()
        self.average()
        self.G.zero_grad()
        stats["loss_gen"] = self.g_backward(x_unl2, self.noise(len(x_unl2)))
        self.opt_g.step()
        self.iteration += 1
        return stats

    def average(self):
        """Fold D's new weights into their average."""
        # The recipe's average starts from zeros; this one ramps its decay up, so early weights are soon forgotten
        # (a plain mean of all steps was measured to lag: 12.4% test error at epoch 9 against 9.6% live).
        d = min(self.config["ema"], (1 + self.iteration) / (10 + self.iteration))
        self.ema -= self.D.flat_params                                   # ema = d ema + (1 - d) params, in place
        self.ema *= d
        self.ema += self.D.flat_params

    def warmup_step(self, x_lab, y_lab):
        """A warm-up step: D learns from the labelled rows alone (cross-entropy); G is not updated."""
        self.D.zero_grad()
        out = self.D.forward(x_lab)                                      # (n, 10) logits
        loss, grad = softmax_cross_entropy(out, y_lab)
        self.D.backward(grad, input_grad=False)
        self.opt_d.step()
        self.average()
        self.iteration += 1
        zero = self.be.xp.zeros(())  # the GAN's terms, not run: the epoch record keeps its fields
        return {"loss": loss, "loss_lab": loss, "loss_unl": zero, "train_err": (out.argmax(axis=1) != y_lab).mean(),
                "d_real": zero, "d_fake": zero, "loss_gen": zero}

    def d_backward(self, x_lab, y_lab, x_unl, z):
        """D's losses on [labelled; unlabelled; G(z)] rows in one pass, its gradients added to D's; returns 0-d stats."""
        # With consistency on, the unlabelled rows come once more at the end: a second noisy look, in the same pass.
        xp, n, B, c = self.be.xp, len(x_lab), len(x_unl), self.config
        C = B if c["consistency_weight"] else 0
        rows = self.buffer("rows", n + 2 * B + C, self.pixels)
        rows[:n], rows[n:n + B], rows[n + B:n + 2 * B] = x_lab, x_unl, self.G.forward(z)
        if C:
            rows[n + 2 * B:] = x_unl
        out = self.D.forward(rows)                                       # (n + 2B + C, classes) logits
        loss_lab, g_lab = softmax_cross_entropy(out[:n], y_lab)          # cross-entropy on labelled rows
        loss_real, g_real = unlabelled_loss(out[n:n + B], real=True)     # -log D(x) on unlabelled rows
        loss_fake, g_fake = unlabelled_loss(out[n + B:n + 2 * B], real=False)  # -log(1 - D(G(z))) on generated rows
        w = 0.5 * self.config["unlabelled_weight"]                       # the recipe halves each unlabelled term
        grad = self.buffer("grad", n + 2 * B + C, self.n_classes)
        grad[:n] = g_lab
        xp.multiply(g_real, w, out=grad[n:n + B])
        xp.multiply(g_fake, w, out=grad[n + B:n + 2 * B])
        stats = {"loss": loss_lab + w * (loss_real + loss_fake)}
        if c["entropy_weight"] or c["balance_weight"] or C:
            stats["loss"] = stats["loss"] + self.regularize(out[n:n + B], out[n + 2 * B:], grad[n:n + B], grad[n + 2 * B:], stats)
        self.D.backward(grad, input_grad=False)
        lse = log_sum_exp(out[n:n + 2 * B])                              # (2B,): log Z; D(x) = exp(-softplus(-log Z))
        stats.update({"loss_lab": loss_lab, "loss_unl": w * (loss_real + loss_fake),
                      "train_err": (out[:n].argmax(axis=1) != y_lab).mean(),
                      "d_real": xp.exp(-softplus(-lse[:B])).mean(), "d_fake": xp.exp(-softplus(-lse[B:])).mean()})
        return stats

    def regularize(self, unl, again, g_unl, g_again, stats):
        """The weighted regularizers of the unlabelled rows' logits unl (B, classes) (and again, their second noisy
        look): their gradients added to g_unl, g_again; their terms in stats; returns their weighted sum."""
        c, total = self.config, 0
        scratch = self.buffer("reg", len(unl), self.n_classes)
        for key, name, fn in (("entropy_weight", "loss_ent", entropy), ("balance_weight", "loss_bal", class_balance)):
            if c[key]:
                stats[name], g = fn(unl, out=scratch)
                g *= c[key]
                g_unl += g
                total = total + c[key] * stats[name]
        if c["consistency_weight"]:
            stats["loss_con"], ga, gb = consistency(unl, again)
            ga *= c["consistency_weight"]
            g_unl += ga
            self.be.xp.multiply(gb, c["consistency_weight"], out=g_again)
            total = total + c["consistency_weight"] * stats["loss_con"]
        return total

    def g_backward(self, x_unl2, z):
        """G's feature-matching loss through the frozen D, its gradients added to G's; returns the 0-d loss."""
        target = self.D.forward(x_unl2, upto=self.features).mean(axis=0)  # (J,): a new array, kept across the next forward
        f = self.D.forward(self.G.forward(z), upto=self.features)        # (B, J): D's last hidden features of G(z)
        loss, grad = feature_matching(f, target)
        if self.config["pull_away_weight"]:  # G's rows pushed apart in D's feature space (Bad GAN)
            pt, g_pt = pull_away(f)
            g_pt *= self.config["pull_away_weight"]
            grad, loss = g_pt + grad, loss + self.config["pull_away_weight"] * pt
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
        return self.read(images, lambda logits: logits.argmax(axis=1), batch, average)

    def probabilities(self, images, batch=1000, average=True):
        """D's class probabilities (N, classes) for images (N, pixels), by the averaged D in evaluation mode."""
        xp = self.be.xp

        def softmax(logits):
            e = xp.exp(logits - logits.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return self.read(images, softmax, batch, average)

    def read(self, images, fn, batch=1000, average=True):
        """fn of D's logits for images (N, 784), `batch` rows at a time, concatenated; D restored after."""
        xp, out = self.be.xp, []
        if average:
            self.use_average(True)
        self.D.eval()
        for a in range(0, len(images), batch):
            out.append(fn(self.D.forward(images[a:a + batch])))
        self.D.train()
        if average:
            self.use_average(False)
        return xp.concatenate(out)

    def generate(self, z):
        """Images (N, 784) in [0, 1] from uniform noise z (N, latent), with batch statistics as in training."""
        return self.G.forward(z).copy()
