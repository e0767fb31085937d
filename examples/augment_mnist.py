"""Few labels, many unlabelled digits: which use of them makes the best digit classifier? Six arms at n labelled per class.

(a) real only; (b) real + classic augmentation (shift, rotation, elastic); (c) real + digits from a conditional
GAN trained on the same n-per-class subset; (d) real + both; (e) the semi-supervised GAN (train_ssl.py), whose
discriminator learns from the n labelled digits AND all unlabelled training digits; (f) classic augmentation +
self-training on the same unlabelled digits (pseudo-labels above a confidence threshold, a few rounds).
(a)-(d) and (f) train the same MLP for the same number of steps per round on the same batch size.
Accuracy is measured on the 10k MNIST test split, as mean +- std over seeds; every arm of a seed uses the
same labelled subset.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package beside this script, installed or not
import tinygan as tg  # noqa: E402
from tinygan.data import augment, mnist as data  # noqa: E402
from tinygan.models import classifier
from tinygan.run.cli import Parser, fail, names, positive, sizes  # noqa: E402
from tinygan.data.dataset import Dataset  # noqa: E402
from tinygan.measure.experiment import (ARMS, evaluate, judge, plot, plot_error_vs_time, self_train, table,  # noqa: E402
                                train_arm)
from tinygan.run.runs import read_log  # noqa: E402
from tinygan.run.fileio import atomic_write  # noqa: E402
from tinygan.models.gan import GAN, make_config  # noqa: E402
from tinygan.run.plots import save_grid  # noqa: E402
from tinygan.commands import ssl as train_ssl  # noqa: E402  (arm (e) runs the one semi-supervised training loop)
from tinygan.models.recognizer import load_recognizer  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"  # checkout-side copy, if any
NS = (10, 50, 100, 500)
STEPS = 1500                        # classifier steps, every arm (per round in (f))
DEFAULT_ARMS = ["real", "classic", "gan", "both", "selftrain"]  # (e) runs when asked for: it takes hours per run
# The GAN: the deep preset (AC-GAN head included), narrowed so twelve of them fit on two cores; EMA for sampling.
# lr 5e-4 and a 16-d latent: in a probe (n=10) the preset's 2e-4 / 100-d G still ignored the labels after
# 2000 iterations (shipped-classifier agreement 0.11), while these agreed 0.55 by then and were rising.
GAN_OVERRIDES = dict(g_hidden=[128, 256, 512], d_hidden=[256, 128], latent_dim=16, lr=5e-4, ema=0.995,
                     batch_size=64)
POOL = 500                          # GAN digits drawn per class, once per GAN, for the classifier batches


def gan_iterations(n):
    """The default GAN budget for n real digits per class: more data, more iterations."""
    return int(2400 + n)  # 10: 2410, 50: 2450, 100: 2500, 500: 2900


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=sizes, default=list(NS), help="labelled digits per class, comma-separated (default: 10,50,100,500)")
    p.add_argument("--seeds", type=positive(int), default=3, help="seeds per n (subset, GAN and classifier)")
    p.add_argument("--first-seed", type=int, default=0, help="the seeds are FIRST_SEED, FIRST_SEED + 1, ... (default 0)")
    p.add_argument("--arms", type=names(ARMS, "real,ssl"), default=DEFAULT_ARMS, help=f"arms to run (default: {','.join(DEFAULT_ARMS)}; "
                   "'ssl' adds the semi-supervised GAN)")
    p.add_argument("--data", default=None,
                   help="folder with the MNIST files (default: shared/data/mnist beside the checkout if it exists, "
                        "else --data's usual lookup: $TINYGAN_DATA, the user cache, a download)")
    p.add_argument("--out", default="runs/augment", help="folder for the table, plot and JSON")
    p.add_argument("--gan-iterations", type=positive(int), help="GAN iterations for every n (default: 2400 + n)")
    p.add_argument("--steps", type=positive(int), default=STEPS, help="classifier steps, the same in every arm")
    p.add_argument("--ssl-epochs", type=positive(int), default=100, help="epochs of each semi-supervised GAN run (e)")
    p.add_argument("--ssl-runs", default=None, help="folder of the (e) runs, OUT/ssl by default: a run already "
                   "there (labelsL_seedS/) is resumed or reused, so long runs can be made beforehand with train_ssl.py")
    p.add_argument("--quick", action="store_true", help="CI smoke run: n=10, one seed, tiny budgets")
    args = p.parse_args(argv)
    if not 0 <= args.first_seed < 2 ** 31:
        p.error(f"argument --first-seed: {args.first_seed} must be in [0, 2**31)")
    if args.quick:
        args.n, args.seeds, args.steps, args.ssl_epochs = [10], 1, 60, 2
        args.gan_iterations = args.gan_iterations or 40
    return args


def train_gan(images, labels, iterations, seed):
    """A conditional deep-preset GAN trained only on the given real digits."""
    config = make_config("deep", conditional=True, iterations=iterations, seed=seed, **GAN_OVERRIDES)
    be = tg.Backend("numpy", "float32", seed)
    gan, real = GAN(config, be), Dataset(images, labels, be, config["data_range"])
    for _ in range(iterations):
        gan.step(*real.sample(config["batch_size"]))
    return gan


def run_ssl(n, seed, epochs, folder, data_dir, quick):
    """Arm (e): (the recognizer, its info) of a train_ssl.py run on the same subset (reused if done, resumed if begun)."""
    run = Path(folder) / f"labels{10 * n}_seed{seed}"
    done = run / "recognizer.npz"
    if done.is_file() and load_recognizer(done)[1]["epochs"] >= epochs:
        return load_recognizer(done)
    flags = ["--labels", str(10 * n), "--seed", str(seed), "--epochs", str(epochs), "--out", str(run)]
    flags += ["--data", data_dir] if data_dir else []
    flags += ["--quick"] if quick and not (run / "checkpoint.npz").is_file() else []
    if (run / "checkpoint.npz").is_file():
        flags = ["--resume", str(run / "checkpoint.npz"), "--epochs", str(epochs)] + (["--data", data_dir] if data_dir else [])
    train_ssl.main(flags)
    return load_recognizer(done)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    data_dir = args.data if args.data is not None else (str(SHARED) if SHARED.is_dir() else None)
    try:
        x_train, y_train, x_test, y_test, note = augment.experiment_split(data_dir)
    except data.MNISTDataError as e:
        fail("augment_mnist.py", e)
    print(note, flush=True)
    fewest = int(np.bincount(y_train, minlength=10).min())
    if max(args.n) > fewest:
        fail("augment_mnist.py", f"n={max(args.n)} per class asked for, but the training pool has only "
             f"{fewest} digits of its rarest class; use a smaller --n (or the full MNIST via --data)")
    arms, cgan = args.arms, {"gan", "both"} & set(args.arms)
    judge_model = None
    if cgan:
        try:  # the shipped classifier (60k-trained) checks that GAN digits look like their labels: a diagnostic only
            judge_model = classifier.load_classifier(tg.Backend("numpy", "float32", 0))
        except Exception as e:  # a missing/odd weights file must not stop the experiment
            print(f"no label-agreement check ({e})")
    os.makedirs(args.out, exist_ok=True)
    ssl_runs = args.ssl_runs or os.path.join(args.out, "ssl")

    results, agree, gan_budget, pseudo, seconds, ssl_epochs = {}, {}, {}, {}, {}, {}
    for n in args.n:
        results[str(n)] = {arm: [] for arm in arms}
        iterations = args.gan_iterations or gan_iterations(n)
        gan_budget[str(n)] = iterations
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            pick = augment.balanced_subset(y_train, n, seed)
            real = (x_train[pick], y_train[pick].astype(np.int64))   # (10 n, 28, 28) uint8, (10 n,)
            pools, line = {"real": real}, []
            if cgan:
                t0 = time.time()
                gan = train_gan(*real, iterations, seed=1000 + seed)
                fake_y = np.repeat(np.arange(10), POOL)                   # POOL digits of each class
                pools["gan"] = (gan.sample(len(fake_y), fake_y).astype(np.float32), fake_y)
                if judge_model is not None:
                    probs, _ = classifier.predict(judge_model, pools["gan"][0])
                    agree.setdefault(str(n), []).append(float((probs.argmax(1) == fake_y).mean()))
                if seed == args.first_seed:
                    save_grid(pools["gan"][0][::POOL // 10], os.path.join(args.out, f"gan_samples_n{n}.png"), nrow=10,
                              row_labels=[str(d) for d in range(10)], title=f"cGAN digits, n={n} per class")
                line.append(f"cGAN {iterations} it {time.time() - t0:.0f}s")
            for arm in arms:
                t0 = time.time()
                if arm == "ssl":
                    model, info = run_ssl(n, seed, args.ssl_epochs, ssl_runs, data_dir, args.quick)
                    ssl_epochs.setdefault(str(n), []).append(info["epochs"])
                elif arm == "selftrain":
                    model, history = self_train(real, x_train, args.steps, seed)
                    pseudo.setdefault(str(n), []).append(history)
                else:
                    model = train_arm(arm, pools, args.steps, seed)
                results[str(n)][arm].append(evaluate(model, x_test, y_test))
                seconds.setdefault(arm, []).append(round(time.time() - t0, 1))
                line.append(f"{arm} {100 * results[str(n)][arm][-1]:.2f}% {time.time() - t0:.0f}s")
            print(f"n={n:4d} seed {seed}: " + "  ".join(line) + f"  (elapsed {time.time() - start:.0f}s)", flush=True)

    runtime = time.time() - start
    where = f"{os.cpu_count()} CPU cores, numpy backend"
    verdict = judge(results, args.n, args.seeds, arms)
    tab = table(results, args.n, arms, agree)
    setup = (f"{args.seeds} seed(s); classifier MLP 784-256-128-10 (dropout 0.2), {args.steps} Adam steps of batch 64, "
             f"cosine lr 1e-3 -> 1e-5; real:synthetic 1:1 per batch in (b)-(d), (d) splits the synthetic half 1:1 "
             f"classic:cGAN; cGAN: deep preset, g_hidden {GAN_OVERRIDES['g_hidden']}, d_hidden "
             f"{GAN_OVERRIDES['d_hidden']}, EMA {GAN_OVERRIDES['ema']}, iterations {gan_budget}, pool {POOL}/class; "
             f"(e) train_ssl.py's recipe over the {len(x_train)} training digits, epochs per n {ssl_epochs}; "
             f"(f) (b) then 3 rounds of pseudo-labels (confidence >= 0.95, balanced per digit) over the same "
             f"{len(x_train)} digits, each round {args.steps} steps on labelled:pseudo-labelled 1:1")
    md = (f"# Few labels: augmentation, GAN digits, a semi-supervised GAN and self-training\n\n{note}.\n\n{setup}.\n\n"
          f"Test accuracy (%), mean ± std over seeds:\n\n{tab}\n\n"
          f"Runtime: {runtime:.0f} s on {where}; seconds per arm and seed: "
          + ", ".join(f"{a} {np.median(v):.0f}" for a, v in seconds.items()) + ".\n\nVerdict (computed from the "
          "numbers; paired by seed, 'better'/'worse' = mean difference beyond 2 standard errors):\n\n"
          + "\n".join(f"- {v}" for v in verdict) + "\n")
    print("\n" + tab + f"\n\nruntime {runtime:.0f}s on {where}\n" + "\n".join(verdict))
    raw = {"note": note, "setup": setup, "ns": args.n, "seeds": args.seeds, "steps": args.steps, "arms": arms,
           "gan_iterations": gan_budget, "accuracy": results, "gan_label_agreement": agree, "pseudo_labels": pseudo,
           "ssl_epochs": ssl_epochs, "seconds": seconds, "runtime_s": round(runtime, 1), "machine": where, "verdict": verdict}
    out = Path(args.out)
    atomic_write(out / "augment_results.md", lambda f: f.write(md.encode()))
    atomic_write(out / "augment_results.json", lambda f: f.write(json.dumps(raw, indent=2).encode() + b"\n"))
    plot(results, args.n, arms, out / "augment_results.png",
         f"MNIST with n labelled digits per class, {args.seeds} seed(s), {args.steps} classifier steps")
    written = "augment_results.md, augment_results.png, augment_results.json"
    if "ssl" in arms:  # the semi-supervised runs' test error against their training time
        logs = {(10 * n, s): read_log(os.path.join(ssl_runs, f"labels{10 * n}_seed{s}", "log.jsonl"))[0]
                for n in args.n for s in range(args.seeds)}
        plot_error_vs_time(logs, out / "ssl_error_vs_time.png")
        written += ", ssl_error_vs_time.png"
    print(f"wrote {out}/{written}")


if __name__ == "__main__":
    main()
