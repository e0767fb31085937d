"""Data sources: image folders (decoded with Pillow, MNIST's preprocessing, a decode cache), IDX sets of any
size, .npz; and each kind of bad input as one clear error."""
import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from tinygan.data import images as imgs
from tinygan.data import sources
from tinygan.data.idx import write_idx
from tinygan.data.mnist import ChecksumError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def digits(n=12, seed=0, size=28):
    """n small 'digits': a bright bar at a random place on black, uint8 (n, size, size)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        r, c = rng.integers(3, size - 12, 2)
        x[i, r:r + 10, c:c + 3] = rng.integers(150, 256)
    return x


def folders(root, x, y, names="ab"):
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / names[label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    return root


def test_class_folders_sorted_lossless_without_normalising_and_non_images_counted(tmp_path):
    x, y = digits(), np.arange(12) % 2
    root = folders(tmp_path / "set", x, y)
    (root / "a" / "README.txt").write_text("notes")
    s = sources.class_folders(root, normalize=False)
    assert s.classes == ["a", "b"] and s.skipped == 1
    order = np.argsort([f"{'ab'[c]}/{i}.png" for i, c in enumerate(y)], kind="stable")
    assert np.array_equal(s.x, x[order]) and np.array_equal(s.y, y[order])  # bit-identical to the arrays


def test_normalising_an_mnist_digit_gives_it_back():
    from tinygan.data.mnist import bundled_dir, read_idx
    x = read_idx(os.path.join(bundled_dir(), "t10k-images-idx3-ubyte.gz"))[:100]
    n = np.stack([imgs.normalize(g / 255) for g in x]).astype(float)
    assert np.abs(n - x).mean() / 255 < 0.005  # MNIST's own preprocessing, so (almost) a fixed point


def test_a_scan_is_normalised_like_mnist(tmp_path):
    page = np.full((80, 60), 230, np.uint8)
    page[20:50, 25:31] = 20  # a dark vertical stroke on light paper, off-centre
    g = imgs.normalize(page / 255)
    assert g.shape == (28, 28) and g[0].max() == 0 and g.max() >= 250       # ink bright on black
    rows, cols = np.flatnonzero(g.any(1)), np.flatnonzero(g.any(0))
    assert rows[-1] - rows[0] + 1 in (20, 21, 22)                               # the longer side is 20 px
    m = g.astype(float) / g.sum()
    assert abs(m.sum(1) @ np.arange(28) - 14) < 1 and abs(m.sum(0) @ np.arange(28) - 14) < 1


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "P", "LA", "RGB"])
def test_16_bit_rgba_and_palette_pngs_are_converted(tmp_path, mode):
    g = np.zeros((28, 28), np.uint8)
    g[5:20, 10:14] = np.arange(60, 240, 12)[:, None]  # shades of gray, not only black and white
    base = Image.fromarray(g)
    if mode == "I;16":
        im = Image.fromarray(g.astype(np.uint16) * 257)
    elif mode == "RGBA":  # white ink on transparent: laid on black, not on white
        white = Image.new("L", (28, 28), 255)
        im = Image.merge("RGBA", [white, white, white, base])
    elif mode == "LA":
        im = Image.merge("LA", [Image.new("L", (28, 28), 0), base])  # black ink drawn in the alpha channel
    else:
        im = base.convert(mode)
    im.save(tmp_path / "x.png")
    got = imgs.decode(tmp_path / "x.png")
    want = 1 - g / 255 if mode == "LA" else g / 255  # dark ink on the paper it is laid on
    assert np.abs(got - want).max() <= 1.5 / 255, mode


def test_the_decode_cache_is_used_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    root = folders(tmp_path / "set", digits(), np.arange(12) % 2)
    first = sources.class_folders(root)
    calls = []
    real = imgs.decode
    monkeypatch.setattr(imgs, "decode", lambda p: calls.append(p) or real(p))
    assert np.array_equal(sources.class_folders(root).x, first.x) and calls == []
    f = root / "a" / "0.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(f)
    os.utime(f, ns=(1, 1))
    sources.class_folders(root)
    assert len(calls) == 12
    assert list((tmp_path / "cache" / "tinygan" / "decoded").glob("*.npz"))


@pytest.mark.parametrize("make, words", [
    (lambda r: (r / "a" / "0.png").write_bytes((r / "a" / "0.png").read_bytes()[:60]), "0.png: cannot read this image"),
    (lambda r: (r / "c").mkdir(), "the class folder holds no images"),
    (lambda r: [os.unlink(p) for p in (r / "b").iterdir()] and os.rmdir(r / "b"), "only one class"),
    (lambda r: os.mkdir(os.path.join(os.fsencode(r), b"\xff\xfe")) or Image.fromarray(digits(1)[0]).save(
        os.path.join(os.fsencode(r), b"\xff\xfe", b"1.png")), "is not valid UTF-8"),
    (lambda r: Image.fromarray(np.zeros((30, 28), np.uint8)).save(r / "a" / "9.png"), "every image must have one size"),
])
def test_bad_folders_are_one_clear_error(tmp_path, make, words):
    root = folders(tmp_path / "set", digits(), np.arange(12) % 2)
    make(root)
    with pytest.raises((sources.DataSourceError, imgs.ImageError)) as e:
        sources.class_folders(root, normalize=False)
    assert words in str(e.value)


def test_a_labels_file_naming_a_missing_file_or_an_unknown_class(tmp_path):
    folders(tmp_path / "set", digits(2), [0, 1])
    lab = tmp_path / "labels.csv"
    lab.write_text("a/0.png,a\nmissing.png,b\n")
    with pytest.raises(sources.DataSourceError, match="line 2 names missing.png, which is not a file"):
        sources.read_labels_file(lab, tmp_path / "set")
    lab.write_text("a/0.png,z\n")
    with pytest.raises(sources.DataSourceError, match="class 'z', which is not one of a, b"):
        sources.read_labels_file(lab, tmp_path / "set", ["a", "b"])


def idx_set(folder, x, y, sums=True, prefix="letters"):
    folder.mkdir()
    write_idx(folder / f"{prefix}-train-images-idx3-ubyte", x)
    write_idx(folder / f"{prefix}-train-labels-idx1-ubyte", y)
    if sums:
        lines = [f"{hashlib.md5((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in sorted(os.listdir(folder))]
        (folder / "MD5SUMS").write_text("".join(lines))
    return folder


def test_an_idx_set_of_any_size_and_classes_transposed_with_an_offset(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 16, 20), dtype=np.uint8)
    y = (np.arange(30) % 26 + 1).astype(np.uint8)  # labels 1..26, as EMNIST letters
    kind, sets = sources.load_sets(idx_set(tmp_path / "emnist", x, y), transpose=True, label_offset=1)
    s = sets["train"]
    assert kind == "idx" and s.x.shape == (30, 20, 16) and np.array_equal(s.x, x.transpose(0, 2, 1))
    assert s.y.min() == 0 and s.y.max() == 25 and len(s.classes) == 26
    _, plain = sources.load_sets(idx_set(tmp_path / "nosums", x, y, sums=False))  # no MD5SUMS: fine
    assert plain["train"].x.shape == (30, 16, 20)
    (tmp_path / "emnist" / "letters-train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + bytes(12) + bytes(30))
    with pytest.raises(ChecksumError):  # an MD5SUMS present is checked
        sources.load_sets(tmp_path / "emnist")


def test_an_npz_with_float_images_and_a_bad_one(tmp_path):
    x = digits(6).astype(np.float32) / 255
    np.savez(tmp_path / "ok.npz", x=x, y=np.arange(6) % 3)
    kind, sets = sources.load_sets(tmp_path / "ok.npz")
    assert kind == "npz" and sets["train"].x.dtype == np.uint8 and np.array_equal(sets["train"].x, digits(6))
    np.savez(tmp_path / "bad.npz", x=x * 2, y=np.arange(6) % 3)
    with pytest.raises(sources.DataSourceError, match="must lie in"):
        sources.load_sets(tmp_path / "bad.npz")
