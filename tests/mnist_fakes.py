"""A tiny fake MNIST for the data tests: isolation from the user's cache and network, raw IDX bytes, writing a set."""
import gzip
import hashlib
import os

import numpy as np
import pytest

from tinygan import data

idx = data.idx_bytes


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Never touch the real user cache or the network: HOME and XDG_CACHE_HOME in tmp, offline."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TINYGAN_OFFLINE", "1")
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    monkeypatch.setattr(data, "MIRRORS", ())  # belt and braces: no default mirror is ever tried


@pytest.fixture
def fake(monkeypatch):
    """A tiny synthetic MNIST (5 train, 3 test images) as raw IDX bytes; MD5 table patched to match."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 5),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3),
    }
    raw = {n: idx(a) for n, a in arrays.items()}
    for n, b in raw.items():
        monkeypatch.setitem(data.MD5, n, hashlib.md5(b).hexdigest())
    return raw


def write_set(d, raw, gz=True):
    """Write the four files into d, gzipped or raw."""
    d.mkdir(parents=True, exist_ok=True)
    for n, b in raw.items():
        (d / (n + ".gz" if gz else n)).write_bytes(gzip.compress(b) if gz else b)
    return d


def names_in(d):
    """The sorted file names in folder d (none if it does not exist)."""
    return sorted(os.listdir(d)) if d.exists() else []
