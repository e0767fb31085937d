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


def textbook_adam_eps_inside(p, grads, lr, b1, b2, eps):
    """The reference code's Adam (Salimans et al.'s nn.adam_updates), float64: m_hat / sqrt(v_hat + eps)."""
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / np.sqrt(v / (1 - b2 ** t) + eps)
    return p


@pytest.mark.parametrize("eps", [1e-8, 1e-4])
def test_adam_eps_inside_is_the_reference_update(be64, eps):
    rng = np.random.default_rng(3)
    sizes = (tg.Adam.cpu_chunk + 501, 9)
    p0 = [rng.standard_normal(n) for n in sizes]
    # gradients around sqrt(eps): where eps inside and outside the root differ most
    grads = [[rng.standard_normal(n) * eps ** 0.5 * 10.0 ** rng.uniform(-3, 3, n) for _ in range(10)] for n in sizes]
    params = [(be64.asarray(p.copy()), be64.zeros(len(p))) for p in p0]
    opt = tg.Adam(params, lr=3e-3, betas=(0.5, 0.999), eps=eps, eps_inside=True)
    for step in range(10):
        for (_, g), gs in zip(params, grads):
            g[...] = be64.asarray(gs[step])
        opt.step()
    for i, ((p, _), start, gs) in enumerate(zip(params, p0, grads)):
        want = textbook_adam_eps_inside(start, gs, 3e-3, 0.5, 0.999, eps)
        outside, _, _ = textbook_adam(start, gs, 3e-3, 0.5, 0.999, eps)
        assert not np.allclose(outside - start, want - start, rtol=1e-3), "the cases must tell the two forms apart"
        np.testing.assert_allclose(be64.to_host(p) - start, want - start, rtol=1e-10, atol=1e-18, err_msg=f"param {i}")


def test_adam_eps_inside_on_the_device_counter_matches_the_host(be64):
    rng = np.random.default_rng(4)
    p0, grads = rng.standard_normal(50), [rng.standard_normal(50) * 1e-3 for _ in range(5)]
    results = []
    for counter in (False, True):
        p, g = be64.asarray(p0.copy()), be64.zeros(50)
        opt = tg.Adam([(p, g)], lr=0.01, betas=(0.5, 0.999), eps=1e-4, eps_inside=True)
        if counter:
            opt.use_device_counter()
        for gs in grads:
            g[...] = be64.asarray(gs)
            opt.step()
        results.append(be64.to_host(p))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-13)


def test_linear_decay():
    from tinygan.engine.optim import linear_decay
    assert [linear_decay(s, 10, 0.0) for s in range(10)] == [1.0] * 10, "fraction 0: constant"
    assert [linear_decay(s, 10, 0.5) for s in range(10)] == [1, 1, 1, 1, 1, 1.0, 0.8, 0.6, 0.4, 0.2]
    assert [linear_decay(s, 4, 1.0) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert linear_decay(10, 10, 0.5) == 0.0 and linear_decay(12, 10, 0.5) == 0.0, "past the end: zero, never negative"
