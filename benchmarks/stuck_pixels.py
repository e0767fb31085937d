"""Stuck pixels: how often a GAN's samples all light a pixel that real digits almost never light, and why.

python benchmarks/stuck_pixels.py --data DIR [--preset seed|deep] [--iterations N] [--every 10] [--save run.npz]

Trains the preset exactly as `python examples/train_mnist.py --data DIR` does (same seed, same random
stream, same final weights) and every `--every` iterations looks at 1,000 samples from fixed noise:

- which pixels are lit (above mid-grey) in how many samples;
- D's sensitivity to each pixel: the mean over those samples of d logit D / d pixel (> 0: D rewards
  lighting it, < 0: D punishes it);
- Adam's normalised step for each pixel's output bias in G, m_hat / (sqrt(v_hat) + eps): how far, in
  units of lr, the next updates move it (+: towards lit), whatever the size of the gradient.

A rare pixel is one lit in under 1% of the real training digits; an episode is a run of trace points at
which some rare pixel is lit in at least 99% of the samples. The report gives the share of trace points
inside an episode, the episodes, the lifecycle of the longest complete one, and for the final weights which hidden
units and weights hold the pixel on. See README.md, "Stuck pixels".
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tinygan as tg  # noqa: E402
from tinygan.data.mnist import load_mnist  # noqa: E402
from tinygan.models.gan import GAN, IMAGE, Dataset, make_config  # noqa: E402

RARE, STUCK = 0.01, 0.99  # rare: lit in < 1% of real digits; stuck: lit in >= 99% of samples


def unit(gan, images):
    """G's images in [0, 1] (the signed presets' [-1, 1] mapped back)."""
    return (images + 1) / 2 if gan.config["data_range"] == "signed" else images


def trace_point(gan, probe, bias_at):
    """(fraction of probe samples with each pixel lit, D's mean sensitivity to each pixel, Adam's step for each output bias)."""
    xp = gan.be.xp
    gan.D.eval()                                                   # no dropout: the training stream is untouched
    fake = gan.G.forward(probe)                                    # (N, 784) in the preset's range
    lit = (unit(gan, fake) > 0.5).mean(axis=0)
    gan.D.forward(fake, upto=gan.logits)
    dx = gan.D.backward(xp.full((len(probe), 1), 1 / len(probe), dtype=fake.dtype), param_grads=False, upto=gan.logits)
    sensitivity = dx.sum(axis=0)                                   # mean over samples of d logit / d pixel
    gan.D.train()
    opt = gan.opt_g
    b1, b2 = opt.betas
    m = opt.m[0][bias_at] / (1 - b1 ** opt.t)
    v = opt.v[0][bias_at] / (1 - b2 ** opt.t)
    return lit, sensitivity, -m / (np.sqrt(v) + opt.eps)  # Adam moves each bias by -lr m_hat / (sqrt(v_hat) + eps)


def episodes(stuck, its):
    """[(first iteration, trace points, pixel)] for each run of trace points where a pixel is stuck."""
    out = []
    for p in np.flatnonzero(stuck.any(axis=0)):
        s = np.r_[False, stuck[:, p], False]
        starts, ends = np.flatnonzero(~s[:-1] & s[1:]), np.flatnonzero(s[:-1] & ~s[1:])
        out += [(int(its[a]), int(b - a), int(p)) for a, b in zip(starts, ends)]
    return sorted(out)


def holders(gan, p, n=10000, seed=5):
    """Which hidden units and weights hold G's output pixel p on, over n samples of the final G."""
    be = tg.Backend("numpy", "float32", seed)
    z = be.randn(n, gan.config["latent_dim"])
    last = max(i for i, layer in enumerate(gan.G.layers) if layer.params)
    h = gan.G.forward(z, upto=last).copy()                         # (n, hidden): the last Dense layer's input
    W, b = gan.G.layers[last].W[:, p], float(gan.G.layers[last].b[p])
    contrib = h * W                                                # (n, hidden): each unit's share of the pixel's logit
    logit = contrib.sum(axis=1) + b
    mean = contrib.mean(axis=0)
    top = np.argsort(-mean)[:5]
    print(f"  pixel {divmod(p, 28)}: logit min {logit.min():.2f}, median {np.median(logit):.2f}; bias {b:+.3f}; "
          f"{(mean > 0).sum()} of {h.shape[1]} hidden units push it up, {(mean < 0).sum()} down")
    print(f"  the sum of the positive shares is {mean[mean > 0].sum():.2f}, of the negative {mean[mean < 0].sum():.2f}")
    for j in top:
        print(f"    unit {j:4d}: mean share {mean[j]:+.3f}, active in {np.mean(h[:, j] > 0):.0%} of samples, "
              f"weight {W[j]:+.3f}")


def plot(path, its, lit, sens, step, p, window):
    """One episode's pixel: lit fraction, D's sensitivity and G's Adam step over the window of iterations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a, b = window
    fig, ax = plt.subplots(3, 1, figsize=(7, 6), sharex=True)
    for axis, y, label in zip(ax, (lit[a:b, p], sens[a:b, p], step[a:b, p]),
                              ("lit in samples", "D sensitivity\n(d logit / d pixel)", "Adam step of G's\npixel bias (x lr)")):
        axis.plot(its[a:b], y)
        axis.axhline(0, color="grey", lw=0.5)
        axis.set_ylabel(label)
    ax[0].set_title(f"pixel {divmod(p, 28)}: one stuck-pixel episode")
    ax[-1].set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with the full MNIST IDX files")
    ap.add_argument("--preset", choices=["seed", "deep"], default="seed")
    ap.add_argument("--iterations", type=int, help="(the preset's default)")
    ap.add_argument("--every", type=int, default=10, help="iterations between trace points")
    ap.add_argument("--from", dest="start", type=int, default=1000, help="shares count trace points after this")
    ap.add_argument("--save", help="write the traces to this .npz")
    ap.add_argument("--load", help="report on traces saved by --save instead of training")
    ap.add_argument("--plot", help="draw the longest complete episode to this .png")
    args = ap.parse_args(argv)

    images, labels = load_mnist("train", data_dir=args.data)
    real_lit = (images.reshape(len(images), IMAGE) > 127).mean(axis=0)
    rare = real_lit < RARE
    gan = None
    if args.load:
        f = np.load(args.load)
        its, lit, sens, step, clipped, every = f["its"], f["lit"], f["sensitivity"], f["adam_step"], f["clipped"], int(f["every"])
    else:
        config = make_config(args.preset, iterations=args.iterations)
        be = tg.Backend("numpy", "float32", seed=config["seed"])   # as train_mnist.py: the same stream
        gan = GAN(config, be)
        data = Dataset(images, labels, be, config["data_range"])
        probe = tg.Backend("numpy", "float32", seed=99).randn(1000, config["latent_dim"])  # its own generator
        bias_at = np.arange(gan.G.flat_params.size - IMAGE, gan.G.flat_params.size)  # G's output biases, flat
        its, lit, sens, step, clipped, every = [], [], [], [], [], args.every
        B = config["batch_size"]
        while gan.iteration < config["iterations"]:
            real, _ = data.sample(B)
            gan.step(real)
            clipped.append(float((gan.d_out[B:] < 1e-7).mean()))  # where a clipped BCE would give G no gradient
            if gan.iteration % every == 0:
                a, s, u = trace_point(gan, probe, bias_at)
                its.append(gan.iteration), lit.append(a), sens.append(s), step.append(u)
        its, lit, sens, step, clipped = map(np.array, (its, lit, sens, step, clipped))
        if args.save:
            np.savez(args.save, its=its, lit=lit, sensitivity=sens, adam_step=step, clipped=clipped, every=every)

    stuck = (lit >= STUCK) & rare
    late = its > args.start
    eps = episodes(stuck, its)
    print(f"{args.preset}: {rare.sum()} rare pixels (lit in < {RARE:.0%} of real digits); "
          f"{len(its)} trace points, every {every} iterations")
    print(f"share of trace points after iteration {args.start} with a rare pixel lit in >= {STUCK:.0%} of samples: "
          f"{stuck[late].any(axis=1).mean():.1%} ({stuck[late].any(axis=1).sum()} of {late.sum()})")
    print(f"episodes: {len(eps)} at {len({p for _, _, p in eps})} distinct pixels; length in iterations: "
          f"median {np.median([n for _, n, _ in eps]) * every if eps else 0:.0f}, "
          f"max {max([n for _, n, _ in eps], default=0) * every}")
    print(f"fake rows of the D update with D(G(z)) < 1e-7 (zero G gradient under a clipped BCE): "
          f"{np.mean(clipped):.2%} of all, {np.mean(clipped[args.start:]):.2%} after iteration {args.start}")
    dark = lit[late] < 0.01
    for name, sel in (("never lit by a real digit", real_lit == 0), ("lit by < 0.1% of real digits", (real_lit > 0) & (real_lit <= 0.001)),
                      ("lit by 0.1-1% of real digits", (real_lit > 0.001) & rare)):
        s = sens[late][dark & sel[None, :]]
        print(f"  {name:30s} {sel.sum():4d} pixels: while G leaves them dark, D rewards lighting them "
              f"{np.mean(s > 0) if s.size else 0:.0%} of the time; {(stuck[late] & sel[None, :]).any(axis=0).sum()} stuck at some point")
    final = np.flatnonzero(stuck[-1])
    print(f"at the last trace point: {len(final)} stuck pixel(s) {[divmod(int(p), 28) for p in final]}")
    if gan is not None:  # what a user samples at the end (the EMA weights, if the preset keeps them)
        lit_final = gan.sample(10000).reshape(10000, IMAGE) > 0.5
        real_any = (images.reshape(len(images), IMAGE)[:, rare] > 127).any(axis=1).mean()
        always = np.flatnonzero(lit_final.all(axis=0) & rare)
        print(f"10,000 final samples ({'EMA' if gan.ema is not None else 'live'} weights): "
              f"{lit_final[:, rare].any(axis=1).mean():.1%} light some rare pixel (real digits: {real_any:.1%}); "
              f"rare pixels lit in all of them: {[divmod(int(p), 28) for p in always]}")
    if not eps:
        return
    ended = [e for e in eps if np.searchsorted(its, e[0]) + e[1] + 30 < len(its)]  # over, with room to see after
    first, n, p = max(ended or eps, key=lambda e: (e[1], e[0]))  # the longest, the latest of equals
    k = int(np.searchsorted(its, first))
    a, b = max(k - 30, 0), min(k + n + 30, len(its))
    print(f"the longest complete episode: pixel {divmod(p, 28)} (lit in {real_lit[p]:.2%} of real digits), "
          f"from iteration {first} for {n * every} iterations")
    print("  iter   lit   D sensitivity   Adam step of its G bias (x lr)")
    for i in range(a, b, max((b - a) // 25, 1)):
        print(f"  {its[i]:5d}  {lit[i, p]:5.3f}  {sens[i, p]:+8.3f}       {step[i, p]:+8.3f}")
    if args.plot:
        plot(args.plot, its, lit, sens, step, p, (a, b))
    for p in final if gan is not None else ():
        holders(gan, int(p))


if __name__ == "__main__":
    main()
