"""Tests for tinygan.data.mnist: IDX parsing, checksums and stamps, mirrors on a local server, fallback."""
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mnist_fakes import idx, names_in, write_set
from tinygan.data import mnist as data

pytestmark = pytest.mark.usefixtures("isolated")  # no user cache, no network (conftest.py)

SHARED = Path(__file__).resolve().parents[2] / "shared/data/mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_raw_files_are_checked_by_content(fake, tmp_path):
    d = write_set(tmp_path / "raw", fake, gz=False)
    assert data.find_mnist(d) == str(d)
    p = d / "train-images-idx3-ubyte"
    st = os.stat(p)
    blob = bytearray(p.read_bytes())
    blob[100] ^= 0xFF  # one flipped pixel; size and mtime restored
    p.write_bytes(bytes(blob))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(data.ChecksumError, match="checksum mismatch"):
        data.load_mnist(data_dir=d)


def test_a_folder_with_md5sums_is_a_set_of_its_own(tmp_path):
    d = tmp_path / "synthetic"
    d.mkdir()
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    data.write_idx(d / "train-images-idx3-ubyte", images)
    data.write_idx(d / "train-labels-idx1-ubyte", labels)
    (d / "MD5SUMS").write_text("".join(f"{hashlib.md5((d / n).read_bytes()).hexdigest()}  {n}\n"
                                       for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")))
    x, y = data.load_mnist("train", data_dir=d, verbose=False)
    assert np.array_equal(x, images) and np.array_equal(y, labels)
    with pytest.raises(data.DataNotFoundError, match="holds its own IDX set .* without the test files"):
        data.load_mnist("test", data_dir=d)
    data.write_idx(d / "train-labels-idx1-ubyte", (labels + 1) % 10)  # changed after its MD5 was written
    with pytest.raises(data.ChecksumError, match="MD5SUMS"):
        data.load_mnist("train", data_dir=d)


# --- stamps ---

def test_stamp_skips_hash_until_file_changes(fake, tmp_path, monkeypatch):
    d = write_set(tmp_path / "d", fake)
    p = d / "train-labels-idx1-ubyte.gz"
    data.verify(p, "train-labels-idx1-ubyte")
    assert (d / ".train-labels-idx1-ubyte.gz.md5ok").is_file()

    def boom(path, *args):
        raise AssertionError("hashed again")
    monkeypatch.setattr(data, "_md5", boom)
    data.verify(p, "train-labels-idx1-ubyte")  # stamp hit: no hash
    os.utime(p, ns=(0, 12345))
    with pytest.raises(AssertionError, match="hashed again"):
        data.verify(p, "train-labels-idx1-ubyte")


def test_stamp_goes_to_cache_when_dir_read_only(fake, tmp_path):
    d = write_set(tmp_path / "ro", fake)
    d.chmod(0o555)
    try:
        data.find_mnist(d)
        assert not any(n.endswith(".md5ok") for n in os.listdir(d))
        assert len(os.listdir(tmp_path / "xdg" / "tinygan" / "stamps")) == 4
    finally:
        d.chmod(0o755)


def test_stamp_write_failure_is_harmless(fake, tmp_path, monkeypatch):
    d = write_set(tmp_path / "d", fake)

    def fail(path, b):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(data, "_atomic_write", fail)
    assert data.find_mnist(d) == str(d)


# --- offline fallback ---

@pytest.mark.parametrize("split", ["train", "test"])
def test_offline_fallback_to_bundled(split, capsys):
    # Offline the bundled t10k split is cut in two: 8,000 digits to train on, 2,000 held out to score on (one line).
    x, y = data.load_mnist(split)
    n = 8000 if split == "train" else 2000
    assert x.shape == (n, 28, 28) and y.shape == (n,) and x.dtype == y.dtype == np.uint8
    x_all, y_all = data.load_mnist(split, hold_out=False, verbose=False)
    assert np.array_equal(x, x_all[:8000] if split == "train" else x_all[8000:])
    assert np.bincount(y_all, minlength=10).tolist() == TEST_COUNTS
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err  # one line
    assert "bundled" in err[0] and "TINYGAN_OFFLINE" in err[0] and "held out" in err[0]
    assert "--data" in err[0] and "TINYGAN_DATA" in err[0] and "TINYGAN_REQUIRE_FULL" in err[0]
    assert ("TRAINING" in err[0]) == (split == "train")
    assert data.find_mnist() is None


def test_offline_train_and_test_never_share_a_digit(capsys):
    train, test = data.load_mnist("train", verbose=False), data.load_mnist("test", verbose=False)
    assert train.source == test.source == "bundled" and not train.same_images and train.held_out == 2000
    seen = {im.tobytes() for im in train[0]}
    assert not any(im.tobytes() in seen for im in test[0])
    both = data.load_mnist("train", hold_out=False)  # the caller asked for all 10,000: told they are the test digits
    assert both.same_images and len(both[0]) == 10000
    assert "train and test are the SAME 10,000 bundled digits" in capsys.readouterr().err


def test_download_false_falls_back(monkeypatch, capsys):
    monkeypatch.delenv("TINYGAN_OFFLINE")
    assert data.load_mnist(download=False, verbose=False)[0].shape == (8000, 28, 28)  # 2,000 held out
    assert capsys.readouterr().err == ""


def test_bundled_files_present():
    names = set(os.listdir(data.bundled_dir()))
    assert {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "README.md"} <= names


# --- every error names the file and says what to do ---

def test_error_truncated(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(idx(np.zeros((2, 28, 28)))[:-10])
    with pytest.raises(data.IDXFormatError, match="truncated") as e:
        data.read_idx(p)
    assert str(p) in str(e.value) and "download it again" in str(e.value)


def test_error_wrong_magic(tmp_path):
    p = tmp_path / "train-labels-idx1-ubyte"
    p.write_bytes(idx(np.zeros((2, 28, 28))))  # an images file under a labels name: ndim 3, not 1
    with pytest.raises(data.IDXFormatError, match="wrong magic number 00 00 08 03, expected 00 00 08 01") as e:
        data.read_idx(p)
    assert str(p) in str(e.value)
    p.write_bytes(b"\x12\x34" + idx([1, 2])[2:])
    with pytest.raises(data.IDXFormatError, match="magic"):
        data.read_idx(p)


def test_error_html_saved_as_gz(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(b"\n<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>")
    with pytest.raises(data.IDXFormatError, match="HTML page") as e:
        data.read_idx(p)
    assert str(p) in str(e.value)


def test_error_corrupt_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(idx(np.arange(100)))[:-12])
    with pytest.raises(data.IDXFormatError, match="corrupt gzip") as e:
        data.read_idx(p)
    assert str(p) in str(e.value)


def test_error_label_out_of_range(tmp_path):
    p = tmp_path / "t10k-labels-idx1-ubyte"
    p.write_bytes(idx([1, 2, 10]))
    with pytest.raises(data.IDXFormatError, match=r"label 10 at index 2, expected digits 0\.\.9"):
        data.read_idx(p)


def test_error_checksum_mismatch(fake, tmp_path, monkeypatch):
    d = write_set(tmp_path / "d", fake)
    monkeypatch.setitem(data.MD5, "t10k-labels-idx1-ubyte", "0" * 32)
    with pytest.raises(data.ChecksumError, match="checksum mismatch") as e:
        data.load_mnist(data_dir=d)
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value) and "0" * 32 in str(e.value)


def test_error_missing_directory_and_files(fake, tmp_path, monkeypatch):
    with pytest.raises(data.DataNotFoundError, match="no such directory") as e:
        data.load_mnist(data_dir=tmp_path / "nope")
    assert "nope" in str(e.value)
    d = write_set(tmp_path / "d", {k: v for k, v in fake.items() if "train" not in k})
    with pytest.raises(data.DataNotFoundError, match="missing train-images-idx3-ubyte"):
        data.find_mnist(d)
    monkeypatch.setenv("TINYGAN_DATA", str(tmp_path / "gone"))
    with pytest.raises(data.DataNotFoundError, match=r"\$TINYGAN_DATA .*gone: no such directory"):
        data.load_mnist()


def test_error_cache_not_writable(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(data.MNISTDataError, match="cannot write to the MNIST cache") as e:
        data.download_mnist(data.cache_dir() / "mnist", mirrors=["http://127.0.0.1:9/"])
    assert str(blocker) in str(e.value)
    monkeypatch.delenv("TINYGAN_OFFLINE")
    x, _ = data.load_mnist(mirrors=["http://127.0.0.1:9/"])  # falls back, and says why
    err = capsys.readouterr().err.splitlines()
    assert x.shape[0] == 8000 and len(err) == 1 and "cannot write to the MNIST cache" in err[0]


def test_exception_hierarchy():
    assert issubclass(data.IDXFormatError, data.MNISTDataError) and issubclass(data.IDXFormatError, ValueError)
    assert issubclass(data.ChecksumError, data.MNISTDataError)
    assert issubclass(data.DataNotFoundError, data.MNISTDataError)


def test_scaling():
    x = np.array([0, 128, 255], np.uint8)
    assert data.to_unit(x).dtype == data.to_signed(x).dtype == np.float32
    np.testing.assert_allclose(data.to_unit(x), [0, 128 / 255, 1], rtol=1e-6)
    np.testing.assert_allclose(data.to_signed(x), [-1, 128 / 127.5 - 1, 1], rtol=1e-6, atol=1e-7)


# --- property-based: the parser round-trips and fails only with IDXFormatError ---

arrays = hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6))
fast = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fast
@given(a=arrays, gz=st.booleans())
def test_roundtrip(tmp_path, a, gz):
    p = tmp_path / "x.idx"
    p.write_bytes(gzip.compress(idx(a)) if gz else idx(a))
    b = data.read_idx(p)
    assert b.dtype == np.uint8 and b.shape == a.shape and np.array_equal(a, b)


def raises_only_idx_error(tmp_path, blob, strict):
    """Read blob as a file; any failure must be IDXFormatError (and there must be one if strict)."""
    p = tmp_path / "t10k-labels-idx1-ubyte"  # a labels name: the 0..9 check runs as well
    p.write_bytes(blob)
    try:
        data.read_idx(p)
    except data.IDXFormatError:
        return
    assert not strict, "corrupt file was accepted"


labels = hnp.arrays(np.uint8, st.integers(0, 40), elements=st.integers(0, 9))


@fast
@given(a=labels, gz=st.booleans(), cut=st.floats(0, 1, exclude_max=True))
def test_truncation_raises(tmp_path, a, gz, cut):
    blob = gzip.compress(idx(a)) if gz else idx(a)
    raises_only_idx_error(tmp_path, blob[: int(cut * len(blob))], strict=True)


@fast
@given(a=labels, gz=st.booleans(), junk=st.binary(min_size=1, max_size=20))
def test_appended_junk_raises(tmp_path, a, gz, junk):
    raises_only_idx_error(tmp_path, (gzip.compress(idx(a)) if gz else idx(a)) + junk, strict=not gz)


@fast
@given(a=labels, gz=st.booleans(), flips=st.lists(st.tuples(st.integers(0, 11), st.integers(1, 255)), min_size=1, max_size=4))
def test_header_flips_raise_only_idx_error(tmp_path, a, gz, flips):
    blob = bytearray(gzip.compress(idx(a)) if gz else idx(a))
    for i, x in flips:
        blob[i % len(blob)] ^= x
    raises_only_idx_error(tmp_path, bytes(blob), strict=False)


@fast
@given(blob=st.one_of(st.binary(max_size=64), st.binary(max_size=64).map(lambda b: b"\x1f\x8b" + b),
                      st.binary(max_size=64).map(lambda b: b"\x00\x00\x08\x01" + b)))
def test_random_bytes_raise_only_idx_error(tmp_path, blob):
    raises_only_idx_error(tmp_path, blob, strict=False)


# --- the real thing, when the full data set sits beside the checkout ---

@pytest.mark.skipif(not SHARED.is_dir(), reason=f"full MNIST not found at {SHARED}")
def test_full_mnist_from_shared_dir():
    before = names_in(SHARED)
    assert data.find_mnist(SHARED) == str(SHARED)
    for split, n, counts in (("train", 60000, TRAIN_COUNTS), ("test", 10000, TEST_COUNTS)):
        x, y = data.load_mnist(split, data_dir=SHARED)
        assert x.shape == (n, 28, 28) and y.shape == (n,) and x.dtype == y.dtype == np.uint8
        assert np.bincount(y, minlength=10).tolist() == counts
    for name, want in data.MD5.items():  # checked independently of tinygan's own reader
        raw = SHARED / name
        blob = raw.read_bytes() if raw.is_file() else gzip.decompress((SHARED / (name + ".gz")).read_bytes())
        assert hashlib.md5(blob).hexdigest() == want
    assert names_in(SHARED) == before  # a read-only data dir is left as it was (stamps go to the cache)
