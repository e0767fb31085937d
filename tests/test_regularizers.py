"""The few-label regularizers (tinygan/engine/regularizers.py): finite differences in float64, and PyTorch autograd."""
import math

import numpy as np
import pytest

import tinygan as tg
from tinygan.engine.gradcheck import check_loss, gradcheck
from tinygan.engine.regularizers import class_balance, consistency, entropy, pull_away

SEEDS = [0, 1, 2]


def shape(seed):
    """(rows, columns) of a test case, fixed by seed."""
    rows, cols = np.random.default_rng(seed).integers(2, 9, 2)
    return int(rows), int(cols)


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_gradient(be64, seed):
    check_loss(entropy, be64.randn(*shape(seed)) * 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_class_balance_gradient(be64, seed):
    check_loss(class_balance, be64.randn(*shape(seed)) * 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_consistency_gradients_for_both_inputs(be64, seed):
    za, zb = be64.randn(*shape(seed)) * 2, be64.randn(*shape(seed)) * 2
    _, ga, gb = consistency(za, zb)
    gradcheck(lambda: consistency(za, zb)[0], {"za": za, "zb": zb}, {"za": ga.copy(), "zb": gb.copy()})


@pytest.mark.parametrize("seed", SEEDS)
def test_pull_away_gradient(be64, seed):
    check_loss(pull_away, be64.randn(*shape(seed)) + 0.5)


def test_the_losses_are_their_definitions(be64):
    z = be64.randn(6, 4) * 3
    p = np.exp(be64.to_host(z))
    p /= p.sum(1, keepdims=True)
    assert np.isclose(float(entropy(z)[0]), np.mean(-(p * np.log(p)).sum(1)), rtol=1e-12)
    pbar = p.mean(0)
    assert np.isclose(float(class_balance(z)[0]), (pbar * np.log(pbar * 4)).sum(), rtol=1e-12)
    assert float(class_balance(be64.zeros(3, 4))[0]) == pytest.approx(0, abs=1e-15), "uniform: no penalty"
    f = be64.to_host(be64.randn(5, 3))
    fh = f / np.linalg.norm(f, axis=1, keepdims=True)
    S = fh @ fh.T
    assert np.isclose(float(pull_away(be64.asarray(f))[0]), (S ** 2 - np.diag(np.diag(S ** 2))).sum() / 20, rtol=1e-10)
    huge = be64.asarray([[800.0, -800.0, 0.0], [0.0, 0.0, 0.0]])  # stable: no overflow for large logits
    for fn in (entropy, class_balance):
        loss, grad = fn(huge)
        assert math.isfinite(float(loss)) and bool(np.isfinite(be64.to_host(grad)).all())
    assert math.isfinite(float(pull_away(be64.zeros(3, 2))[0])), "an all-zero feature row stays finite"


def test_out_buffers_receive_the_gradient(be64):
    z = be64.randn(5, 4)
    for fn in (entropy, class_balance):
        buf = be64.zeros(5, 4)
        _, grad = fn(z, out=buf)
        assert grad is buf and np.allclose(be64.to_host(buf), be64.to_host(fn(z)[1]), rtol=1e-14)


def test_confident_logits_keep_entropy_and_balance_finite(be32):
    """A confident D (float32 logits 200 apart): a class no row gives any probability costs a finite loss, no NaN."""
    z = be32.zeros(6, 4)
    z[:, 0] = 200.0                             # every row: p = (1, 0, 0, 0) in float32
    z[3, 1] = 300.0                             # one row votes class 1; classes 2 and 3 get exactly 0
    for fn in (entropy, class_balance):
        loss, grad = fn(z)
        assert np.isfinite(float(loss)) and np.isfinite(be32.to_host(grad)).all(), fn.__name__
    loss, _ = class_balance(z)                  # pbar = (5/6, 1/6, 0, 0): KL to uniform
    expected = 5 / 6 * math.log(5 / 6) + 1 / 6 * math.log(1 / 6) + math.log(4)
    assert abs(float(loss) - expected) < 1e-5


# --- PyTorch autograd as an independent oracle (test-only) ---

def torch_losses(torch, za, zb, f):
    """The four regularizers written with torch ops, straight from their definitions."""
    pa, pb = za.softmax(1), zb.softmax(1)
    ent = -(pa * za.log_softmax(1)).sum(1).mean()
    pbar = pa.mean(0)
    bal = (pbar * (pbar * za.shape[1]).log()).sum()
    con = ((pa - pb) ** 2).sum(1).mean()
    fh = f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-12)
    S = fh @ fh.T
    n = len(f)
    pt = ((S ** 2).sum() - (S.diagonal() ** 2).sum()) / (n * (n - 1))
    return ent, bal, con, pt


@pytest.mark.parametrize("seed", SEEDS)
def test_the_regularizers_match_torch_autograd(seed):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the oracle tests need `pip install torch`")
    be = tg.Backend("numpy", "float64", seed=seed)
    rows, k = shape(seed)
    za, zb, f = be.randn(rows, k) * 3, be.randn(rows, k) * 3, be.rand(rows + 1, k + 3)
    t = {n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in (("za", za), ("zb", zb), ("f", f))}
    ent, bal, con, pt = torch_losses(torch, t["za"], t["zb"], t["f"])
    loss_c, ga, gb = consistency(za, zb)
    ours = [(entropy(za), ent, "za"), (class_balance(za), bal, "za"), (pull_away(f), pt, "f")]
    for (loss, grad), ref, wrt in ours:
        (g,) = torch.autograd.grad(ref, t[wrt], retain_graph=True)
        np.testing.assert_allclose(float(loss), ref.item(), rtol=1e-12)
        np.testing.assert_allclose(grad, g.numpy(), rtol=1e-9, atol=1e-14)
    g_a, g_b = torch.autograd.grad(con, [t["za"], t["zb"]])
    np.testing.assert_allclose(float(loss_c), con.item(), rtol=1e-12)
    np.testing.assert_allclose(ga, g_a.numpy(), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gb, g_b.numpy(), rtol=1e-9, atol=1e-14)
