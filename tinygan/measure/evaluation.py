"""Host-side evaluation of generated digits with the shipped MNIST classifier (FD, balance, precision/recall, memorization)."""
from pathlib import Path

import numpy as np

from ..data import mnist
from . import metrics
from ..engine.backend import get_backend
from ..models.checkpoint import WEIGHTS, load_classifier_weights  # noqa: F401  (the weights file and its reader)
from ..models.classifier import load_classifier, predict

N_FLOOR = 10000  # real train images in the FD floor, as many as a typical generated set
N_NN = 2000      # samples checked for memorization (each is compared with all 60k train images)
K = 3            # neighbours for k-NN precision / recall

_models = {}      # (backend, weights path) -> classifier
_references = {}  # (data_dir, weights path) -> Reference


def _classifier(be, path):
    """The classifier for this backend and weights file, built once."""
    key = (be, str(path or WEIGHTS))
    if key not in _models:
        _models[key] = load_classifier(be, path)
    return _models[key]


def _features(be, path, images):
    """(probs (N, 10), features (N, 256)) as float64 host arrays."""
    probs, feats = predict(_classifier(be, path), images)
    return probs.astype(np.float64), feats.astype(np.float64)


class Reference:
    """Real MNIST statistics a generated set is compared with; the costly parts are computed on first use."""

    def __init__(self, data_dir=None, be=None, path=None, download=True, seed=0):
        self.be, self.path, self.seed = be or get_backend(), path, seed
        # full: the 60k train split is available; otherwise only the bundled t10k split, cut in two: the GAN trains
        # on its first 8,000 digits (load_mnist("train")) and is scored on the 2,000 held out (load_mnist("test"))
        self.full = mnist.find_mnist(data_dir, download=download, verbose=False) is not None
        self.data_dir = data_dir
        x_test, self.test_labels = mnist.load_mnist("test", data_dir, download=False, verbose=False)  # find_mnist fetched it if it could
        self.test_images = mnist.to_unit(x_test)                                      # (10000, 28, 28)
        self.test_probs, self.test_feats = _features(self.be, path, self.test_images)  # (10000, 10), (10000, 256)
        self.mu, self.sigma = metrics.feature_stats(self.test_feats)
        self._train, self._fd_floor, self._nn_real, self._radii = None, None, None, None

    def precision_recall(self, feats):
        """k-NN (precision, recall) of generated features against the test set, as metrics.knn_precision_recall."""
        # feats: (N, 256) float64; the test set's k-NN radii are the same every call, so they are kept
        if self._radii is None:
            self._radii = metrics._knn_radii_sq(self.test_feats, K, 1000)
        precision = metrics._coverage(feats, self.test_feats, self._radii, 1000)
        recall = metrics._coverage(self.test_feats, feats, metrics._knn_radii_sq(feats, K, 1000), 1000)
        return precision, recall

    @property
    def train_images(self):
        """Training images as float32 (M, 784) in [0, 1]: what a GAN may have memorized."""
        if self._train is None:
            # without the full set: the training part of the bundled split, what an offline run trained on
            x, _ = mnist.load_mnist("train", self.data_dir, download=False, verbose=False)
            self._train = mnist.to_unit(x).reshape(len(x), -1)
        return self._train

    def fd_floor(self):
        """FD of 10k real train images against the test set: the best a generator can hope for (None without the train split)."""
        if not self.full:
            return None
        if self._fd_floor is None:
            idx = np.random.default_rng(self.seed).choice(len(self.train_images), N_FLOOR, replace=False)
            _, feats = _features(self.be, self.path, self.train_images[idx])
            self._fd_floor = metrics.frechet_distance(*metrics.feature_stats(feats), self.mu, self.sigma)
        return self._fd_floor

    def nn_real_test(self):
        """Mean nearest-train distance of held-out test images: the memorization baseline (None without the train split)."""
        if not self.full:
            return None
        if self._nn_real is None:
            self._nn_real = float(metrics.nearest_distance(_subset(self.test_images, self.seed), self.train_images).mean())
        return self._nn_real


def load_reference(data_dir=None, be=None, path=None, download=True):
    """The Reference for this data folder, weights file and kind of backend, built once per process."""
    be = be or get_backend()
    key = (str(Path(data_dir).expanduser().resolve()) if data_dir is not None else None, str(path or WEIGHTS),
           be.name, be.dtype.name)
    if key not in _references:
        _references[key] = Reference(data_dir, be, path, download)
    return _references[key]


def real_fd_floor(data_dir=None, be=None, reference=None):
    """FD between 10k real train images and the test set, in classifier features (cached)."""
    return (reference or load_reference(data_dir, be)).fd_floor()


def _subset(x, seed, n=N_NN):
    """At most n rows of x, drawn without replacement by a seeded generator."""
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def _check_images(images):
    """Images as float32 (N, 28, 28) in [0, 1], or a ValueError saying what is wrong."""
    x = np.asarray(images.get() if hasattr(images, "get") else images)  # cupy -> host
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) <= K:
        raise ValueError(f"images must be (N, 28, 28) or (N, 784) with N > {K}, got shape {x.shape}")
    if x.dtype == np.uint8:
        raise ValueError("images are uint8 pixels: convert with tinygan.data.mnist.to_unit(x) to floats in [0, 1]")
    x = x.astype(np.float32, copy=False)
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.01 or hi > 1.01:
        raise ValueError(f"images span [{lo:.3g}, {hi:.3g}], expected [0, 1]; "
                         "map tanh outputs in [-1, 1] with (x + 1) / 2")
    return x


def evaluate_images(images, requested=None, be=None, reference=None, data_dir=None, download=True, seed=0):
    """Score generated digits (float (N, 28, 28) in [0, 1]) against real MNIST; requested: (N,) digits asked for."""
    x = _check_images(images)
    ref = reference or load_reference(data_dir, be, download=download)
    probs, feats = _features(be or ref.be, ref.path, x)  # (N, 10), (N, 256)
    hist = metrics.class_histogram(probs)
    out = {"n": len(x), "full_mnist": ref.full, "reference": "test split" if ref.full else
           f"{len(ref.test_images):,} held-out digits of the bundled split", "test_score": None}
    out["fd"] = metrics.frechet_distance(*metrics.feature_stats(feats), ref.mu, ref.sigma)
    out["fd_floor"] = ref.fd_floor()
    out["class_hist"] = [float(h) for h in hist]
    out["entropy"] = metrics.normalized_entropy(hist)
    out["collapsed"] = bool(metrics.is_collapsed(hist))
    out["confidence"] = float(probs.max(axis=1).mean())
    out["cond_accuracy"] = None
    if requested is not None:
        req = np.asarray(requested.get() if hasattr(requested, "get") else requested).reshape(-1)
        if len(req) != len(x):
            raise ValueError(f"requested has {len(req)} labels for {len(x)} images; give one digit per image")
        out["cond_accuracy"] = float((probs.argmax(axis=1) == req).mean())
    out["precision"], out["recall"] = ref.precision_recall(feats)
    out["nn_dist_mean"] = float(metrics.nearest_distance(_subset(x, seed), ref.train_images).mean())
    out["nn_dist_real_test"] = ref.nn_real_test()
    return out


def _num(v, fmt="{:.3f}"):
    """A number formatted, or 'n/a' for None."""
    return "n/a" if v is None else fmt.format(v)


def format_table(result):
    """The result of evaluate_images as a short text table."""
    r = result
    hist = " ".join(f"{d}:{p:.2f}" for d, p in enumerate(r["class_hist"]))
    floor = _num(r["fd_floor"]) if r["full_mnist"] else "n/a (full MNIST not found)"
    against = "test set" if r.get("reference", "test split") == "test split" else "held-out"
    rows = [
        f"MNIST classifier evaluation, N = {r['n']}, against the {r.get('reference', 'test split')}",
        f"  FD vs {against + ' (features)':23s}{r['fd']:10.3f}   real train vs test floor: {floor}",
        f"  class histogram              {hist}",
        f"  entropy (normalized)         {r['entropy']:10.3f}   collapsed: {'YES' if r['collapsed'] else 'no'}",
        f"  confidence (mean top prob)   {r['confidence']:10.3f}",
        f"  conditional accuracy         {_num(r['cond_accuracy']):>10}",
        f"  precision / recall (k={K})    {r['precision']:10.3f} / {r['recall']:.3f}",
        f"  nearest train image (mean)   {r['nn_dist_mean']:10.3f}   real test images: {_num(r['nn_dist_real_test'])}",
    ]
    if r.get("test_score") is False:
        rows.append(f"  NOT a test score: {r.get('why_not', 'the GAN may have trained on these digits')}")
    return "\n".join(rows)


def trained_on(config):
    """What a GAN trained on, from its config's data record: 'mnist', 'bundled-train-part', 'bundled-all', 'custom'
    (a set of its own), or None when the checkpoint does not record it (written before runs recorded their data)."""
    data = config.get("data")
    if not isinstance(data, dict):
        return None
    return data.get("origin") if data.get("kind") == "mnist" else "custom"


def judge_test_score(result, trained_on):
    """Mark result['test_score']: True only if the GAN's training data (trained_on, as a run records it: 'mnist',
    'bundled-train-part', 'bundled-all', 'custom', or None if unrecorded) left out the digits it was scored on."""
    ok = trained_on == "mnist" or (trained_on == "bundled-train-part" and not result["full_mnist"])
    result["test_score"] = ok
    if not ok:
        result["why_not"] = {
            None: "the checkpoint does not record what it trained on (an older run); it may have trained on these digits",
            "bundled-all": "the GAN trained on all 10,000 bundled digits, these among them",
            "bundled-train-part": "the GAN trained on 8,000 digits of MNIST's test split (the bundled one), which "
                                  "the test set holds",
            "custom": "the GAN trained on a set of its own (--data), which may hold these digits",
        }.get(trained_on, f"the GAN trained on {trained_on!r}")
    return result


def evaluate_gan(gan, n=10000, data_dir=None, seed=0, progress=None):
    """Score n samples of a GAN (each digit equally often if conditional), drawn from noise of its own seed."""
    requested = np.arange(n) % 10 if gan.config["conditional"] else None
    if progress:
        progress(f"drawing {n:,} samples")
    live_rng = gan.be.rng
    gan.be.rng = gan.be.generator(seed)  # a generator of the same kind; training's random stream stays untouched
    try:
        images = gan.sample(n, requested)
    finally:
        gan.be.rng = live_rng
    if progress:
        progress("classifying them and comparing with real MNIST (features, precision/recall, nearest train images)")
    return evaluate_images(images, requested, be=gan.be, data_dir=data_dir)  # scored on the GAN's own backend
