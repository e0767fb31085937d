"""Shared fixtures: every array test runs once per backend; cupy skips, with its reason, without a GPU."""
import pytest

from tinygan.backend import Backend, BackendError

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
