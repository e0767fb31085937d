"""Shared fixtures: every array test runs once per backend; cupy skips, with its reason, without a GPU."""
import hashlib
from collections import Counter

import numpy as np
import pytest

from tinygan.data import mnist as data
from tinygan.engine.backend import Backend, BackendError

BACKENDS = ["numpy", "cupy"]


def make_backend(name, dtype="float32", seed=0):
    """A Backend, or a pytest skip that carries the reason it cannot run here."""
    try:
        return Backend(name, dtype, seed)
    except BackendError as e:
        pytest.skip(str(e))


@pytest.fixture(params=BACKENDS)
def be64(request):
    """A float64 backend, for gradient checks and oracles."""
    return make_backend(request.param, "float64", seed=0)


@pytest.fixture(params=BACKENDS)
def be32(request):
    """A float32 backend, the default for training."""
    return make_backend(request.param, "float32", seed=0)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """The bundled test split only: no network, no user cache, no $TINYGAN_DATA, no full-set requirement."""
    monkeypatch.setenv("TINYGAN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    monkeypatch.delenv("TINYGAN_REQUIRE_FULL", raising=False)


@pytest.fixture
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
    raw = {n: data.idx_bytes(a) for n, a in arrays.items()}
    for n, b in raw.items():
        monkeypatch.setitem(data.MD5, n, hashlib.md5(b).hexdigest())
    return raw


def pytest_terminal_summary(terminalreporter):
    """One line per skip reason, with its count (pytest.ini's -r leaves skips out: 141 lines repeated one hint)."""
    reasons = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    for reason, n in reasons.most_common():
        terminalreporter.write_line(f"SKIPPED {n} test{'s' if n > 1 else ''}: {reason}")
