"""The few-label experiment's arms: one classifier, each arm's batches, self-training, and the results table."""
import math

import numpy as np

from ..data import augment
from ..engine.backend import Backend
from ..models.classifier import accuracy, predict
from ..engine.layers import Dense, Dropout, ReLU, Sequential
from .supervised import fit

ARMS = {"real": "(a) real only", "classic": "(b) real + classic aug", "gan": "(c) real + cGAN",
        "both": "(d) real + classic + cGAN", "ssl": "(e) semi-supervised GAN",
        "selftrain": "(f) classic aug + self-training"}
HIDDEN, DROPOUT = (256, 128), 0.2   # the classifier: 784 -> 256 -> 128 -> 10, the same in every arm but (e)
BATCH, LR = 64, 1e-3                # classifier batch and peak Adam lr
ROUNDS, THRESHOLD = 3, 0.95         # self-training: rounds of pseudo-labels, and the confidence they need

# Each arm's batch, as (pool, rows): half real in every arm that mixes; "+aug" draws get a fresh classic
# distortion. (f) mixes the labelled digits and the pseudo-labelled ones 1:1, each half raw, half distorted.
MIX = {"real": [("real", BATCH)], "classic": [("real", 32), ("real+aug", 32)],
       "gan": [("real", 32), ("gan", 32)], "both": [("real", 32), ("real+aug", 16), ("gan", 16)],
       "selftrain": [("real", 16), ("real+aug", 16), ("pseudo", 16), ("pseudo+aug", 16)]}


def build_mlp(seed):
    """The classifier every arm trains: 784 -> 256 -> 128 -> 10 logits, ReLU and dropout; init from the seed."""
    be = Backend("numpy", "float32", seed)  # same seed, same initial weights in every arm
    sizes, layers = (784, *HIDDEN), []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(a, b, be=be), ReLU(), Dropout(DROPOUT, be=be)]
    return Sequential(*layers, Dense(sizes[-1], 10, be=be), be=be)


def batch_of(mix, pools, rng):
    """(images (BATCH, 784) float32 in [0, 1], labels (BATCH,)) drawn from pools {name: (images, labels)}."""
    # pools: uint8 (N, 28, 28) or float (N, 28, 28) in [0, 1] images with int labels; draws with replacement
    xs, ys = [], []
    for pool, k in mix:
        images, labels = pools[pool.removesuffix("+aug")]
        i = rng.integers(0, len(labels), k)
        x = images[i]
        if pool.endswith("+aug"):
            x = augment.random_augment(x, rng)  # a fresh distortion every time a digit is drawn
        xs.append(x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32))
        ys.append(labels[i])
    return np.concatenate(xs).reshape(BATCH, 784), np.concatenate(ys).astype(np.int64)


def train_arm(arm, pools, steps, seed):
    """The arm's classifier after `steps` Adam steps on its mix of the pools (cosine lr LR -> LR/100)."""
    rng = np.random.default_rng((seed, list(ARMS).index(arm)))
    return fit(build_mlp(seed), lambda r: batch_of(MIX[arm], pools, r), steps, lr=LR, rng=rng)


def pseudo_labels(model, images, threshold=THRESHOLD):
    """(indices, labels) of the images the model reads with confidence >= threshold, the same number per digit."""
    probs, _ = predict(model, images.astype(np.float32) / 255 if images.dtype == np.uint8 else images)
    return confident_per_class(probs, threshold)


def confident_per_class(probs, threshold):
    """(indices, labels) of the rows of probs (N, 10) whose top class has probability >= threshold, the same
    number of each class (the fewest any class has), the most confident of each; also `tinygan ssl`'s rule."""
    conf, guess = probs.max(axis=1), probs.argmax(axis=1)
    sure = [np.flatnonzero((guess == c) & (conf >= threshold)) for c in range(10)]
    k = min(len(s) for s in sure)  # balanced: a class the model favours must not crowd out the others
    keep = np.concatenate([s[np.argsort(-conf[s])[:k]] for s in sure]).astype(np.int64)
    return keep, guess[keep]


def self_train(real, unlabelled, steps, seed, rounds=ROUNDS, threshold=THRESHOLD):
    """(f): train with classic augmentation, then `rounds` times label the unlabelled digits it is sure of and retrain."""
    # real: (uint8 images, labels) of the labelled subset; unlabelled: uint8 (N, 28, 28), labels unseen
    model, history = train_arm("classic", {"real": real}, steps, seed), []
    for _ in range(rounds):
        keep, guess = pseudo_labels(model, unlabelled, threshold)
        if not len(keep):
            break
        history.append(len(keep))
        model = train_arm("selftrain", {"real": real, "pseudo": (unlabelled[keep], guess)}, steps, seed)
    return model, history


def judge(results, ns, seeds, arms):
    """Verdict lines computed from the accuracies: the winner at each n, and each arm against (a)."""
    lines = []
    for n in ns:
        acc = {arm: np.array(results[str(n)][arm]) for arm in arms}
        ranked = sorted(arms, key=lambda a: -acc[a].mean())
        best, second = ranked[0], ranked[1] if len(ranked) > 1 else None
        if second is None:  # one arm: nothing to rank it against
            lines.append(f"n={n}: {ARMS[best]} {100 * acc[best].mean():.2f}% (the only arm run)")
            continue
        gap = 100 * (acc[best].mean() - acc[second].mean())
        line = f"n={n}: {ARMS[best]} wins, {gap:.2f} pts ahead of {ARMS[second]}"
        if seeds > 1:
            std = 100 * max(acc[best].std(ddof=1), acc[second].std(ddof=1))
            line += f" (= {gap / std:.1f}x the larger std, {std:.2f} pts)" if std > 0 else ""
        parts = []
        for arm in [a for a in arms if a != "real"] if "real" in arms else []:  # paired by seed: same subset
            d = 100 * (acc[arm] - acc["real"])
            if seeds > 1:
                se = d.std(ddof=1) / math.sqrt(seeds)
                call = "better" if d.mean() > 2 * se else "worse" if d.mean() < -2 * se else "within noise"
                parts.append(f"{arm} {d.mean():+.2f} +- {se:.2f} pts vs real ({call})")
            else:
                parts.append(f"{arm} {d.mean():+.2f} pts vs real (one seed: no error bar)")
        lines.append(line + ("; " + "; ".join(parts) if parts else ""))
    return lines


def table(results, ns, arms, agree=None):
    """The markdown table: mean +- std test accuracy (%) per n (and labels) and arm, and the cGAN's label agreement."""
    agree = agree or {}
    head = "| n per class (labels) | " + " | ".join(ARMS[a] for a in arms) + " | cGAN label agreement |"
    rows = [head, "|" + "---|" * (len(arms) + 2)]
    for n in ns:
        cells = []
        for arm in arms:
            a = 100 * np.array(results[str(n)][arm])
            cells.append(f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0:.2f}")
        g = agree.get(str(n))
        cells.append(f"{100 * np.mean(g):.1f}%" if g else "n/a")
        rows.append(f"| {n} ({10 * n}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(results, ns, arms, path, title):
    """Accuracy vs n (log x), one line per arm, std error bars; written atomically as PNG."""
    from matplotlib.figure import Figure  # a bare Figure draws headless without pyplot's global state

    from ..run.fileio import atomic_write
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for k, arm in enumerate(arms):
        acc = [100 * np.array(results[str(n)][arm]) for n in ns]
        x = np.array(ns) * (1 + 0.03 * (k - (len(arms) - 1) / 2))  # a small sideways offset: error bars stay visible
        ax.errorbar(x, [a.mean() for a in acc], yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in acc],
                    marker="o", capsize=3, label=ARMS[arm])
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([f"{n}\n({10 * n})" for n in ns])
    ax.set_xlabel("labelled digits per class (in all)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def evaluate(model, x_test, y_test):
    """Test accuracy of a classifier (or an exported recognizer) on uint8 or [0, 1] test images."""
    return accuracy(model, x_test.astype(np.float32) / 255 if x_test.dtype == np.uint8 else x_test, y_test)


def plot_error_vs_time(runs, path, anchor=0.93):
    """Test error (log) against training time for semi-supervised runs {(labels, seed): log records}, as PNG."""
    from matplotlib.figure import Figure

    from ..run.fileio import atomic_write
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    colours = {labels: f"C{k % 10}" for k, labels in enumerate(sorted({labels for labels, _ in runs}))}
    for (labels, seed), records in sorted(runs.items()):  # a colour per label count, a line style per seed
        ax.plot([r["seconds"] / 3600 for r in records], [100 * r["test_err"] for r in records], lw=1.2,
                color=colours[labels], ls=("-", "--", ":", "-.")[seed % 4], label=f"{labels} labels, seed {seed}")
    ax.axhline(anchor, color="gray", ls="--", lw=1, label=f"published, 100 labels, 300 epochs ({anchor}%)")
    ax.set_yscale("log")
    ax.set_xlabel("training time (hours, this run's machine)")
    ax.set_ylabel("test error (%), averaged D")
    ax.set_title("semi-supervised GAN: test error against training time", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
