"""The CuPy branches of the backend and Adam, run on any machine through a stand-in `cupy` built on numpy.

The stand-in is not CuPy: it checks that the engine calls CuPy's API as intended (generator, transfers,
stream, whole-buffer Adam) where no GPU is available. Real CuPy runs the array tests of every other file
through the `cupy` backend fixtures when a GPU is present.
"""
import json
import sys
import types

import numpy as np
import pytest

import tinygan as tg
import tinygan.engine.backend as backend
from tinygan.engine.backend import Backend, BackendError


class DeviceArray(np.ndarray):
    """numpy memory standing in for device memory; get() returns a host copy, as cupy.ndarray.get() does."""

    def get(self):
        return np.array(self)


DeviceArray.__module__ = "cupy"  # what xp_of looks at


def device(a):
    return np.asarray(a).view(DeviceArray)


class RandomState:
    """cupy.random.RandomState's methods used by the backend, drawn from numpy's legacy generator."""

    def __init__(self, seed):
        self.seed, self.rs = seed, np.random.RandomState(seed)

    def standard_normal(self, size, dtype):
        assert dtype in (np.float32, np.float64), "the backend always asks for its dtype"
        return device(self.rs.standard_normal(size).astype(dtype))

    def random_sample(self, size, dtype):
        assert dtype in (np.float32, np.float64), "the backend always asks for its dtype"
        return device(self.rs.random_sample(size).astype(dtype))

    def randint(self, low, high, size):
        raise AssertionError("cupy's randint reads back to the host unless high is a power of two")


def fake_cupy(devices=1, error=None):
    """A module named cupy: numpy's functions (new arrays on the 'device'), a CUDA runtime and a stream."""
    cp = types.ModuleType("cupy")
    cp.__getattr__ = lambda name: getattr(np, name)  # everything else is numpy's
    for name in ("array", "asarray", "zeros", "empty", "eye", "arange", "concatenate"):
        cp.__dict__[name] = (lambda f: lambda *a, **k: device(f(*a, **k)))(getattr(np, name))
    cp.random = types.SimpleNamespace(RandomState=RandomState)

    def count():
        if error is not None:
            raise error
        return devices
    cp.syncs = []
    stream = types.SimpleNamespace(synchronize=lambda: cp.syncs.append(1))
    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count),
                                    get_current_stream=lambda: stream)
    return cp


@pytest.fixture
def cupy(monkeypatch):
    """Install the stand-in as `cupy` for one test (and forget the modules xp_of has cached)."""
    def install(**kw):
        cp = fake_cupy(**kw)
        monkeypatch.setitem(sys.modules, "cupy", cp)
        monkeypatch.setattr(backend, "_modules", {})
        return cp
    return install


def test_without_cupy_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    with pytest.raises(BackendError) as e:
        Backend("cupy")
    assert str(e.value) == (
        "backend 'cupy': CuPy is not installed. Install the extra that matches your CUDA toolkit: pip install "
        "'tinygan[cuda12]' (cupy-cuda12x) or 'tinygan[cuda13]' (cupy-cuda13x).")


@pytest.mark.parametrize("error, why", [
    (RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected\nat line 2"),
     " (RuntimeError: cudaErrorNoDevice: no CUDA-capable device is detected)"),
    (OSError(), " (OSError: no detail)"),
    (None, ""),
])
def test_cupy_without_a_device_is_one_clear_line(cupy, error, why):
    cupy(devices=0, error=error)
    with pytest.raises(BackendError) as e:
        Backend("cupy")
    assert str(e.value) == (
        f"backend 'cupy': CuPy is installed but no CUDA device is visible{why}. "
        "Run on a machine with an NVIDIA GPU and driver, or use --backend numpy.")


def test_draws_come_from_cupys_generator_on_the_device(cupy):
    cupy()
    be = Backend("cupy", "float32", seed=3)
    assert be.xp is sys.modules["cupy"] and be.dtype == np.float32 and repr(be) == "Backend('cupy', dtype='float32', seed=3)"
    ref = np.random.RandomState(3)
    z = be.randn(2, 3)
    assert type(z) is DeviceArray and z.dtype == np.float32
    assert np.array_equal(z, ref.standard_normal((2, 3)).astype(np.float32))
    out = be.zeros(4, 2)
    assert be.randn(out=out) is out and np.array_equal(out, ref.standard_normal((4, 2)).astype(np.float32))
    assert np.array_equal(be.rand(5), ref.random_sample(5).astype(np.float32))
    out = be.zeros(3)
    assert be.rand(out=out) is out and np.array_equal(out, ref.random_sample(3).astype(np.float32))
    idx = be.randint(10, 6)  # floor(u * 10) from the device's uniforms, never cupy's randint
    assert type(idx) is DeviceArray and idx.dtype == np.int64
    assert np.array_equal(idx, np.floor(ref.random_sample(6) * 10).astype(np.int64))


def test_device_integers_cover_the_range_evenly(cupy):
    cupy()
    idx = np.asarray(Backend("cupy", "float32", seed=0).randint(60000, 600000))
    assert idx.min() == 0 and idx.max() == 59999
    counts = np.bincount(idx // 6000, minlength=10)  # ten bins of 60,000 / 10 values: about 60,000 each
    assert np.abs(counts - 60000).max() < 5 * np.sqrt(60000)
    u = 1 - 2.0 ** -53  # the largest float64 below 1 maps inside the range
    assert all(int(u * high) == high - 1 for high in (10, 60000, 2 ** 31 - 1, 2 ** 52 + 1))


def test_generator_state_on_cupy_is_the_seed(cupy):
    cupy()
    be = Backend("cupy", "float64", seed=5)
    assert json.loads(be.rng_state()) == {"cupy_seed": 5}
    be.rand(3)
    be.set_rng_state(be.rng_state(), reseed=12)
    assert be.rng.seed == 12 and np.array_equal(be.rand(2), np.random.RandomState(12).random_sample(2))
    be.set_rng_state(be.rng_state())
    assert be.rng.seed == 5


def test_transfers_and_sync(cupy):
    cp = cupy()
    be = Backend("cupy", "float64")
    a = be.asarray(np.arange(12.0).reshape(4, 3))
    assert type(a) is DeviceArray
    out = be.zeros(2, 3)
    assert be.take_rows(a, be.xp.asarray([3, 1]), out) is out and np.array_equal(out, [[9, 10, 11], [3, 4, 5]])
    host = be.to_host(a)
    assert type(host) is np.ndarray and np.array_equal(host, np.arange(12.0).reshape(4, 3))
    assert be.sync() is None and cp.syncs == [1], "sync waits on the current stream"
    assert backend.xp_of(a) is cp and backend.xp_of(np.zeros(1)) is np


def test_adam_on_the_gpu_updates_whole_buffers_and_saves_host_arrays(cupy):
    cupy()
    be = Backend("cupy", "float64")
    big = (be.zeros(tg.Adam.cpu_chunk * 2 + 5), be.zeros(tg.Adam.cpu_chunk * 2 + 5) + 0.5)
    small = (be.zeros(3), be.zeros(3) + 1.0)
    opt = tg.Adam([big, small], lr=0.1)
    assert [len(c[0]) for c in opt.chunks] == [tg.Adam.cpu_chunk * 2 + 5, 3], "one chunk per buffer on a GPU"
    opt.step()
    assert np.allclose(be.to_host(big[0]), -0.1) and np.allclose(be.to_host(small[0]), -0.1)
    state = opt.state_dict()
    assert all(type(state[k]) is np.ndarray for k in ("m.0", "v.0", "m.1", "v.1")) and np.allclose(state["m.0"], 0.05)
    sgd = tg.SGD([small], lr=0.1, momentum=0.5)
    sgd.step()
    assert type(sgd.state_dict()["velocity.0"]) is np.ndarray
    cpu = tg.Adam([(np.zeros(tg.Adam.cpu_chunk * 2 + 5), np.zeros(tg.Adam.cpu_chunk * 2 + 5))])
    assert [len(c[0]) for c in cpu.chunks] == [tg.Adam.cpu_chunk, tg.Adam.cpu_chunk, 5], "chunks on the CPU"


def test_a_training_step_runs_on_the_device_arrays(cupy):
    cupy()
    be = Backend("cupy", "float32", seed=0)
    from tinygan.models.gan import GAN, IMAGE, make_config
    gan = GAN(make_config("deep", conditional=True, g_hidden=[8], d_hidden=[8], latent_dim=4), be)
    stats = gan.step(be.rand(6, IMAGE) * 2 - 1, be.randint(10, 6))
    assert all(np.isfinite(float(v)) for v in stats.values())
    assert type(gan.G.flat_params) is DeviceArray and type(gan.sample(3)) is np.ndarray
