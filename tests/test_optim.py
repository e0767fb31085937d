"""Adam and SGD against plain float64 textbook updates, and their saved state."""
import numpy as np
import pytest

import tinygan as tg


def textbook_adam(p, grads, lr, b1, b2, eps):
    """Kingma & Ba's Adam, three lines per update, in float64: (p, m, v) after len(grads) steps."""
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p, m, v


@pytest.mark.parametrize("lr, betas, eps", [(1e-3, (0.9, 0.999), 1e-8), (2e-4, (0.5, 0.999), 1e-8),
                                            (0.05, (0.8, 0.99), 1e-6)])
def test_adam_is_the_textbook_update_where_eps_matters(be64, lr, betas, eps):
    # Gradients from 1e-3 eps to 1e3 eps, so eps's place in the denominator changes every update; a
    # parameter longer than Adam's CPU chunk, and a second small one, cover the chunked loop.
    rng = np.random.default_rng(0)
    sizes = (tg.Adam.cpu_chunk + 1001, 7)
    p0 = [rng.standard_normal(n) for n in sizes]
    grads = [[rng.standard_normal(n) * eps * 10.0 ** rng.uniform(-3, 3, n) for _ in range(12)] for n in sizes]
    params = [(be64.asarray(p.copy()), be64.zeros(len(p))) for p in p0]
    opt = tg.Adam(params, lr=lr, betas=betas, eps=eps)
    for step in range(12):
        for (_, g), gs in zip(params, grads):
            g[...] = be64.asarray(gs[step])
        opt.step()
    for i, ((p, _), start, gs) in enumerate(zip(params, p0, grads)):
        want_p, want_m, want_v = textbook_adam(start, gs, lr, *betas, eps)
        # compare the update itself (p - p0): a wrong eps moves it by far more than rounding
        np.testing.assert_allclose(be64.to_host(p) - start, want_p - start, rtol=1e-10, atol=1e-18, err_msg=f"param {i}")
        np.testing.assert_allclose(be64.to_host(opt.m[i]), want_m, rtol=1e-12, atol=0, err_msg=f"m {i}")
        np.testing.assert_allclose(be64.to_host(opt.v[i]), want_v, rtol=1e-12, atol=0, err_msg=f"v {i}")
    assert opt.t == 12


def test_sgd_matches_the_textbook_update(be64):
    rng = np.random.default_rng(1)
    p0, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(4)]
    p, g = be64.asarray(p0.copy()), be64.zeros(5)
    opt = tg.SGD([(p, g)], lr=0.1, momentum=0.9)
    want, vel = p0.copy(), np.zeros(5)
    for gs in grads:
        g[...] = be64.asarray(gs)
        opt.step()
        vel = 0.9 * vel + gs
        want = want - 0.1 * vel
    np.testing.assert_allclose(be64.to_host(p), want, rtol=1e-14)
    plain = tg.SGD([(p, g)], lr=0.5)  # momentum 0: the plain gradient step
    before = be64.to_host(p)
    plain.step()
    np.testing.assert_allclose(be64.to_host(p), before - 0.5 * grads[-1], rtol=1e-14)


def test_sgd_state_dict_round_trip(be64):
    rng = np.random.default_rng(2)
    p, g = be64.asarray(rng.standard_normal(6)), be64.asarray(rng.standard_normal(6))
    a = tg.SGD([(p, g)], lr=0.03, momentum=0.7)
    for _ in range(3):
        a.step()
    state = a.state_dict()
    assert state["t"] == 3 and state["lr"] == 0.03 and state["momentum"] == 0.7
    assert type(state["velocity.0"]) is np.ndarray and not np.shares_memory(state["velocity.0"], be64.to_host(a.velocity[0]))
    q = p.copy()
    b = tg.SGD([(q, g)], lr=1.0, momentum=0.0)
    b.load_state_dict(state)
    assert (b.t, b.lr, b.momentum) == (3, 0.03, 0.7)
    a.step()
    b.step()
    assert np.array_equal(be64.to_host(p), be64.to_host(q)), "a restored SGD continues exactly"
