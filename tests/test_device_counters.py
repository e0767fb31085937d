"""What a replayed CUDA graph needs, proven on the CPU: device step counters give the host's numbers, and every
matrix product of a step goes through the backend's matmul, where a graph step installs a capturable one."""
import numpy as np
import pytest

from conftest import BACKENDS, make_backend
from tinygan.models.gan import GAN, Dataset, make_config


def small(name, preset):
    """A small conditional GAN with EMA and its data set, on a fresh seeded backend."""
    be = make_backend(name, "float32", seed=3)
    config = make_config(preset, conditional=True, g_hidden=[16, 32], d_hidden=[32, 16], ema=0.9, batch_size=8)
    data = Dataset(np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8),
                   np.arange(40) % 10, be, config["data_range"])
    return GAN(config, be), data


def trained(name, preset, counters, steps, resume_at=None):
    """A GAN after `steps` steps; with counters from the start (or switched on at `resume_at`)."""
    gan, data = small(name, preset)
    for i in range(steps):
        if counters and i == (resume_at or 0):
            gan.use_device_counters()
        gan.step(*data.sample(8))
    return gan


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("preset", ["seed", "deep"])
@pytest.mark.parametrize("resume_at", [0, 7])
def test_device_counters_change_no_bit_of_training(name, preset, resume_at):
    host, device = trained(name, preset, False, 12), trained(name, preset, True, 12, resume_at)
    be = host.be
    for what, a, b in [("G", host.G.flat_params, device.G.flat_params), ("D", host.D.flat_params, device.D.flat_params),
                       ("EMA", host.ema, device.ema), ("Adam m", host.opt_g.m[0], device.opt_g.m[0]),
                       ("Adam v", host.opt_d.v[0], device.opt_d.v[0])]:
        assert np.array_equal(be.to_host(a), be.to_host(b)), what
    assert float(device.counter[0]) == 12 and float(device.opt_d.counter[0]) == device.opt_d.t == 12


def test_device_scalars_are_adams_and_the_decay_is_the_ramp():
    be = make_backend("numpy", "float64")
    gan = GAN(make_config("deep", g_hidden=[4], d_hidden=[4], ema=0.999), be)
    gan.use_device_counters()
    opt, (b1, b2) = gan.opt_g, gan.opt_g.betas
    for t in range(1, 2000):
        step_size, eps = opt.device_scalars()
        c2 = np.sqrt(1 - b2 ** t)  # numpy's power and C's pow may differ in the last bit: float32 never sees it
        np.testing.assert_allclose([step_size[0], eps[0]], [opt.lr / (1 - b1 ** t) * c2, opt.eps * c2],
                                   rtol=1e-14, atol=0, err_msg=f"step {t}")
        assert gan.device_decay()[0] == min(0.999, (1 + t) / (10 + t)), t


def test_every_product_of_a_step_goes_through_the_backends_matmul():
    """cuda.GraphStep swaps be.gemm for cuBLAS on a handle bound to its stream: no layer may bypass it."""
    (plain, plain_data), (hooked, hooked_data), calls = small("numpy", "deep"), small("numpy", "deep"), []

    def gemm(a, b, out):
        calls.append((a.shape, b.shape))
        return np.matmul(a, b, out=out)
    hooked.be.gemm = gemm
    plain.step(*plain_data.sample(8))
    hooked.step(*hooked_data.sample(8))
    # 3 dense layers each. D's update: G forward 3, D forward 3, D dW 3 and dx 2 (none into the images);
    # G's update: G forward 3, D forward 3, D dx 3 (no dW: D is frozen), G dW 3 and dx 2 (none into z)
    assert len(calls) == 3 + 3 + 3 + 2 + 3 + 3 + 3 + 3 + 2 and all(len(a) == len(b) == 2 for a, b in calls)
    for a, b in [(plain.G.flat_params, hooked.G.flat_params), (plain.D.flat_params, hooked.D.flat_params)]:
        assert np.array_equal(a, b)
