"""The GPU path (tinygan/cuda.py) against the plain array path it replaces; every test here needs CuPy and a GPU."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.engine import philox
from tinygan.engine.backend import Backend, BackendError

try:
    Backend("cupy")
except BackendError as e:
    pytest.skip(str(e), allow_module_level=True)

import cupy  # noqa: E402

from tinygan.engine import cuda  # noqa: E402
from tinygan.data.dataset import Dataset  # noqa: E402
from tinygan.models.gan import GAN, make_config  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_philox_kernels_draw_the_reference_stream(dtype):
    g = cuda.Philox(key=12345, counter=7)
    u = g.random(cupy.empty(1001, dtype))
    ref, used = philox.uniform(np, 12345, 7, 1001, dtype)
    assert np.array_equal(u.get(), ref), "uniforms are exact: the same words, the same bits"
    assert int(g.counter.get()[0]) == 7 + used
    z = g.standard_normal(cupy.empty(999, dtype))
    ref, _ = philox.normal(np, 12345, 7 + used, 999, dtype)
    np.testing.assert_allclose(z.get(), ref, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)
    k = g.integers(60000, cupy.empty(513, cupy.int64))
    assert np.array_equal(k.get(), philox.integers(np, 12345, g.state()["counter"] - 129, 60000, 513)[0])


def test_adam_and_average_kernels_equal_the_plain_updates():
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(5000).astype(np.float32), rng.standard_normal(5000).astype(np.float32) * 1e-3
    m, v = np.zeros_like(p), np.zeros_like(p)
    plain = tg.Adam([(p.copy(), g)], lr=2e-4, betas=(0.5, 0.999))
    dp, dg, dm, dv = (cupy.asarray(a) for a in (p, g, m, v))
    for t in range(1, 4):
        plain.step()
        c2 = (1 - 0.999 ** t) ** 0.5
        scalars = cupy.asarray([2e-4 / (1 - 0.5 ** t) * c2, 1e-8 * c2], dtype=cupy.float32)
        cuda.adam_update(dp, dg, dm, dv, scalars, 0.5, 0.999)
    np.testing.assert_allclose(dp.get(), plain.params[0][0], rtol=1e-6, atol=1e-7)
    ema, q = cupy.asarray(p), cupy.asarray(g)
    cuda.ema_update(ema, q, cupy.asarray([0.9], dtype=cupy.float32))
    np.testing.assert_allclose(ema.get(), 0.9 * p + 0.1 * g, rtol=1e-6)


@pytest.mark.parametrize("transpose", [(False, False), (True, False), (False, True)])
def test_gemm_equals_cupy_matmul(transpose):
    rng = cupy.random.RandomState(0)
    a = rng.standard_normal((64, 100), dtype=cupy.float32)
    b = rng.standard_normal((100, 30), dtype=cupy.float32)
    a = cupy.ascontiguousarray(a.T).T if transpose[0] else a   # an F-contiguous operand: a transposed view
    b = cupy.ascontiguousarray(b.T).T if transpose[1] else b
    out = cupy.empty((64, 30), cupy.float32)
    cuda.Gemm(cupy.cuda.get_current_stream())(a, b, out)
    cupy.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def graphed_gan(preset, conditional):
    be = Backend("cupy", "float32", seed=0, rng="philox")  # cuRAND cannot be captured; Philox's counter can
    config = make_config(preset, conditional=conditional, g_hidden=[32, 64], d_hidden=[64, 32], batch_size=16)
    gan = GAN(config, be)
    rng = np.random.default_rng(0)
    data = Dataset(rng.integers(0, 256, (200, 28, 28), dtype=np.uint8), rng.integers(0, 10, 200), be,
                   config["data_range"])
    return gan, data


@pytest.mark.parametrize("preset, conditional", [("seed", False), ("deep", True)])
def test_graph_replays_equal_eager_steps_and_never_synchronize(preset, conditional):
    eager, data_e = graphed_gan(preset, conditional)
    graphed, data_g = graphed_gan(preset, conditional)
    for gan in (eager, graphed):
        gan.use_device_counters()
    step = cuda.GraphStep(graphed, data_g)
    step()  # the eager warm-up step, then the capture
    with cupy.cuda.using_allocator(step.pool.malloc), cuda.use_gemm(eager.be, step.gemm):
        eager.step(*data_e.sample(16))
    with cupyx_allow_synchronize(False):
        for _ in range(5):
            step()
            eager.step(*data_e.sample(16))
    cupy.cuda.get_current_stream().synchronize()
    assert graphed.iteration == eager.iteration == 6
    cupy.testing.assert_allclose(graphed.G.flat_params, eager.G.flat_params, rtol=1e-5, atol=1e-6)
    cupy.testing.assert_allclose(graphed.D.flat_params, eager.D.flat_params, rtol=1e-5, atol=1e-6)


def cupyx_allow_synchronize(allow):
    import cupyx
    return cupyx.allow_synchronize(allow)
