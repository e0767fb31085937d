"""Backend(rng="philox"): the counter-based stream a CUDA graph can replay, exact in checkpoints on any backend."""
import json

import numpy as np
import pytest

from conftest import BACKENDS
from tinygan.engine import philox
from tinygan.engine.backend import Backend, BackendError
from tinygan.models.checkpoint import load_checkpoint, save_checkpoint
from tinygan.models.gan import GAN, Dataset, make_config


def philox_backend(name, dtype="float32", seed=5):
    try:
        return Backend(name, dtype, seed, rng="philox")
    except BackendError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_draws_are_the_reference_stream_in_order(name, dtype):
    be = philox_backend(name, dtype)
    z, u, k = be.randn(3, 5), be.rand(7), be.randint(60000, 9)
    out = be.zeros(2, 2)
    assert be.randn(out=out) is out
    first = 0
    ref_z, used = philox.normal(np, 5, first, 15, dtype)
    first += used
    ref_u, used = philox.uniform(np, 5, first, 7, dtype)
    first += used
    ref_k, used = philox.integers(np, 5, first, 60000, 9)
    first += used
    ref_out, used = philox.normal(np, 5, first, 4, dtype)
    first += used
    for what, ours, ref in [("randn", z.reshape(-1), ref_z), ("rand", u, ref_u), ("randint", k, ref_k),
                            ("randn(out=)", out.reshape(-1), ref_out)]:
        assert np.array_equal(be.to_host(ours), ref), what
    assert z.dtype == u.dtype == np.dtype(dtype) and k.dtype == np.int64
    assert json.loads(be.rng_state()) == {"philox_key": 5, "counter": first}
    assert repr(be) == f"Backend({name!r}, dtype={dtype!r}, seed=5, rng='philox')"


def test_unknown_generator_is_one_clear_error():
    with pytest.raises(BackendError, match="unknown generator 'xorwow': choose 'default' or 'philox'"):
        Backend("numpy", rng="xorwow")


@pytest.mark.parametrize("name", BACKENDS)
def test_resume_from_a_checkpoint_continues_the_stream_exactly(name, tmp_path):
    config = make_config("deep", conditional=True, g_hidden=[16], d_hidden=[16], batch_size=8, d_dropout=0.2)
    images = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)

    def run(steps, gan=None):
        be = gan.be if gan else philox_backend(name)
        gan = gan or GAN(config, be)
        data = Dataset(images, np.arange(50) % 10, be, config["data_range"])
        for _ in range(steps):
            gan.step(*data.sample(8))
        return gan

    straight = run(6)
    first = run(3)
    save_checkpoint(str(tmp_path / "ck.npz"), first)
    resumed = GAN(config, philox_backend(name, seed=99))
    load_checkpoint(str(tmp_path / "ck.npz"), resumed)  # the saved stream position wins over the seed
    run(3, resumed)
    for what in ("G", "D"):
        a, b = getattr(straight, what).flat_params, getattr(resumed, what).flat_params
        assert np.array_equal(straight.be.to_host(a), resumed.be.to_host(b)), what
