"""The gradient checker itself: its tolerance, its error formula and its scale are pinned, not assumed."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.gradcheck import GradcheckError, check_loss, check_module, gradcheck, numerical_grad, unravel
from tinygan.engine.layers import Layer


def linear(be, c):
    """f(x) = sum(c * x): its exact gradient is c, and central differences reproduce it to rounding."""
    x = be.zeros(*c.shape)
    return x, (lambda: (x * c).sum())


@pytest.mark.parametrize("scale", [1e-2, 1.0, 300.0])
def test_a_gradient_off_by_1e_4_relative_fails(be64, scale):
    c = (be64.rand(3, 4) + 0.5) * scale  # entries in [0.5, 1.5) x scale, all above the floor
    x, f = linear(be64, c)
    wrong = c.copy()
    wrong[1, 2] *= 1 + 1e-4
    with pytest.raises(GradcheckError, match=r"gradient mismatch in w\[1, 2\]: .* relative error 1\.00e-04 > tol 1e-06"):
        gradcheck(f, {"w": x}, {"w": wrong})


def test_the_error_is_relative_with_an_absolute_floor(be64):
    c = be64.asarray([[2.0, -0.5, 1e-6]])
    x, f = linear(be64, c)
    off = c * (1 + 3e-7)  # 3e-7 relative everywhere: within tol 1e-6
    errors = gradcheck(f, {"w": x}, {"w": off})
    assert errors["w"] == pytest.approx(3e-7 / (1 + 3e-7), rel=1e-4), "the error of an entry is |a - n| / max(|a|, |n|)"
    tiny = c.copy()
    tiny[0, 2] = 2e-6  # 100% off, but 1e-6 absolute against the 1e-3 floor: 1e-3 relative
    with pytest.raises(GradcheckError, match=r"relative error 1\.00e-03"):
        gradcheck(f, {"w": x}, {"w": tiny})
    assert gradcheck(f, {"w": x}, {"w": tiny}, tol=2e-3)["w"] == pytest.approx(1e-3, rel=1e-4)
    assert gradcheck(f, {"w": x}, {"w": tiny}, floor=1.0, tol=2e-6)["w"] == pytest.approx(1e-6, rel=1e-3)


def test_several_tensors_each_get_an_error(be64):
    a, fa = linear(be64, be64.asarray([1.0, 2.0]))
    b, fb = linear(be64, be64.asarray([[3.0], [4.0]]))
    errors = gradcheck(lambda: fa() + fb(), {"a": a, "b": b},
                       {"a": be64.asarray([1.0, 2.0]), "b": be64.asarray([3.0, 4.0 * (1 + 5e-7)])})
    assert set(errors) == {"a", "b"} and errors["a"] < 1e-9 and errors["b"] == pytest.approx(5e-7, rel=1e-3)
    with pytest.raises(GradcheckError, match=r"in b\[1, 0\]: analytic 4\.0004, numerical 4,"):
        gradcheck(lambda: fa() + fb(), {"a": a, "b": b}, {"a": be64.asarray([1.0, 2.0]), "b": be64.asarray([3.0, 4.0004])})


def test_numerical_grad_is_a_central_difference_with_step_1e_5(be64):
    x = be64.asarray([[0.5, -2.0, 3.0]])
    # d/dx x^3 = 3 x^2; the central difference adds exactly eps^2 (the x^3 series ends there)
    got = numerical_grad(lambda: (x ** 3).sum(), x)
    np.testing.assert_allclose(be64.to_host(got), 3 * be64.to_host(x) ** 2 + 1e-10, rtol=0, atol=2e-10)
    assert got.shape == x.shape and be64.to_host(x).tolist() == [[0.5, -2.0, 3.0]], "x is restored"
    coarse = numerical_grad(lambda: (x ** 3).sum(), x, eps=1e-2)
    np.testing.assert_allclose(be64.to_host(coarse), 3 * be64.to_host(x) ** 2 + 1e-4, rtol=1e-9)


def test_check_loss_catches_a_slightly_wrong_gradient(be64):
    def mse(p, t):
        return ((p - t) ** 2).mean(), 2 * (p - t) / p.size

    def almost(p, t):  # the same loss, its gradient 1e-4 too large
        loss, grad = mse(p, t)
        return loss, grad * (1 + 1e-4)

    p, t = be64.randn(4, 3), be64.randn(4, 3)
    errors = check_loss(mse, p, t)
    assert set(errors) == {"x"} and errors["x"] < 1e-8
    with pytest.raises(GradcheckError, match=r"gradient mismatch in x\[\d+, \d+\]: .*relative error 1\.0\de-04"):
        check_loss(almost, p, t)
    assert check_loss(almost, p, t, tol=2e-4)["x"] == pytest.approx(1e-4, rel=1e-3)
    assert check_loss(mse, p, t, eps=1e-3)["x"] < 1e-8, "a quadratic has no truncation error at any step"


def test_check_module_catches_a_slightly_wrong_backward(be64):
    class Almost(tg.Tanh):
        def backward(self, dout, param_grads=True):
            return super().backward(dout) * (1 + 1e-4)

    x = be64.randn(5, 4)
    assert check_module(tg.Tanh(), x)["x"] < 1e-7
    with pytest.raises(GradcheckError, match=r"gradient mismatch in x\["):
        check_module(Almost(), x)
    assert check_module(Almost(), x, tol=2e-4)["x"] == pytest.approx(1e-4, rel=1e-2)


class Probe(Layer):
    """y = x, recording the output gradient check_module sends back."""

    def forward(self, x):
        return x

    def backward(self, dout, param_grads=True):
        self.dout = dout.copy()
        return dout


@pytest.mark.parametrize("shape", [(3, 2), (40, 60)])
def test_check_module_projection_has_unit_scale(be64, shape):
    probe = Probe()
    check_module(probe, be64.randn(*shape), seed=3)
    R = be64.to_host(probe.dout)
    n = R.size
    want = np.random.RandomState(3).standard_normal(shape) / n ** 0.5  # the documented projection
    np.testing.assert_allclose(R, want, rtol=1e-12)
    if n > 1000:
        assert abs((R ** 2).sum() - 1) < 5 * (2 / n) ** 0.5, "sum(R^2) is 1 within chi-square noise"


def test_check_module_error_does_not_grow_with_output_size(be64):
    worst = {}
    for n_out in (10, 300):
        model = tg.Sequential(tg.Dense(2, n_out, be=be64), tg.Tanh())
        worst[n_out] = max(check_module(model, be64.randn(30, 2)).values())
    # With an unnormalised projection the 300-wide model's worst error is ~30x the 10-wide one's.
    assert worst[300] < 10 * worst[10] and worst[300] < 1e-8, worst


def test_an_empty_tensor_and_an_error_exactly_at_tol(be64):
    empty = be64.zeros(0, 3)
    assert gradcheck(lambda: empty.sum(), {"e": empty}, {"e": empty.copy()}) == {"e": 0.0}
    c = be64.asarray([1.0, 2.0])
    x, f = linear(be64, c)
    err = gradcheck(f, {"w": x}, {"w": c * (1 + 4e-7)})["w"]
    assert gradcheck(f, {"w": x}, {"w": c * (1 + 4e-7)}, tol=err)["w"] == err, "an error equal to tol passes"


def test_the_checker_works_in_the_tensors_dtype():
    be = tg.Backend("numpy", "float32", seed=0)
    x = be.randn(3, 4)
    assert numerical_grad(lambda: (x * x).sum(), x, eps=1e-2).dtype == np.float32
    probe = Probe()
    check_module(probe, x, eps=1e-2, tol=1e-2)
    assert probe.dout.dtype == np.float32


def test_unravel_matches_numpy_in_plain_ints():
    """The mismatch report's index: numpy's unravel_index, computed without the array module (CuPy's fails)."""
    rng = np.random.default_rng(0)
    for shape in [(), (1,), (7,), (3, 4), (2, 1, 5), (4, 3, 2, 6)]:
        size = int(np.prod(shape))
        for flat in {0, size - 1, int(rng.integers(size))}:
            idx = unravel(flat, shape)
            assert idx == tuple(int(i) for i in np.unravel_index(flat, shape)), (shape, flat)
            assert all(type(i) is int for i in idx)
