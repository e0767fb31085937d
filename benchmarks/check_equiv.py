"""Check that torch_gan.TorchGAN is the same step as GAN.step: same weights, batch and noise -> same losses.

Losses agree to float32 rounding. Weights can differ by up to 2 x lr after one step: Adam divides each
gradient by its own size, so an entry near zero (~1e-8) whose float32 sign depends on summation order
moves by +lr on one side and -lr on the other. The EMA differences are of the same origin.
"""
import numpy as np
import torch

import common
import tinygan as tg
from tinygan.models.gan import GAN, make_config
from torch_gan import TorchGAN, variants


def linears(torch_seq, tg_seq):
    """Pairs (tinygan Dense, torch Linear) in order."""
    return zip([l for l in tg_seq.layers if l.params], [m for m in torch_seq if isinstance(m, torch.nn.Linear)])


def compare(preset, kw, images, B=64, steps=3):
    """(max |loss difference|, max |G weight difference|, max |G EMA difference|) after `steps` identical steps."""
    gan = GAN(make_config(preset), tg.Backend("numpy", "float32", 0))
    tgan = TorchGAN(preset, B, images, **kw)
    for tg_seq, t_seq in ((gan.G, tgan.G), (gan.D, tgan.D)):
        for dense, lin in linears(t_seq, tg_seq):
            lin.weight.data[:] = torch.from_numpy(dense.W.T.copy())   # torch keeps W as (out, in)
            lin.bias.data[:] = torch.from_numpy(dense.b.copy())
    if tgan.ema is not None:
        tgan.ema = [p.detach().clone() for p in tgan.g_params]     # EMA starts from the copied weights
    real = images[:B].reshape(B, -1).astype(np.float32) * tgan.scale + tgan.shift
    noise, draw = [], gan.be.randn

    def record(*shape, out=None):                                    # record tinygan's noise
        z = draw(*shape, out=out)
        noise.append(z.copy())  # z may be a reused buffer
        return z
    gan.be.randn = record
    ours = [gan.step(real) for _ in range(steps)]
    z = iter(noise)
    randint, randn = torch.randint, torch.randn
    torch.randint = lambda *a, **k: torch.arange(B)                  # the same real batch
    torch.randn = lambda *a, **k: torch.from_numpy(next(z))          # the same noise
    try:
        theirs = [tgan.step() for _ in range(steps)]
    finally:
        torch.randint, torch.randn = randint, randn
    dloss = max(abs(float(o[k]) - float(t[i])) for o, t in zip(ours, theirs) for i, k in enumerate(("d_loss", "g_loss")))
    dw = max(float(abs(d.W.T - l.weight.detach().numpy()).max()) for d, l in linears(tgan.G, gan.G))
    dema = 0.0
    if gan.ema is not None:  # tinygan's EMA is one flat buffer in G's parameter order: W then b per layer
        flat = np.concatenate([t.detach().numpy().T.ravel() if t.ndim == 2 else t.detach().numpy() for t in tgan.ema])
        dema = float(abs(gan.ema - flat).max())
    return dloss, dw, dema


if __name__ == "__main__":
    images, _ = common.load_train()
    for preset in common.PRESETS:
        for name, kw in variants(preset).items():
            dloss, dw, dema = compare(preset, kw, images)
            print(f"{preset:5s} {name:28s} max |loss diff| {dloss:.1e}  max |G weight diff| {dw:.1e}  "
                  f"max |G EMA diff| {dema:.1e}")
