"""See inside a GAN: per-layer norms and update ratios, activation health, D-output histograms, and named diagnoses."""
import time

from ..engine.backend import Backend, xp_of
from ..engine.layers import Dense, LeakyReLU, ReLU, Sigmoid, Tanh

BINS = 20          # D-output histogram bins on [0, 1]
N_SAMPLES = 500    # fixed-noise samples classified at each trace point
N_SPREAD = 100     # the first 100 of them give the pairwise-distance spread
SATURATED = 0.99   # |tanh| > 0.99, or sigmoid < 0.01 or > 0.99, counts as saturated

THRESHOLDS = dict(
    patience=3,        # trace points in a row a condition must hold before it is named
    d_fake=0.05,       # discriminator winning: mean D(G(z)) below this
    g_grad=1e-4,       # vanishing G gradient: its norm below this ...
    g_grad_drop=1e-3,  # ... or below this fraction of its largest value so far
    entropy=0.5,       # mode collapse: normalized class entropy of the samples falling below this, or ...
    spread=0.2,        # mode collapse: spread of fixed-noise samples below this fraction of its peak ...
    spread_floor=1e-3, # ... or below this RMS pixel distance (the samples are one image)
    dead=0.9,          # dead layer: fraction of units that never fire over the batch above this
)


def load_trace_classifier(be):
    """(the shipped digit classifier, None), or (None, a note saying why the class panel is skipped)."""
    try:
        from ..models.classifier import load_classifier
        return load_classifier(be), None
    except (ImportError, OSError, ValueError) as e:
        return None, f"class histogram skipped: {e}"


def _fetch(tree, xp):
    """A dict tree of device scalars/vectors as Python floats/lists, in one device-to-host transfer."""
    leaves = []

    def walk(node):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v)
            else:
                leaves.append((node, k, xp.ravel(xp.asarray(v, dtype="float64")), getattr(v, "ndim", 0)))
    walk(tree)
    flat = xp.concatenate([v for _, _, v, _ in leaves]).tolist() if leaves else []
    i = 0
    for node, k, v, ndim in leaves:
        values = [float(f"{x:.4g}") for x in flat[i:i + v.size]]  # 4 significant digits keep the log small
        node[k] = values if ndim else values[0]
        i += v.size
    return tree


def _norm(xp, a):
    """Euclidean norm of a, as a 0-d device array."""
    return xp.sqrt((a * a).sum())


def layer_stats(model, x, before, prefix):
    """Forward x layer by layer in eval mode; {name: stats} for each Dense and activation layer, in order."""
    # Dense: weight norm, gradient norm, and ||W - W_before|| / ||W|| (before: flat params before the step, or None).
    # Activations: mean, std, and the fraction of dead units (ReLU) or saturated values (tanh, sigmoid).
    xp, was_training, stats, offset = model.be.xp, model.layers[0].training, {}, 0
    model.eval()  # no dropout, so no random numbers are drawn: tracing leaves training bit-identical
    for i, layer in enumerate(model.layers):
        name = f"{prefix}.{i} {type(layer).__name__}"
        if isinstance(layer, Dense):
            W = layer.W.ravel()  # a view into flat_params, where each layer's W comes first, then b
            s = stats[name] = {"w_norm": _norm(xp, W), "g_norm": _norm(xp, layer.dW)}
            if before is not None:
                s["update_ratio"] = _norm(xp, W - before[offset:offset + W.size]) / s["w_norm"]
        offset += sum(getattr(layer, n).size for n in layer.params)
        x = layer.forward(x)  # (B, n)
        if isinstance(layer, (ReLU, LeakyReLU)):  # dead: units never positive over the batch
            stats[name] = {"dead": 1 - (x > 0).any(axis=0).astype("float32").mean()}
        elif isinstance(layer, Tanh):
            stats[name] = {"saturated": (xp.abs(x) > SATURATED).astype("float32").mean()}
        elif isinstance(layer, Sigmoid):
            stats[name] = {"saturated": ((x < 1 - SATURATED) | (x > SATURATED)).astype("float32").mean()}
        else:
            continue
        stats[name].update(mean=x.mean(), std=x.std())
    model.train(was_training)
    return stats


def histogram(p, bins=BINS):
    """Fraction of the probabilities p (n, 1) in each of `bins` equal bins on [0, 1]."""
    xp = xp_of(p)
    idx = xp.clip((p.ravel() * bins).astype("int64"), 0, bins - 1)  # p = 1 goes to the last bin
    return xp.bincount(idx, minlength=bins) / p.size


def spread(images):
    """Mean pairwise RMS pixel distance of images (n, P): 0 when all are the same image."""
    xp, n = xp_of(images), len(images)
    sq = (images * images).sum(axis=1)
    d2 = sq[:, None] + sq[None, :] - 2 * (images @ images.T)  # (n, n) squared distances
    d = xp.sqrt(xp.maximum(d2, 0) / images.shape[1])
    return (d.sum() - xp.trace(d)) / (n * (n - 1))  # the diagonal is ~0 up to float32 cancellation


class Tracer:
    """Records G's and D's internals every `every` iterations and names what goes wrong, once when it begins."""

    def __init__(self, gan, every=100, classifier=None, n_samples=N_SAMPLES, seed=None, **thresholds):
        unknown = sorted(set(thresholds) - set(THRESHOLDS))
        if unknown:
            raise ValueError(f"unknown thresholds {unknown}: choose from {sorted(THRESHOLDS)}")
        self.gan, self.every, self.classifier = gan, every, classifier
        self.limits = {**THRESHOLDS, **thresholds}
        be, c = gan.be, gan.config
        # Fixed noise from its own generator: the training random stream is left untouched.
        rng = Backend(be.name, be.dtype.name, c["seed"] + 2 if seed is None else seed)
        self.fixed_z = rng.randn(n_samples, c["latent_dim"])                         # (N, latent)
        self.fixed_y = be.xp.arange(n_samples) % 10 if c["conditional"] else None  # digits 0..9 in turn
        self.before = None
        self.streaks, self.peaks, self.diagnoses = {}, {}, []

    def due(self, iteration):
        """Whether `iteration` is a trace point."""
        return iteration % self.every == 0

    def snapshot(self):
        """Copy G's and D's flat parameters just before a traced step, for the update ratios."""
        self.before = (self.gan.G.flat_params.copy(), self.gan.D.flat_params.copy())

    def record(self, real, labels=None):
        """The trace of the step just taken (real, labels: its batch) as a JSON-ready dict, with new diagnoses."""
        gan, xp = self.gan, self.gan.be.xp
        # The G update's forwards left their inputs in the first Dense caches: z (B, latent [+10]), G(z) (B, 784 [+10]).
        z, fake = gan.G.layers[0].x.copy(), gan.D.layers[0].x.copy()  # copies: the forwards below reuse G's buffers
        g_before, d_before = self.before or (None, None)
        B = len(gan.d_out) // 2  # d_out: (2B, 1), D(x) rows then D(G(z)) rows, from the D update
        images = gan.generate(self.fixed_z, self.fixed_y)  # (N, 784) in [0, 1]
        d_input = getattr(gan, "d_input", gan.with_labels)  # what D sees of an image (AC-GAN: no label)
        trace = {
            "layers": {**layer_stats(gan.G, z, g_before, "G"),
                       **layer_stats(gan.D, xp.concatenate([d_input(real, labels), fake]), d_before, "D")},
            "g_grad_norm": _norm(xp, gan.G.flat_grads), "d_grad_norm": _norm(xp, gan.D.flat_grads),
            "d_real_mean": gan.d_out[:B].mean(), "d_fake_mean": gan.d_out[B:].mean(),
            "d_real_hist": histogram(gan.d_out[:B]), "d_fake_hist": histogram(gan.d_out[B:]),
            "spread": spread(images[:N_SPREAD]),
        }
        trace = _fetch(trace, xp)
        if self.classifier is not None:
            from ..models.classifier import predict
            from .metrics import class_histogram, normalized_entropy  # host-side
            hist = class_histogram(predict(self.classifier, images)[0])
            trace["class_hist"] = [round(float(h), 4) for h in hist]
            trace["entropy"] = round(normalized_entropy(hist), 4) + 0.0  # no -0.0
        trace["diagnoses"] = self.diagnose(trace, gan.iteration)
        self.before = None
        return trace

    def diagnose(self, t, it):
        """Diagnoses that begin at this trace point: those whose condition has now held `patience` times in a row."""
        L = self.limits
        g = t["g_grad_norm"]
        g_peak = self.peaks["g_grad"] = max(self.peaks.get("g_grad", 0.0), g)
        checks = [
            ("discriminator winning", t["d_fake_mean"] < L["d_fake"],
             f"the discriminator is winning: mean D(G(z)) = {t['d_fake_mean']:.3g} < {L['d_fake']}"),
            ("vanishing G gradient", g < L["g_grad"] or g < L["g_grad_drop"] * g_peak,
             f"the generator's gradient is vanishing: |grad G| = {g:.3g} (its peak was {g_peak:.3g})"),
        ]
        s_peak = self.peaks["spread"] = max(self.peaks.get("spread", 0.0), t["spread"])
        collapsed = t["spread"] < max(L["spread"] * s_peak, L["spread_floor"])
        why = (f"mode collapse suspected: fixed-noise samples differ by {t['spread']:.3g} RMS "
               f"(their peak was {s_peak:.3g})")
        if "entropy" in t:
            # Only a fall counts: early samples are blobs that all classify as one digit, which is no collapse.
            e_peak = self.peaks["entropy"] = max(self.peaks.get("entropy", 0.0), t["entropy"])
            by_class = e_peak >= L["entropy"] > t["entropy"]
            if by_class:
                top = max(range(len(t["class_hist"])), key=t["class_hist"].__getitem__)
                why = (f"mode collapse suspected: class entropy fell to {t['entropy']:.2f} < {L['entropy']}, "
                       f"{t['class_hist'][top]:.0%} of the samples look like a {top}")
            collapsed = collapsed or by_class
        checks.append(("mode collapse", collapsed, why))
        for name, s in t["layers"].items():
            if "dead" in s:
                checks.append((f"dead layer {name}", s["dead"] > L["dead"],
                               f"layer {name} is dead: {s['dead']:.0%} of its units never fire"))
        new = []
        for key, holds, message in checks:
            if not holds:
                self.streaks.pop(key, None)  # the episode is over; a later one is reported again
                continue
            began, n = self.streaks.get(key, (it, 0))
            self.streaks[key] = (began, n + 1)
            if n + 1 == L["patience"]:
                new.append({"name": key, "began": began, "iteration": it,
                            "message": f"{message} (since iteration {began})"})
        self.diagnoses += new
        return new


def measure_overhead(gan, data, every=100, steps=50, points=3, classifier=None):
    """Time plain steps and trace points on gan (which it trains); overhead = trace cost / (every * step cost)."""
    be, B, cond = gan.be, gan.config["batch_size"], gan.config["conditional"]
    tracer = Tracer(gan, every, classifier)

    def step():
        real, y = data.sample(B)
        gan.step(real, y if cond else None)
        return real, y if cond else None

    def clock(fn):
        be.sync()
        t = time.perf_counter()
        out = fn()
        be.sync()
        return time.perf_counter() - t, out

    step()  # warm-up (and, on cupy, kernel compilation)
    step_s = clock(lambda: [step() for _ in range(steps)])[0] / steps
    costs = []
    for _ in range(points + 1):  # the first trace point is a warm-up
        snap_s = clock(tracer.snapshot)[0]
        batch = step()
        costs.append(snap_s + clock(lambda: tracer.record(*batch))[0])
    trace_s = sorted(costs[1:])[len(costs[1:]) // 2]  # median
    return {"step_s": step_s, "trace_s": trace_s, "every": every, "overhead": trace_s / (every * step_s)}
