"""The same GAN step in PyTorch (the oracle to beat), with its speed options as switches."""
import torch
from torch import nn

from tinygan.models.gan import IMAGE, make_config


def mlp(sizes, act, out):
    """Linear layers with an activation between, then `out` (None, 'sigmoid' or 'tanh'); Glorot init as tinygan."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU() if act == "relu" else nn.LeakyReLU(0.2))
    if out:
        layers.append({"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[out]())
    return nn.Sequential(*layers)


class TorchGAN:
    """One D update on real+fake (concatenated), then one non-saturating G update through a frozen D, then the EMA.

    opt: 'foreach' or 'fused' Adam; logits: BCEWithLogits (else Sigmoid + BCELoss, seed only);
    freeze: D's params get requires_grad_(False) during the G step, so no D weight grads are computed.
    """

    def __init__(self, preset, batch, images, device="cpu", opt="foreach", logits=True, freeze=True, seed=0,
                 capturable=False):
        c = make_config(preset)
        torch.manual_seed(seed)
        self.B, self.latent, self.device, self.freeze = batch, c["latent_dim"], device, freeze
        self.G = mlp([c["latent_dim"], *c["g_hidden"], IMAGE], c["act"], c["g_out"]).to(device)
        # seed's D ends in a sigmoid; with logits=True the sigmoid moves into the loss (same maths).
        d_out = None if (c["d_logits"] or logits) else "sigmoid"
        self.D = mlp([IMAGE, *c["d_hidden"], 1], c["act"], d_out).to(device)
        self.loss = nn.BCELoss() if d_out else nn.BCEWithLogitsLoss()
        kw = dict(lr=c["lr"], betas=(c["beta1"], c["beta2"]), **{opt: True}, **({"capturable": True} if capturable else {}))
        self.opt_g = torch.optim.Adam(self.G.parameters(), **kw)
        self.opt_d = torch.optim.Adam(self.D.parameters(), **kw)
        self.d_params, self.g_params = list(self.D.parameters()), list(self.G.parameters())
        # The preset's EMA of G's weights (deep keeps one for sampling), as tinygan's GAN.step does.
        self.ema_decay, self.iteration = c["ema"], 0
        self.ema = [p.detach().clone() for p in self.g_params] if c["ema"] else None
        # Captured in a CUDA graph, the EMA decay must come from a step counter on the device, not from Python.
        self.count = torch.zeros((), device=device) if capturable else None
        # Data stays uint8 (N, 784) on the device; each batch is converted, as tinygan's Dataset does.
        self.images = torch.from_numpy(images.reshape(len(images), IMAGE)).to(device)
        self.scale, self.shift = (1 / 255, 0.0) if c["data_range"] == "unit" else (1 / 127.5, -1.0)
        self.ones = torch.ones(batch, 1, device=device)                          # (B, 1)
        self.target = torch.cat([self.ones, torch.zeros(batch, 1, device=device)])  # (2B, 1)

    def step(self):
        """One training iteration including sampling the real batch; returns (d_loss, g_loss) tensors."""
        B, dev = self.B, self.device
        idx = torch.randint(len(self.images), (B,), device=dev)
        real = self.images[idx].float().mul_(self.scale).add_(self.shift)  # (B, 784)

        with torch.no_grad():                     # D's update does not backprop into G
            fake = self.G(torch.randn(B, self.latent, device=dev))
        d_loss = self.loss(self.D(torch.cat([real, fake])), self.target)  # mean over 2B
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        if self.freeze:
            for p in self.d_params:
                p.requires_grad_(False)
        g_loss = self.loss(self.D(self.G(torch.randn(B, self.latent, device=dev))), self.ones)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()                         # without freeze D's .grad is filled and discarded
        self.opt_g.step()
        if self.freeze:
            for p in self.d_params:
                p.requires_grad_(True)
        self.iteration += 1
        if self.ema is not None:                  # ema = d ema + (1 - d) params, d ramping up as in tinygan
            with torch.no_grad():
                if self.count is None:
                    d = min(self.ema_decay, (1 + self.iteration) / (10 + self.iteration))
                    torch._foreach_lerp_(self.ema, self.g_params, 1 - d)
                else:
                    self.count += 1
                    d = torch.clamp((1 + self.count) / (10 + self.count), max=self.ema_decay)
                    for e, p in zip(self.ema, self.g_params):
                        e.lerp_(p, 1 - d)
        return d_loss.detach(), g_loss.detach()


def variants(preset):
    """The option combinations to race: {name: kwargs}; the best one is PyTorch's number."""
    out = {}
    for opt in ("foreach", "fused"):
        for freeze in (True, False):
            for logits in ((True, False) if preset == "seed" else (True,)):
                name = f"{opt}{'+frozenD' if freeze else ''}{'' if logits else '+sigmoidBCE'}"
                out[name] = dict(opt=opt, freeze=freeze, logits=logits)
    return out


class GraphedTorchGAN:
    """TorchGAN's step (sampling included) captured once as a CUDA graph, with capturable Adam, and replayed."""

    def __init__(self, preset, batch, images, device="cuda", **kw):
        self.gan = TorchGAN(preset, batch, images, device, capturable=True, **kw)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up steps on a side stream, as PyTorch's whole-network capture asks
            for _ in range(3):
                self.gan.step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self.gan.step()

    def step(self):
        self.graph.replay()
        return self.out
