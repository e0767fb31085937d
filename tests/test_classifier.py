"""The shipped MNIST classifier is accurate, and the evaluation tells a collapsed generator from real digits."""
from pathlib import Path

import numpy as np
import pytest

from tinygan.models import classifier
from tinygan.data import mnist as data
from tinygan.measure import evaluation
from tinygan.engine.backend import Backend

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"  # full MNIST beside the checkout, if any
DATA_DIR = str(SHARED) if SHARED.is_dir() else None  # None: the bundled t10k split (always shipped)


@pytest.fixture(scope="module")
def be():
    return Backend("numpy", "float32", seed=0)


@pytest.fixture(scope="module")
def test_split():
    x, y = data.load_mnist("test", data_dir=DATA_DIR, download=False, verbose=False)
    return data.to_unit(x), y  # (10000, 28, 28) float32, (10000,) uint8


@pytest.fixture(scope="module")
def reference(be):
    return evaluation.load_reference(DATA_DIR, be, download=False)


@pytest.fixture(scope="module")
def real_result(test_split, reference):
    x, y = test_split
    return evaluation.evaluate_images(x, requested=y, reference=reference)


def _jittered_copies(x, n, rng, s=2):
    """n images drawn from x, each shifted by up to s pixels and lightly noised."""
    # x: (M, 28, 28) -> (n, 28, 28) in [0, 1]
    pick = x[rng.integers(0, len(x), n)]
    pad = np.pad(pick, ((0, 0), (s, s), (s, s)))
    dy, dx = rng.integers(0, 2 * s + 1, n), rng.integers(0, 2 * s + 1, n)
    rows = (dy[:, None] + np.arange(28))[:, :, None]
    cols = (dx[:, None] + np.arange(28))[:, None, :]
    out = pad[np.arange(n)[:, None, None], rows, cols]
    return np.clip(out + 0.05 * rng.standard_normal(out.shape, dtype=np.float32), 0, 1)


def test_shipped_weights_reach_98_percent(be, test_split):
    x, y = test_split
    model = classifier.load_classifier(be)
    probs, feats = classifier.predict(model, x)
    assert probs.shape == (len(x), 10) and feats.shape == (len(x), classifier.SIZES[-2])
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    acc = float((probs.argmax(1) == y).mean())
    assert acc >= 0.98, f"shipped classifier: test accuracy {acc:.4f} < 0.98"
    # the flat (N, 784) layout gives the same answer as (N, 28, 28)
    np.testing.assert_allclose(classifier.predict(model, x[:64].reshape(64, -1))[0], probs[:64], rtol=1e-5, atol=1e-6)


def test_weights_are_small_float32():
    w = evaluation.load_classifier_weights()
    assert all(a.dtype == np.float32 for a in w.values())
    assert evaluation.WEIGHTS.stat().st_size < 5e6


def test_missing_or_corrupt_weights_name_the_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        evaluation.load_classifier_weights(missing)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        evaluation.load_classifier_weights(bad)


def test_real_digits_are_balanced_and_match_the_reference(real_result, reference):
    r = real_result
    assert not r["collapsed"] and r["entropy"] > 0.99
    assert r["cond_accuracy"] >= 0.98 and r["confidence"] > 0.95
    assert r["fd"] < 1e-3  # the test set against itself
    assert r["precision"] == pytest.approx(1.0) and r["recall"] == pytest.approx(1.0)
    assert abs(sum(r["class_hist"]) - 1) < 1e-9 and len(r["class_hist"]) == 10
    if reference.full:  # real test images are not copies of training images
        assert r["fd_floor"] > 0 and r["nn_dist_mean"] == pytest.approx(r["nn_dist_real_test"], rel=0.01)
    table = evaluation.format_table(r)
    assert len(table.splitlines()) <= 20 and max(map(len, table.splitlines())) <= 110


def test_collapsed_generator_is_flagged(test_split, reference, real_result):
    x, y = test_split
    fake = _jittered_copies(x[y == 3], 10000, np.random.default_rng(0))  # one digit, many near-copies
    r = evaluation.evaluate_images(fake, requested=np.full(len(fake), 3), reference=reference)
    real = real_result
    assert r["collapsed"] and r["entropy"] < 0.3
    assert r["class_hist"][3] > 0.9 and r["cond_accuracy"] > 0.9
    assert r["fd"] > 100 * max(real["fd"], 1e-3) and r["recall"] < 0.3
    if reference.full:
        assert r["fd"] > 5 * r["fd_floor"]


def test_bad_inputs_say_what_to_do(test_split, reference):
    x, _ = test_split
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        evaluation.evaluate_images(x[:100] * 2 - 1, reference=reference)
    with pytest.raises(ValueError, match="to_unit"):
        evaluation.evaluate_images((x[:100] * 255).astype(np.uint8), reference=reference)
    with pytest.raises(ValueError, match="one digit per image"):
        evaluation.evaluate_images(x[:100], requested=np.zeros(5), reference=reference)
