"""PyTorch as an independent oracle (test-only): same weights and batch give the same numbers."""
import numpy as np
import pytest

import tinygan as tg

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the oracle tests need `pip install torch`")
import torch._dynamo  # noqa: E402,F401  (the first optimizer step imports it, ~4 s: done here, forked test runs share it)
TOL = {"float64": 1e-10, "float32": 1e-5}


@pytest.fixture(params=["float64", "float32"])
def be(request, be64):
    """Each available backend, in each dtype."""
    return tg.Backend(be64.name, request.param, seed=0)


def close(ours, ref, be, what):
    """Elementwise rtol, with an absolute floor of rtol times the tensor's largest entry."""
    rtol = TOL[be.dtype.name]
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    ours = be.to_host(ours) if hasattr(ours, "shape") else np.asarray(ours)  # a loss may be a Python float
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * np.abs(ref).max(), err_msg=what)


def twin(model, tdtype):
    """A torch copy of a Sequential of Dense/ReLU/Sigmoid layers, with the same weights."""
    mods = []
    for layer in model.layers:
        if isinstance(layer, tg.Dense):
            lin = torch.nn.Linear(layer.n_in, layer.n_out).to(tdtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(model.be.to_host(layer.W).T.copy()))
                lin.bias.copy_(torch.from_numpy(model.be.to_host(layer.b).copy()))
            mods.append(lin)
        else:
            mods.append({tg.ReLU: torch.nn.ReLU, tg.Sigmoid: torch.nn.Sigmoid}[type(layer)]())
    return torch.nn.Sequential(*mods)


def torch_grads(tmodel):
    """Torch gradients in tinygan's layout and names (W is (in, out))."""
    out = {}
    for i, m in enumerate(tmodel):
        if isinstance(m, torch.nn.Linear):
            out[f"{i}.W"], out[f"{i}.b"] = m.weight.grad.T, m.bias.grad
    return out


def original_design(be):
    G = tg.Sequential(tg.Dense(100, 128, be=be), tg.ReLU(), tg.Dense(128, 784, be=be), tg.Sigmoid())
    D = tg.Sequential(tg.Dense(784, 128, be=be), tg.ReLU(), tg.Dense(128, 1, be=be), tg.Sigmoid())
    return G, D


def test_original_design_outputs_and_gradients(be):
    tdtype = getattr(torch, be.dtype.name)
    G, D = original_design(be)
    tG, tD = twin(G, tdtype), twin(D, tdtype)
    z, real = be.randn(64, 100), be.rand(64, 784)
    tz, treal = (torch.from_numpy(be.to_host(a).copy()) for a in (z, real))
    ones, zeros = be.zeros(64, 1) + 1, be.zeros(64, 1)
    tbce = torch.nn.BCELoss()

    # Discriminator step: real batch labelled 1, fake batch labelled 0.
    fake = G.forward(z)
    close(fake, tG(tz), be, "G(z)")
    D.zero_grad()
    loss_r, d = tg.bce(D.forward(real), ones)
    D.backward(d)
    loss_f, d = tg.bce(D.forward(fake), zeros)
    D.backward(d)
    t_loss = tbce(tD(treal), torch.ones(64, 1, dtype=tdtype)) + tbce(tD(tG(tz).detach()), torch.zeros(64, 1, dtype=tdtype))
    t_loss.backward()
    close(float(loss_r) + float(loss_f), t_loss.item(), be, "D loss")
    for name, ref in torch_grads(tD).items():
        close(dict((n, g) for n, _, g in D.named_parameters())[name], ref, be, f"D grad {name}")

    # Generator step through a frozen D: only G's gradients change.
    tD.zero_grad()
    G.zero_grad()
    d_before = D.flat_grads.copy()
    p = D.forward(G.forward(z))
    close(p, tD(tG(tz)), be, "D(G(z))")
    loss_g, d = tg.bce(p, ones)
    G.backward(D.backward(d, param_grads=False))
    t_g = tbce(tD(tG(tz)), torch.ones(64, 1, dtype=tdtype))
    t_g.backward()
    close(loss_g, t_g.item(), be, "G loss")
    for name, ref in torch_grads(tG).items():
        close(dict((n, g) for n, _, g in G.named_parameters())[name], ref, be, f"G grad {name}")
    assert bool((D.flat_grads == d_before).all())


def test_adam_follows_torch_for_20_steps(be):
    tdtype = getattr(torch, be.dtype.name)
    model = tg.Sequential(tg.Dense(6, 5, be=be), tg.ReLU(), tg.Dense(5, 1, be=be))
    tmodel = twin(model, tdtype)
    x, t = be.randn(16, 6), (be.rand(16, 1) > 0.5).astype(be.dtype)
    tx, tt = torch.from_numpy(be.to_host(x).copy()), torch.from_numpy(be.to_host(t).copy())
    opt = tg.Adam(model.parameters(), lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    for step in range(20):
        model.zero_grad()
        _, d = tg.bce_with_logits(model.forward(x), t)
        model.backward(d)
        opt.step()
        topt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(tmodel(tx), tt).backward()
        topt.step()
    ours = dict((n, p) for n, p, _ in model.named_parameters())
    for i, m in enumerate(tmodel):
        if isinstance(m, torch.nn.Linear):
            close(ours[f"{i}.W"], m.weight.T, be, f"{i}.W after 20 Adam steps")
            close(ours[f"{i}.b"], m.bias, be, f"{i}.b after 20 Adam steps")


def test_bce_with_logits_matches_torch_even_at_100(be):
    tdtype = getattr(torch, be.dtype.name)
    z = be.asarray([[-100.0], [-30.0], [-1.5], [0.0], [2.0], [30.0], [100.0]])
    t = be.asarray([[1.0], [0.0], [1.0], [0.5], [0.0], [1.0], [0.0]])
    loss, grad = tg.bce_with_logits(z, t)
    tz = torch.from_numpy(be.to_host(z).copy()).requires_grad_()
    tloss = torch.nn.BCEWithLogitsLoss()(tz, torch.from_numpy(be.to_host(t).copy()).to(tdtype))
    tloss.backward()
    assert np.isfinite(float(loss)) and np.isfinite(be.to_host(grad)).all()
    close(loss, tloss.item(), be, "loss")
    close(grad, tz.grad, be, "gradient")


def test_softmax_cross_entropy_matches_torch(be):
    z, labels = be.randn(12, 10) * 5, be.randint(10, 12)
    loss, grad = tg.softmax_cross_entropy(z, labels)
    tz = torch.from_numpy(be.to_host(z).copy()).requires_grad_()
    tloss = torch.nn.functional.cross_entropy(tz, torch.from_numpy(be.to_host(labels).astype(np.int64)))
    tloss.backward()
    close(loss, tloss.item(), be, "loss")
    close(grad, tz.grad, be, "gradient")
