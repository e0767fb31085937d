"""Do conditional-GAN digits help a classifier trained on few real digits? Four arms at n real digits per class.

(a) real only; (b) real + classic augmentation (shift, rotation, elastic); (c) real + digits from a conditional
GAN trained on the same n-per-class subset; (d) real + both. Every arm trains the same MLP for the same number
of steps on the same batch size: half of each batch is real, half synthetic (in (d): a quarter classic, a
quarter GAN). Accuracy is measured on the 10k MNIST test split, as mean +- std over seeds.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package beside this script, installed or not
import tinygan as tg  # noqa: E402
from tinygan import augment, classifier, data  # noqa: E402
from tinygan.classifier import accuracy  # noqa: E402
from tinygan.cli import Parser, fail, positive, sizes  # noqa: E402
from tinygan.fileio import atomic_write  # noqa: E402
from tinygan.dataset import Dataset  # noqa: E402
from tinygan.gan import GAN, make_config  # noqa: E402
from tinygan.layers import Dense, Dropout, ReLU, Sequential  # noqa: E402
from tinygan.plots import save_grid  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"  # checkout-side copy, if any
ARMS = {"real": "(a) real only", "classic": "(b) real + classic aug", "gan": "(c) real + cGAN",
        "both": "(d) real + classic + cGAN"}
NS = (10, 50, 100, 500)
HIDDEN, DROPOUT = (256, 128), 0.2   # the classifier: 784 -> 256 -> 128 -> 10, the same in every arm
BATCH, LR = 64, 1e-3                # classifier batch (half real, half synthetic) and peak Adam lr
STEPS = 1500                        # classifier steps, every arm
# The GAN: the deep preset (AC-GAN head included), narrowed so twelve of them fit on two cores; EMA for sampling.
# lr 5e-4 and a 16-d latent: in a probe (n=10) the preset's 2e-4 / 100-d G still ignored the labels after
# 2000 iterations (shipped-classifier agreement 0.11), while these agreed 0.55 by then and were rising.
GAN_OVERRIDES = dict(g_hidden=[128, 256, 512], d_hidden=[256, 128], latent_dim=16, lr=5e-4, ema=0.995,
                     batch_size=64)
POOL = 500                          # GAN digits drawn per class, once per GAN, for the classifier batches
HOLDOUT = 5000                      # offline: the bundled 10k is split into 5000 to draw from, 5000 to test on


def gan_iterations(n):
    """The default GAN budget for n real digits per class: more data, more iterations."""
    return int(2400 + n)  # 10: 2410, 50: 2450, 100: 2500, 500: 2900


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=sizes, default=list(NS), help="real digits per class, comma-separated (default: 10,50,100,500)")
    p.add_argument("--seeds", type=positive(int), default=3, help="seeds per n (subset, GAN and classifier)")
    p.add_argument("--data", default=None,
                   help="folder with the MNIST files (default: shared/data/mnist beside the checkout if it exists, "
                        "else --data's usual lookup: $TINYGAN_DATA, the user cache, a download)")
    p.add_argument("--out", default="runs/augment", help="folder for the table, plot and JSON")
    p.add_argument("--gan-iterations", type=positive(int), help="GAN iterations for every n (default: 2400 + n)")
    p.add_argument("--steps", type=positive(int), default=STEPS, help="classifier steps, the same in every arm")
    p.add_argument("--quick", action="store_true", help="CI smoke run: n=10, one seed, tiny budgets")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.seeds, args.steps = [10], 1, 60
        args.gan_iterations = args.gan_iterations or 40
    return args


def load_data(data_dir):
    """(train images, train labels, test images, test labels, note): full MNIST, or an honest offline split."""
    if data.find_mnist(data_dir, verbose=False) is not None:
        x, y = data.load_mnist("train", data_dir=data_dir, verbose=False)
        xt, yt = data.load_mnist("test", data_dir=data_dir, verbose=False)
        return x, y, xt, yt, "MNIST: subsets of the 60k train split; accuracy on the full 10k test split"
    # Only the bundled t10k split is here: draw the real digits from its first half and test on the other
    # half, so no test digit is ever trained on. The numbers are then NOT the standard-test-split numbers.
    x, y = data.load_mnist("test", verbose=False)
    note = (f"OFFLINE: full MNIST not found; the bundled 10k test split was split into {HOLDOUT} images to "
            f"draw subsets from and {len(x) - HOLDOUT} held-out images to test on (not the standard protocol)")
    return x[:HOLDOUT], y[:HOLDOUT], x[HOLDOUT:], y[HOLDOUT:], note


def train_gan(images, labels, iterations, seed):
    """A conditional deep-preset GAN trained only on the given real digits."""
    config = make_config("deep", conditional=True, iterations=iterations, seed=seed, **GAN_OVERRIDES)
    be = tg.Backend("numpy", "float32", seed)
    gan, real = GAN(config, be), Dataset(images, labels, be, config["data_range"])
    for _ in range(iterations):
        gan.step(*real.sample(config["batch_size"]))
    return gan


def build_mlp(seed):
    """The classifier every arm trains: 784 -> 256 -> 128 -> 10 logits, ReLU and dropout; init from the seed."""
    be = tg.Backend("numpy", "float32", seed)  # same seed, same initial weights in all four arms
    sizes, layers = (784, *HIDDEN), []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(a, b, be=be), ReLU(), Dropout(DROPOUT, be=be)]
    return Sequential(*layers, Dense(sizes[-1], 10, be=be), be=be).train()


def make_batch(arm, real, fake, rng):
    """One classifier batch for an arm: (images (BATCH, 784) float32 in [0, 1], labels (BATCH,))."""
    # real: (uint8 images (N, 28, 28), labels); fake: (float images (M, 28, 28) in [0, 1], labels) or None
    half = BATCH // 2
    parts = {"real": [("real", BATCH)], "classic": [("real", half), ("classic", half)],
             "gan": [("real", half), ("gan", half)],
             "both": [("real", half), ("classic", half // 2), ("gan", half - half // 2)]}[arm]
    xs, ys = [], []
    for kind, k in parts:
        images, labels = fake if kind == "gan" else real
        i = rng.integers(0, len(labels), k)  # with replacement, like the GAN's batches
        x = images[i]
        if kind == "classic":
            x = augment.random_augment(x, rng)  # a fresh distortion every time a digit is drawn
        xs.append(data.to_unit(x) if x.dtype == np.uint8 else x.astype(np.float32))
        ys.append(labels[i])
    return np.concatenate(xs).reshape(BATCH, 784), np.concatenate(ys).astype(np.int64)


def train_classifier(arm, real, fake, steps, seed):
    """Adam with a per-step cosine lr (LR -> LR/100) for `steps` batches of the arm's mix; returns the model."""
    model = build_mlp(seed)
    opt = tg.Adam(model.parameters(), lr=LR)
    rng = np.random.default_rng((seed, list(ARMS).index(arm)))
    for t in range(steps):
        opt.lr = LR * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t / max(steps - 1, 1))))
        x, y = make_batch(arm, real, fake, rng)
        model.zero_grad()
        _, grad = tg.softmax_cross_entropy(model.forward(model.be.asarray(x)), y)
        model.backward(grad, input_grad=False)
        opt.step()
    return model


def judge(results, ns, seeds):
    """Verdict lines computed from the accuracies: the winner at each n, and each arm against (a)."""
    lines = []
    for n in ns:
        acc = {arm: np.array(results[str(n)][arm]) for arm in ARMS}
        ranked = sorted(ARMS, key=lambda a: -acc[a].mean())
        best, second = ranked[0], ranked[1]
        gap = 100 * (acc[best].mean() - acc[second].mean())
        line = f"n={n}: {ARMS[best]} wins, {gap:.2f} pts ahead of {ARMS[second]}"
        if seeds > 1:
            std = 100 * max(acc[best].std(ddof=1), acc[second].std(ddof=1))
            line += f" (= {gap / std:.1f}x the larger std, {std:.2f} pts)" if std > 0 else ""
        parts = []
        for arm in list(ARMS)[1:]:  # paired by seed: same subset, same initial weights
            d = 100 * (acc[arm] - acc["real"])
            if seeds > 1:
                se = d.std(ddof=1) / math.sqrt(seeds)
                call = "better" if d.mean() > 2 * se else "worse" if d.mean() < -2 * se else "within noise"
                parts.append(f"{arm} {d.mean():+.2f} +- {se:.2f} pts vs real ({call})")
            else:
                parts.append(f"{arm} {d.mean():+.2f} pts vs real (one seed: no error bar)")
        lines.append(line + "; " + "; ".join(parts))
    return lines


def table(results, ns, agree):
    """The markdown table: mean +- std test accuracy (%) per n and arm, and the GAN's label agreement."""
    head = "| n per class | " + " | ".join(ARMS.values()) + " | cGAN label agreement |"
    rows = [head, "|" + "---|" * (len(ARMS) + 2)]
    for n in ns:
        cells = []
        for arm in ARMS:
            a = 100 * np.array(results[str(n)][arm])
            cells.append(f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0:.2f}")
        g = agree.get(str(n))
        cells.append(f"{100 * np.mean(g):.1f}%" if g else "n/a")
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(results, ns, path, title):
    """Accuracy vs n (log x), one line per arm, std error bars; written atomically as PNG."""
    from matplotlib.figure import Figure  # a bare Figure draws headless without pyplot's global state
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for k, (arm, name) in enumerate(ARMS.items()):
        acc = [100 * np.array(results[str(n)][arm]) for n in ns]
        x = np.array(ns) * (1 + 0.03 * (k - 1.5))  # a small sideways offset so the error bars don't hide
        ax.errorbar(x, [a.mean() for a in acc], yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in acc],
                    marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("real labelled digits per class (n)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    data_dir = args.data if args.data is not None else (str(SHARED) if SHARED.is_dir() else None)
    try:
        x_train, y_train, x_test, y_test, note = load_data(data_dir)
    except data.MNISTDataError as e:
        fail("augment_mnist.py", e)
    print(note, flush=True)
    fewest = int(np.bincount(y_train, minlength=10).min())
    if max(args.n) > fewest:
        fail("augment_mnist.py", f"n={max(args.n)} per class asked for, but the training pool has only "
             f"{fewest} digits of its rarest class; use a smaller --n (or the full MNIST via --data)")
    x_test = data.to_unit(x_test)  # (N, 28, 28) float32
    try:  # the shipped classifier (60k-trained) checks that GAN digits look like their labels: a diagnostic only
        judge_model = classifier.load_classifier(tg.Backend("numpy", "float32", 0))
    except Exception as e:  # a missing/odd weights file must not stop the experiment
        judge_model = None
        print(f"no label-agreement check ({e})")
    os.makedirs(args.out, exist_ok=True)

    results, agree, gan_budget = {}, {}, {}
    for n in args.n:
        results[str(n)] = {arm: [] for arm in ARMS}
        iterations = args.gan_iterations or gan_iterations(n)
        gan_budget[str(n)] = iterations
        for seed in range(args.seeds):
            t0 = time.time()
            pick = augment.balanced_subset(y_train, n, seed)
            real = (x_train[pick], y_train[pick].astype(np.int64))   # (10 n, 28, 28) uint8, (10 n,)
            gan = train_gan(*real, iterations, seed=1000 + seed)
            fake_y = np.repeat(np.arange(10), POOL)                   # POOL digits of each class
            fake = (gan.sample(len(fake_y), fake_y).astype(np.float32), fake_y)
            if judge_model is not None:
                probs, _ = classifier.predict(judge_model, fake[0])
                agree.setdefault(str(n), []).append(float((probs.argmax(1) == fake_y).mean()))
            if seed == 0:
                save_grid(fake[0][::POOL // 10], os.path.join(args.out, f"gan_samples_n{n}.png"), nrow=10,
                          row_labels=[str(d) for d in range(10)], title=f"cGAN digits, n={n} per class")
            t_gan = time.time() - t0
            for arm in ARMS:
                model = train_classifier(arm, real, fake, args.steps, seed)
                results[str(n)][arm].append(accuracy(model, x_test, y_test))
            accs = "  ".join(f"{arm} {100 * results[str(n)][arm][-1]:.2f}" for arm in ARMS)
            print(f"n={n:4d} seed {seed}: {accs}  (GAN {iterations} it {t_gan:.0f}s, total "
                  f"{time.time() - t0:.0f}s, elapsed {time.time() - start:.0f}s)", flush=True)

    runtime = time.time() - start
    where = f"{os.cpu_count()} CPU cores, numpy backend"
    verdict = judge(results, args.n, args.seeds)
    tab = table(results, args.n, agree)
    setup = (f"{args.seeds} seed(s); classifier MLP 784-{HIDDEN[0]}-{HIDDEN[1]}-10 (dropout {DROPOUT}), "
             f"{args.steps} Adam steps of batch {BATCH}, cosine lr {LR:g} -> {LR / 100:g}; "
             f"real:synthetic 1:1 per batch in (b)-(d), (d) splits the synthetic half 1:1 classic:cGAN; "
             f"cGAN: deep preset, g_hidden {GAN_OVERRIDES['g_hidden']}, d_hidden {GAN_OVERRIDES['d_hidden']}, "
             f"EMA {GAN_OVERRIDES['ema']}, iterations {gan_budget}, pool {POOL}/class")
    md = (f"# Augmenting small MNIST subsets: classic vs conditional GAN\n\n{note}.\n\n{setup}.\n\n"
          f"Test accuracy (%), mean ± std over seeds:\n\n{tab}\n\n"
          f"Runtime: {runtime:.0f} s on {where}.\n\nVerdict (computed from the numbers; paired by seed, "
          f"'better'/'worse' = mean difference beyond 2 standard errors):\n\n"
          + "\n".join(f"- {v}" for v in verdict) + "\n")
    print("\n" + tab + f"\n\nruntime {runtime:.0f}s on {where}\n" + "\n".join(verdict))
    raw = {"note": note, "setup": setup, "ns": args.n, "seeds": args.seeds, "steps": args.steps,
           "gan_iterations": gan_budget, "accuracy": results, "gan_label_agreement": agree,
           "runtime_s": round(runtime, 1), "machine": where, "verdict": verdict}
    out = Path(args.out)
    atomic_write(out / "augment_results.md", lambda f: f.write(md.encode()))
    atomic_write(out / "augment_results.json", lambda f: f.write(json.dumps(raw, indent=2).encode() + b"\n"))
    plot(results, args.n, out / "augment_results.png",
         f"MNIST with n real digits per class, {args.seeds} seed(s), {args.steps} classifier steps")
    print(f"wrote {out}/augment_results.md, augment_results.png, augment_results.json")


if __name__ == "__main__":
    main()
