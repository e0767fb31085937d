"""Augmentations (shift, rotation, elastic), the balanced subset, and a quick run of examples/augment_mnist.py."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tinygan.data import augment

ROOT = Path(__file__).resolve().parents[1]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def letter_f():
    """An asymmetric 28x28 image (an F), so every rotation and flip of it differs."""
    x = np.zeros((1, 28, 28))
    x[0, 6:22, 9:12] = 1.0   # stem
    x[0, 6:9, 9:20] = 1.0    # top bar
    x[0, 13:15, 9:17] = 0.5  # middle bar
    return x


def digits(n=8, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28)) * 255).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_shape_dtype_and_range_are_kept(dtype):
    x = digits()
    x = x if dtype == np.uint8 else (x / 255).astype(dtype)
    top = 255 if dtype == np.uint8 else 1.0
    rng = np.random.default_rng(1)
    for y in (augment.shift(x, 1.5, -2), augment.rotate(x, 33), augment.elastic(x, 34, 4, rng),
              augment.random_augment(x, rng)):
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.min() >= 0 and y.max() <= top


def test_zero_parameters_are_the_identity():
    x, rng = digits(), np.random.default_rng(0)
    assert np.array_equal(augment.shift(x, 0, 0), x)
    assert np.array_equal(augment.rotate(x, 0), x)
    assert np.array_equal(augment.elastic(x, 0.0, 4.0, rng), x)
    assert np.array_equal(augment.random_augment(x, rng, max_shift=0, max_degrees=0, alpha=0), x)


def test_rotation_by_90_matches_rot90():
    x = letter_f()
    np.testing.assert_allclose(augment.rotate(x, 90)[0], np.rot90(x[0]), atol=1e-9)  # counter-clockwise
    np.testing.assert_allclose(augment.rotate(x, -90)[0], np.rot90(x[0], -1), atol=1e-9)
    np.testing.assert_allclose(augment.rotate(x, 180)[0], np.rot90(x[0], 2), atol=1e-9)


def test_shift_moves_mass_as_expected():
    x = letter_f()
    s = augment.shift(x, 3, -2)  # down 3, left 2
    assert s.sum() == pytest.approx(x.sum())  # nothing falls off the edge here
    rows, cols = np.mgrid[:28, :28]
    centre = lambda im: ((im * rows).sum() / im.sum(), (im * cols).sum() / im.sum())
    (r0, c0), (r1, c1) = centre(x[0]), centre(s[0])
    assert (r1 - r0, c1 - c0) == (pytest.approx(3), pytest.approx(-2))
    np.testing.assert_array_equal(s[0, 3:, :26], x[0, :25, 2:])
    gone = augment.shift(x, 0, 28)  # moved fully out of the frame
    assert not gone.any()
    half = augment.shift(x, 0.5, 0)  # a sub-pixel shift keeps the mass and moves its centre by half a pixel
    assert half.sum() == pytest.approx(x.sum()) and centre(half[0])[0] - r0 == pytest.approx(0.5)


def test_per_image_parameters():
    x = np.repeat(letter_f(), 3, axis=0)
    y = augment.rotate(x, np.array([0.0, 90.0, 180.0]))
    np.testing.assert_allclose(y[0], x[0], atol=1e-9)
    np.testing.assert_allclose(y[1], np.rot90(x[0]), atol=1e-9)
    np.testing.assert_allclose(y[2], np.rot90(x[0], 2), atol=1e-9)


def test_elastic_field_is_smooth_and_scaled():
    rng = np.random.default_rng(0)
    f = augment.elastic_field(200, 28, 28, 34.0, 4.0, rng)  # (2, N, 28, 28)
    assert f.shape == (2, 200, 28, 28)
    assert 0.3 < f.std() < 5  # Simard's alpha=34, sigma=4: displacements of about a pixel
    assert np.abs(np.diff(f, axis=-1)).mean() < 0.25 * f.std()  # neighbours move together
    k = augment.gaussian_matrix(28, 4.0)
    assert k[14].sum() == pytest.approx(1.0)  # normalised away from the border


def test_balanced_subset_is_exact_and_reproducible():
    labels = np.random.default_rng(0).integers(0, 10, 5000)
    a = augment.balanced_subset(labels, 25, seed=7)
    assert len(a) == 250 and len(set(a)) == 250
    assert np.array_equal(np.bincount(labels[a], minlength=10), [25] * 10)
    assert np.array_equal(a, augment.balanced_subset(labels, 25, seed=7))
    assert not np.array_equal(a, augment.balanced_subset(labels, 25, seed=8))
    with pytest.raises(ValueError, match="fewer"):
        augment.balanced_subset(labels, 10_000, seed=0)


def test_quick_run_writes_table_plot_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYGAN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    script = load_script("augment_mnist")
    monkeypatch.setattr(script, "SHARED", tmp_path / "no-mnist")  # never the checkout-side full copy
    out = tmp_path / "out"
    script.main(["--quick", "--arms", "real,classic,gan,both,ssl,selftrain", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "OFFLINE" in printed  # the bundled-data split is said out loud
    raw = json.loads((out / "augment_results.json").read_text())
    assert raw["ns"] == [10] and raw["seeds"] == 1
    assert set(raw["accuracy"]["10"]) == {"real", "classic", "gan", "both", "ssl", "selftrain"}
    assert all(0 <= a[0] <= 1 for a in raw["accuracy"]["10"].values())
    assert "OFFLINE" in raw["note"] and raw["verdict"]
    md = (out / "augment_results.md").read_text()
    assert "| 10 (100) |" in md and "Runtime" in md and "Verdict" in md
    assert (out / "ssl" / "labels100_seed0" / "recognizer.npz").is_file(), "(e) comes from a train_ssl.py run"
    assert (out / "ssl_error_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    script.main(["--quick", "--arms", "ssl", "--out", str(out)])  # a finished (e) run is reused, not trained again
    assert "semi-supervised GAN:" not in capsys.readouterr().out
    assert (out / "augment_results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]
