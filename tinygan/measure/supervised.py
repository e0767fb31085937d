"""Supervised digit classifiers on the host's images: one training loop for the CAS score and self-training."""
import math

import numpy as np

from ..models.classifier import accuracy, build_classifier
from ..engine.losses import softmax_cross_entropy
from ..engine.optim import Adam


def fit(model, draw, steps, lr=1e-3, rng=None):
    """Train model for `steps` Adam steps on batches from draw(rng) -> (images (B, 784) in [0, 1], labels (B,))."""
    # The learning rate follows a cosine from lr to lr / 100, step by step.
    be, rng = model.be, rng if rng is not None else np.random.default_rng(0)
    opt = Adam(model.parameters(), lr=lr)
    model.train()
    for t in range(steps):
        opt.lr = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t / max(steps - 1, 1))))
        x, y = draw(rng)
        model.zero_grad()
        _, grad = softmax_cross_entropy(model.forward(be.asarray(x)), be.xp.asarray(y))
        model.backward(grad, input_grad=False)
        opt.step()
    return model.eval()


def shuffled(images, labels, batch):
    """A draw(rng) for fit: batches of `batch` rows, with replacement, as float32 (B, 784) in [0, 1]."""
    x = np.asarray(images).reshape(len(images), -1)
    scale = np.float32(1 / 255) if x.dtype == np.uint8 else np.float32(1)

    def draw(rng):
        i = rng.integers(0, len(x), batch)
        return x[i].astype(np.float32) * scale, np.asarray(labels)[i].astype(np.int64)
    return draw


def classification_accuracy_score(images, labels, test_images, test_labels, be, epochs=10, batch=128, seed=0):
    """Test accuracy of the project's classifier (784-512-256-10) trained only on the given labelled digits."""
    # Ravuri & Vinyals 2019: train on N generated digits, test on real ones; the same on N real digits is its ceiling.
    model = build_classifier(be)
    steps = max(1, epochs * len(images) // batch)
    fit(model, shuffled(images, labels, batch), steps, rng=np.random.default_rng(seed))
    test = np.asarray(test_images)
    return accuracy(model, test.astype(np.float32) / 255 if test.dtype == np.uint8 else test, test_labels)


CAS_EPOCHS = 10


def classification_accuracy(gan, n, data_dir=None, seed=0, epochs=CAS_EPOCHS):
    """{n, synthetic, real, epochs, test}: CAS of a conditional GAN's digits beside the same classifier on n real ones."""
    from ..data.augment import balanced_subset, experiment_split
    from ..engine.backend import Backend
    x, y, x_test, y_test, _ = experiment_split(data_dir)  # offline: the bundled split, halves kept apart
    per_class = min(-(-n // 10), int(np.bincount(y, minlength=10).min()))
    labels = np.arange(10 * per_class) % 10                  # every digit equally often, as the real subset
    live = gan.be.rng
    gan.be.rng = gan.be.generator(seed)  # its own noise: training's stream is untouched
    try:
        fake = gan.sample(len(labels), labels)               # (n, 28, 28) in [0, 1]
    finally:
        gan.be.rng = live
    real = balanced_subset(y, per_class, seed)
    be = Backend(gan.be.name, "float32", seed)
    return {"n": len(labels), "epochs": epochs, "test": len(y_test),
            "synthetic": classification_accuracy_score(fake, labels, x_test, y_test, be, epochs, seed=seed),
            "real": classification_accuracy_score(x[real], y[real], x_test, y_test, be, epochs, seed=seed)}
