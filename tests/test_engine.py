"""Behaviour of the backend, Sequential, Dropout and the optimizers (beyond gradient values)."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.backend import Backend, BackendError


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown backend 'torch': choose 'numpy' or 'cupy'"):
        Backend("torch")


def test_cupy_error_is_one_line_and_says_what_to_do():
    try:
        Backend("cupy")
    except BackendError as e:
        msg = str(e)
        assert "\n" not in msg
        assert "cupy-cuda12x" in msg or "no CUDA device" in msg
    else:
        pytest.skip("CuPy and a GPU are present: the error path cannot be exercised here")


def test_default_dtype_is_float32(be32):
    layer = tg.Dense(3, 2, be=be32)
    assert layer.W.dtype == be32.xp.float32
    assert layer(be32.randn(4, 3)).dtype == be32.xp.float32


def test_dense_init_is_glorot_uniform(be64):
    W = be64.to_host(tg.Dense(300, 100, be=be64).W)
    limit = (6 / 400) ** 0.5
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.95 * limit
    assert abs(W.std() - limit / 3 ** 0.5) < 0.05 * limit


def test_parameters_are_views_of_one_flat_buffer(be64):
    model = tg.Sequential(tg.Dense(3, 4, be=be64), tg.ReLU(), tg.Dense(4, 2, be=be64))
    assert model.flat_params.size == 3 * 4 + 4 + 4 * 2 + 2
    model.flat_params[...] = 1.5
    assert all(float(p.min()) == 1.5 for p, _ in model.parameters())
    model.layers[0].dW[...] = 2.0
    assert float(model.flat_grads[:12].min()) == 2.0
    model.zero_grad()
    assert float(abs(model.flat_grads).max()) == 0.0


def test_backward_accumulates_gradients(be64):
    model = tg.Sequential(tg.Dense(3, 2, be=be64), tg.Tanh())
    x, dout = be64.randn(5, 3), be64.randn(5, 2)
    model.zero_grad()
    model.forward(x)
    model.backward(dout)
    once = model.flat_grads.copy()
    model.backward(dout)
    assert np.allclose(be64.to_host(model.flat_grads), 2 * be64.to_host(once))


def test_state_dict_round_trip_and_errors(be64):
    make = lambda: tg.Sequential(tg.Dense(3, 4, be=be64), tg.ReLU(), tg.Dense(4, 1, be=be64))
    a, b = make(), make()
    state = a.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    b.load_state_dict(state)
    x = be64.randn(2, 3)
    assert np.array_equal(be64.to_host(a(x)), be64.to_host(b(x)))
    with pytest.raises(ValueError, match=r"'0.W' has shape \(4, 3\), the model expects \(3, 4\)"):
        b.load_state_dict({**state, "0.W": state["0.W"].T})
    with pytest.raises(ValueError, match="no entry '2.b'"):
        b.load_state_dict({k: v for k, v in state.items() if k != "2.b"})


def test_dropout_scales_masks_and_switches_off(be64):
    drop = tg.Dropout(0.25, be=be64)
    x = be64.zeros(2000, 50) + 1
    y = be64.to_host(drop(x))
    assert abs((y == 0).mean() - 0.25) < 0.01 and np.allclose(y[y > 0], 1 / 0.75)
    assert np.array_equal(be64.to_host(drop.backward(x)), y)  # backward reuses the forward's mask
    drop.training = False
    assert drop(x) is x and drop.backward(x) is x


def test_sgd_step(be64):
    p, g = be64.asarray([1.0, 2.0]), be64.asarray([0.5, -1.0])
    opt = tg.SGD([(p, g)], lr=0.1, momentum=0.9)
    opt.step()
    opt.step()
    # v1 = g, v2 = 0.9 g + g; p = p0 - 0.1 (v1 + v2)
    assert np.allclose(be64.to_host(p), [1 - 0.1 * 2.9 * 0.5, 2 + 0.1 * 2.9])


def test_adam_first_step_moves_each_parameter_by_lr(be64):
    p, g = be64.asarray([1.0, -2.0, 3.0]), be64.asarray([10.0, -0.01, 1e-3])
    opt = tg.Adam([(p, g)], lr=0.01)
    opt.step()
    # after bias correction the first update is lr * g / (|g| + eps') = lr * sign(g)
    assert np.allclose(be64.to_host(p), [0.99, -1.99, 2.99], atol=1e-7)


def test_adam_state_dict_round_trip(be64):
    p, g = be64.randn(4), be64.randn(4)
    a = tg.Adam([(p, g)], lr=0.003, betas=(0.5, 0.99))
    for _ in range(3):
        a.step()
    state = a.state_dict()
    assert state["t"] == 3 and state["beta1"] == 0.5
    q = p.copy()
    b = tg.Adam([(q, g)])
    b.load_state_dict(state)
    a.step()
    b.step()
    assert np.array_equal(be64.to_host(p), be64.to_host(q))
    with pytest.raises(ValueError, match="'m.0' is missing or has the wrong shape"):
        b.load_state_dict({**state, "m.0": np.zeros(5)})


def test_set_backend_is_used_by_new_layers():
    be = tg.set_backend("numpy", "float64", seed=3)
    try:
        assert tg.Dense(2, 2).W.dtype == np.float64 and tg.get_backend() is be
    finally:
        tg.set_backend()


def test_backward_can_skip_the_first_input_gradient(be64):
    model = tg.Sequential(tg.Dense(3, 4, be=be64), tg.ReLU(), tg.Dense(4, 2, be=be64))
    x, dout = be64.randn(5, 3), be64.randn(5, 2)
    model.zero_grad()
    model.forward(x)
    dx = model.backward(dout)
    full = model.flat_grads.copy()
    model.zero_grad()
    assert model.backward(dout, input_grad=False) is None and dx.shape == (5, 3)
    assert np.array_equal(be64.to_host(model.flat_grads), be64.to_host(full))


def test_default_backend_is_numpy_float32_seed_0():
    ref = np.random.default_rng(0).random(5, dtype=np.float32)
    be = Backend()
    assert (be.name, be.dtype, be.seed) == ("numpy", np.float32, 0) and repr(be) == "Backend('numpy', dtype='float32', seed=0)"
    assert np.array_equal(be.rand(5), ref), "the default stream is numpy's default_rng(0)"
    try:
        import tinygan.engine.backend as backend
        backend._current = None
        assert np.array_equal(tg.get_backend().rand(5), ref), "get_backend() before set_backend() is seed 0"
        assert np.array_equal(tg.set_backend().rand(5), ref)
    finally:
        tg.set_backend()


def test_backend_draws_and_dtypes():
    be = Backend("numpy", "float64", seed=4)
    ref = np.random.default_rng(4)
    assert np.array_equal(be.rand(2, 3), ref.random((2, 3)))
    assert np.array_equal(be.randint(10, 6), ref.integers(0, 10, 6))
    out = np.empty((4,))
    assert be.rand(out=out) is out and np.array_equal(out, ref.random(4))
    assert be.zeros(2, 3).dtype == np.float64 and not be.zeros(2, 3).any()
    assert be.asarray([1, 2]).dtype == np.float64 and be.asarray([1, 2], dtype="int64").dtype == np.int64
    with pytest.raises(BackendError, match="unknown dtype 'float16': choose 'float32' or 'float64'"):
        Backend("numpy", "float16")


def test_rng_state_round_trip():
    be = Backend("numpy", seed=7)
    be.rand(3)
    state = be.rng_state()
    a = be.rand(4)
    be.rand(10)
    be.set_rng_state(state)
    assert np.array_equal(be.rand(4), a)
    be.set_rng_state('{"cupy_seed": 7}', reseed=11)  # a CuPy run's state, resumed on numpy: re-seeded
    assert np.array_equal(be.rand(3), np.random.default_rng(11).random(3, dtype=np.float32))
    be.set_rng_state('{"cupy_seed": 7}')
    assert np.array_equal(be.rand(3), np.random.default_rng(7).random(3, dtype=np.float32))


def test_take_rows_and_to_host_copy():
    be = Backend("numpy", "float64")
    a = np.arange(12.0).reshape(4, 3)
    out = np.empty((3, 3))
    assert be.take_rows(a, np.array([2, 0, 2]), out) is out and np.array_equal(out, a[[2, 0, 2]])
    h = be.to_host(a)
    assert np.array_equal(h, a) and not np.shares_memory(h, a)


def test_gan_prob_is_the_sigmoid_of_the_logit(be64):
    from tinygan.models.gan import GAN, make_config
    gan = GAN(make_config("seed", g_hidden=[4], d_hidden=[4], latent_dim=2), be64)
    z = be64.asarray([[-30.0], [-2.0], [0.0], [1.5], [30.0]])
    np.testing.assert_allclose(be64.to_host(gan.prob(z)), 1 / (1 + np.exp(-be64.to_host(z))), rtol=1e-14)


def test_documented_defaults():
    assert tg.Dropout().p == 0.3 and tg.LeakyReLU().slope == 0.2
    sgd = tg.SGD([(np.zeros(2), np.zeros(2))])
    assert (sgd.lr, sgd.momentum, sgd.t) == (0.01, 0.0, 0)
    adam = tg.Adam([(np.zeros(2), np.zeros(2))])
    assert (adam.lr, adam.betas, adam.eps, adam.t) == (1e-3, (0.9, 0.999), 1e-8, 0)


def test_dropout_zero_is_the_identity_and_draws_nothing():
    be = Backend("numpy", "float64", seed=2)
    drop = tg.Dropout(0.0, be=be)
    x = be.randn(3, 4)
    state = be.rng_state()
    assert drop.forward(x) is x and drop.backward(x) is x and drop.mask is None
    assert be.rng_state() == state, "p = 0 draws no random numbers"
    with pytest.raises(ValueError, match=r"Dropout probability -0.1 must be in \[0, 1\): at 1 every unit would be dropped"):
        tg.Dropout(-0.1)


def test_eval_and_train_set_a_plain_flag():
    model = tg.Sequential(tg.Dense(2, 2, be=Backend("numpy")), tg.ReLU())
    model.eval()
    assert all(layer.training is False for layer in model.layers)
    model.train()
    assert all(layer.training is True for layer in model.layers)


def test_load_state_dict_errors_say_what_to_check(be64):
    model = tg.Sequential(tg.Dense(3, 4, be=be64), tg.ReLU(), tg.Dense(4, 1, be=be64))
    state = model.state_dict()
    with pytest.raises(ValueError) as e:
        model.load_state_dict({k: v for k, v in state.items() if k != "2.b"})
    assert str(e.value) == ("state dict has no entry '2.b' (it has ['0.W', '0.b', '2.W']); "
                            "was it saved from a model of this architecture?")
    with pytest.raises(ValueError) as e:
        model.load_state_dict({**state, "0.b": np.zeros(5)})
    assert str(e.value) == ("state dict entry '0.b' has shape (5,), the model expects (4,); "
                            "check the preset and layer sizes")


def test_set_backend_passes_its_arguments():
    try:
        be = tg.set_backend("numpy", "float64", seed=5)
        assert (be.name, be.dtype, be.seed) == ("numpy", np.float64, 5)
        assert np.array_equal(be.rand(3), np.random.default_rng(5).random(3))
    finally:
        tg.set_backend()


def test_xp_of_accepts_arrays_only():
    import tinygan.engine.backend as backend
    assert backend.xp_of(np.zeros(2)) is np and backend.xp_of(np.float32(1)) is np
    with pytest.raises(TypeError, match="expected a numpy or cupy array, got NoneType"):
        backend.xp_of(None)
    with pytest.raises(TypeError, match="got list"):
        backend.xp_of([1.0])


def test_rand_into_a_float32_array():
    be, out = Backend("numpy", "float32", seed=6), np.empty((2, 3), np.float32)
    assert be.rand(out=out) is out and np.array_equal(out, np.random.default_rng(6).random((2, 3), dtype=np.float32))


def test_leaky_relu_slope_must_be_in_0_1():
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError) as e:
            tg.LeakyReLU(bad)
        assert str(e.value) == f"LeakyReLU slope {bad} must be in [0, 1]"
    assert tg.LeakyReLU(0.0).slope == 0.0 and tg.LeakyReLU(1.0).slope == 1.0


def test_sequential_of_activations_and_a_fully_frozen_backward(be64):
    acts = tg.Sequential(tg.ReLU(), tg.Tanh())  # no parameters: the default backend, empty buffers
    assert acts.flat_params.size == 0
    model = tg.Sequential(tg.Dense(3, 4, be=be64), tg.ReLU(), tg.Dense(4, 2, be=be64))
    model.flat_grads[...] = 1.0
    model.forward(be64.randn(5, 3))
    assert model.backward(be64.randn(5, 2), param_grads=False, input_grad=False) is None
    assert float(model.flat_grads.min()) == float(model.flat_grads.max()) == 1.0, "no parameter gradient touched"
