"""PyTorch as an independent oracle for the semi-supervised GAN (test-only): same weights and batch, same numbers."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.models.ssl import SSLGAN, make_ssl_config

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the oracle tests need `pip install torch`")
F = torch.nn.functional


def t(be, a, grad=False):
    """A float64 torch copy of a tinygan array."""
    return torch.tensor(be.to_host(a), dtype=torch.float64, requires_grad=grad)


def close(ours, ref, be, what, rtol=1e-9):
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    np.testing.assert_allclose(be.to_host(ours), ref, rtol=rtol, atol=rtol * max(np.abs(ref).max(), 1e-30), err_msg=what)


def twin_params(be, model):
    """{name: torch leaf} for every parameter and saved array of a tinygan Sequential."""
    return {n: t(be, p, grad=True) for n, p in model.named_arrays()}


def torch_forward(model, params, x, upto=None, noise=None):
    """The Sequential's forward, written with torch ops, layer by layer (training mode; noise: {layer: [arrays]},
    the noise tinygan drew, replayed in order; without it, noise-free)."""
    for i, layer in enumerate(model.layers[:upto]):
        name = type(layer).__name__
        if name == "GaussianNoise" and noise is not None and noise.get(i):
            x = x + torch.tensor(noise[i].pop(0), dtype=torch.float64)
        elif name == "WeightNormDense":
            V = params[f"{i}.V"]
            x = x @ (V * (params[f"{i}.g"] / V.norm(dim=0))) + params[f"{i}.b"]
        elif name == "Dense":
            x = x @ params[f"{i}.W"] + (params[f"{i}.b"] if f"{i}.b" in params else 0)
        elif name == "BatchNorm":  # batch statistics, biased variance, as in training
            x = F.batch_norm(x, None, None, params.get(f"{i}.gamma"), params[f"{i}.beta"], training=True, eps=layer.eps)
        else:
            x = {"ReLU": F.relu, "Softplus": F.softplus, "Sigmoid": torch.sigmoid, "GaussianNoise": lambda v: v}[name](x)
    return x


@pytest.fixture(params=[10, 20], ids=["10-labelled", "20-labelled"])
def setup(request):
    be = tg.Backend("numpy", "float64", seed=0)
    config = make_ssl_config(d_hidden=[12, 9, 7], g_hidden=[8, 6], latent_dim=5, input_noise=0.0, hidden_noise=0.0)
    gan = SSLGAN(config, be)
    r = tg.Backend("numpy", "float64", seed=3)
    gan.init_from_data(r.rand(50, 784))
    n = request.param
    batch = dict(x_lab=r.rand(n, 784), y_lab=r.randint(10, n), x_unl=r.rand(8, 784), x_unl2=r.rand(8, 784), z=r.rand(8, 5))
    return be, gan, batch


def test_discriminator_losses_and_gradients_match_torch(setup):
    be, gan, b = setup
    pD, pG = twin_params(be, gan.D), twin_params(be, gan.G)
    gan.D.zero_grad()
    stats = gan.d_backward(b["x_lab"], b["y_lab"], b["x_unl"], b["z"])

    fake = torch_forward(gan.G, pG, t(be, b["z"])).detach()
    lab, unl, gen = (torch_forward(gan.D, pD, x) for x in (t(be, b["x_lab"]), t(be, b["x_unl"]), fake))
    y = torch.tensor(b["y_lab"], dtype=torch.int64)
    # the recipe, written as it is published: -mean l_y + mean LSE, and -0.5 mean LSE + 0.5 mean softplus(LSE) twice
    loss_lab = -lab.gather(1, y[:, None]).mean() + torch.logsumexp(lab, 1).mean()
    loss_unl = (-0.5 * torch.logsumexp(unl, 1).mean() + 0.5 * F.softplus(torch.logsumexp(unl, 1)).mean()
                + 0.5 * F.softplus(torch.logsumexp(gen, 1)).mean())
    (loss_lab + loss_unl).backward()
    close(stats["loss_lab"], loss_lab.item(), be, "loss_lab")
    close(stats["loss_unl"], loss_unl.item(), be, "loss_unl")
    lse = torch.logsumexp(unl, 1)
    close(stats["d_real"], (torch.exp(lse) / (torch.exp(lse) + 1)).mean().item(), be, "D(x) = Z / (Z + 1)")
    for name, _, grad in gan.D.named_parameters():
        close(grad, pD[name].grad, be, f"D gradient {name}")


def test_generator_loss_and_gradients_match_torch(setup):
    be, gan, b = setup
    pD, pG = twin_params(be, gan.D), twin_params(be, gan.G)
    gan.G.zero_grad()
    loss = gan.g_backward(b["x_unl2"], b["z"])

    k = gan.features
    real = torch_forward(gan.D, pD, t(be, b["x_unl2"]), upto=k).mean(0)
    fake = torch_forward(gan.D, pD, torch_forward(gan.G, pG, t(be, b["z"])), upto=k).mean(0)
    t_loss = ((fake - real.detach()) ** 2).mean()  # the recipe: T.mean(T.square(mom_gen - mom_real))
    t_loss.backward()
    close(loss, t_loss.item(), be, "feature-matching loss")
    for name, _, grad in gan.G.named_parameters():
        close(grad, pG[name].grad, be, f"G gradient {name}")


def test_data_dependent_init_matches_a_torch_computation():
    be = tg.Backend("numpy", "float64", seed=0)
    layer = tg.WeightNormDense(20, 6, be=be, train_scale=False)
    x = tg.Backend("numpy", "float64", seed=1).rand(64, 20)
    V = t(be, layer.V)
    pre = t(be, x) @ (V / V.norm(dim=0))
    layer.init_from(x)
    close(layer.g, 1 / pre.std(0, unbiased=False), be, "g = 1 / std")
    close(layer.b, -pre.mean(0) / pre.std(0, unbiased=False), be, "b = -mean / std")


def record_noise(be, model):
    """{layer index: [noise]}: what each of model's GaussianNoise layers adds, call by call, from now on."""
    drawn = {}
    for i, layer in enumerate(model.layers):
        if type(layer).__name__ == "GaussianNoise":
            def forward(x, layer=layer, i=i, plain=layer.forward):
                y = plain(x)
                drawn.setdefault(i, []).append(be.to_host(y - x))
                return y
            layer.forward = forward
    return drawn


def test_one_step_with_every_regularizer_matches_torch():
    """d_backward and g_backward (one step's two gradients) with entropy, balance, consistency and pull-away on,
    with D's noise on: tinygan's draws are replayed in torch, so the two noisy looks of consistency differ."""
    be = tg.Backend("numpy", "float64", seed=0)
    weights = dict(entropy_weight=0.7, balance_weight=1.3, consistency_weight=2.0, pull_away_weight=0.4)
    config = make_ssl_config(d_hidden=[12, 9, 7], g_hidden=[8, 6], latent_dim=5, **weights)
    gan = SSLGAN(config, be)
    r = tg.Backend("numpy", "float64", seed=3)
    gan.init_from_data(r.rand(50, 784))
    x_lab, y_lab, x_unl, x_unl2, z = r.rand(10, 784), r.randint(10, 10), r.rand(8, 784), r.rand(8, 784), r.rand(8, 5)
    pD, pG = twin_params(be, gan.D), twin_params(be, gan.G)
    drawn = record_noise(be, gan.D)
    gan.D.zero_grad()
    stats = gan.d_backward(x_lab, y_lab, x_unl, z)

    fake = torch_forward(gan.G, pG, t(be, z)).detach()
    rows = torch.cat([t(be, x_lab), t(be, x_unl), fake, t(be, x_unl)])
    out = torch_forward(gan.D, pD, rows, noise=drawn)
    lab, unl, gen, again = out[:10], out[10:18], out[18:26], out[26:]
    y = torch.tensor(y_lab, dtype=torch.int64)
    loss_lab = F.cross_entropy(lab, y)
    loss_unl = 0.5 * F.softplus(-torch.logsumexp(unl, 1)).mean() + 0.5 * F.softplus(torch.logsumexp(gen, 1)).mean()
    p, q = unl.softmax(1), again.softmax(1)
    ent = -(p * unl.log_softmax(1)).sum(1).mean()
    bal = (p.mean(0) * (10 * p.mean(0)).log()).sum()
    con = ((p - q) ** 2).sum(1).mean()
    total = loss_lab + loss_unl + 0.7 * ent + 1.3 * bal + 2.0 * con
    total.backward()
    assert con.item() > 1e-4, "the two noisy looks must differ, or consistency is not tested"
    for name, ref in (("loss", total), ("loss_lab", loss_lab), ("loss_unl", loss_unl), ("loss_ent", ent),
                      ("loss_bal", bal), ("loss_con", con)):
        close(stats[name], ref.item(), be, name)
    for name, _, grad in gan.D.named_parameters():
        close(grad, pD[name].grad, be, f"D gradient {name}")

    pD = twin_params(be, gan.D)
    gan.G.zero_grad()
    loss = gan.g_backward(x_unl2, z)
    k = gan.features
    real = torch_forward(gan.D, pD, t(be, x_unl2), upto=k, noise=drawn).mean(0)
    f = torch_forward(gan.D, pD, torch_forward(gan.G, pG, t(be, z)), upto=k, noise=drawn)
    fh = f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-12)
    S = fh @ fh.T
    pt = ((S ** 2).sum() - (S.diagonal() ** 2).sum()) / (8 * 7)
    t_loss = ((f.mean(0) - real.detach()) ** 2).mean() + 0.4 * pt
    t_loss.backward()
    close(loss, t_loss.item(), be, "feature matching + pull-away")
    for name, _, grad in gan.G.named_parameters():
        close(grad, pG[name].grad, be, f"G gradient {name}")
