"""Train a digit recognizer from few labels and many unlabelled digits: python examples/train_ssl.py --labels 100."""
import json
import math
import os
import sys
import time

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
import tinygan as tg  # noqa: E402
from tinygan.augment import balanced_subset, experiment_split  # noqa: E402
from tinygan.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint  # noqa: E402
from tinygan.cli import Parser  # noqa: E402
from tinygan.data import MNISTDataError  # noqa: E402
from tinygan.fileio import atomic_write  # noqa: E402
from tinygan.plots import plot_ssl_curves, save_grid  # noqa: E402
from tinygan.recognizer import export_recognizer  # noqa: E402
from tinygan.ssl import DEFAULTS, SSLGAN, make_ssl_config  # noqa: E402


def fail(message):
    """A bad value found after parsing (data, checkpoint, backend): one line, exit 2."""
    print(f"train_ssl.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    p = Parser(description="Train the semi-supervised GAN: its discriminator becomes a digit recognizer.")
    p.add_argument("--labels", type=int, default=DEFAULTS["labels"],
                   help="labelled digits, a multiple of 10 (class-balanced, chosen by --seed)")
    p.add_argument("--epochs", type=int, help=f"passes over the unlabelled digits (default {DEFAULTS['epochs']})")
    p.add_argument("--steps-per-epoch", type=int, help="steps per epoch (default: unlabelled digits / batch)")
    p.add_argument("--batch-size", type=int, help="rows of each kind per step: labelled, unlabelled, generated")
    p.add_argument("--lr", type=float)
    p.add_argument("--ema", type=float, help="decay of the average of D's weights that is evaluated and exported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--data", metavar="DIR", help="folder with the MNIST IDX files")
    p.add_argument("--out", default="runs/ssl", help="folder for the log, curves, samples, checkpoint, recognizer")
    p.add_argument("--resume", metavar="PATH", help="continue from a train_ssl.py checkpoint")
    p.add_argument("--sample-every", type=int, default=10, help="epochs between sample grids")
    p.add_argument("--quick", action="store_true", help="a smoke run in seconds: tiny model, 3 epochs of 4 steps")
    args = p.parse_args(argv)
    for name in ("epochs", "steps_per_epoch", "batch_size", "sample_every"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"argument --{name.replace('_', '-')}: {value} must be positive")
    if args.labels <= 0 or args.labels % 10:
        p.error(f"argument --labels: {args.labels} must be a positive multiple of 10 (the same number of each digit)")
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        p.error(f"argument --lr: {args.lr} must be a positive number")
    if args.ema is not None and not 0 <= args.ema < 1:
        p.error(f"argument --ema: {args.ema} must be in [0, 1)")
    return args


def epoch_order(seed, epoch, n_unlabelled, n_labelled, rows):
    """The rows of one epoch, fixed by (seed, epoch) so a resumed run sees the same batches: two passes over
    the unlabelled digits in their own orders, and the labelled digits repeated in fresh orders."""
    rng = np.random.default_rng([seed, epoch])
    repeats = -(-rows // n_labelled)
    labelled = np.concatenate([rng.permutation(n_labelled) for _ in range(repeats)])[:rows]
    return rng.permutation(n_unlabelled)[:rows], rng.permutation(n_unlabelled)[:rows], labelled


def main(argv=None):
    # --- config ---
    args = parse_args(argv)
    if args.resume:
        try:
            config = read_checkpoint(args.resume)[1]
        except CheckpointError as e:
            fail(e)
        if config.get("kind") != "ssl":
            fail(f"--resume {args.resume}: this is a train_mnist.py checkpoint; resume it with train_mnist.py")
        config["epochs"] = args.epochs or config["epochs"]
    else:
        quick = dict(d_hidden=[64, 32], g_hidden=[32], epochs=3, steps_per_epoch=4, batch_size=20) if args.quick else {}
        config = make_ssl_config(**{**quick, **{k: v for k, v in dict(
            labels=args.labels, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
            lr=args.lr, ema=args.ema, seed=args.seed).items() if v is not None}})
    out, B = args.out, config["batch_size"]
    try:
        be = tg.Backend(args.backend, "float32", seed=config["seed"])
        x, y, x_test, y_test, note = experiment_split(args.data)
    except (tg.BackendError, MNISTDataError) as e:
        fail(e)
    print(note)
    per_class = config["labels"] // 10
    fewest = int(np.bincount(y, minlength=10).min())
    if per_class > fewest:
        fail(f"--labels {config['labels']}: {per_class} of each digit asked for, but the rarest digit has only "
             f"{fewest} training images; use at most --labels {10 * fewest}")
    steps = config["steps_per_epoch"] = config["steps_per_epoch"] or len(x) // B
    if steps * B > len(x):
        fail(f"--steps-per-epoch {steps} x --batch-size {B} exceeds the {len(x)} unlabelled digits of one pass")
    pick = balanced_subset(y, per_class, config["seed"])                     # (labels,) indices, grouped by digit
    images = be.asarray(x.reshape(len(x), -1) * np.float32(1 / 255))        # (N, 784) in [0, 1], on the device
    lab_x, lab_y = images[be.xp.asarray(pick)], be.xp.asarray(y[pick].astype(np.int64))
    test_x, test_y = be.asarray(x_test.reshape(len(x_test), -1) * np.float32(1 / 255)), be.xp.asarray(y_test)

    gan = SSLGAN(config, be)
    if args.resume:
        try:
            load_checkpoint(args.resume, gan)
        except CheckpointError as e:
            fail(e)
    else:  # the recipe's data-dependent init, from 500 unlabelled digits
        gan.init_from_data(images[be.xp.asarray(np.random.default_rng(config["seed"]).permutation(len(x))[:500])])
    os.makedirs(out, exist_ok=True)
    atomic_write(os.path.join(out, "config.json"), lambda f: f.write(json.dumps(config, indent=2).encode()))
    log_path = os.path.join(out, "log.jsonl")
    records = []
    if args.resume and os.path.exists(log_path):  # keep the log up to the checkpoint
        with open(log_path) as f:
            records = [r for r in map(json.loads, f) if r["iter"] <= gan.iteration]
    atomic_write(log_path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
    fixed_z = be.asarray(np.random.default_rng(config["seed"] + 1).random((100, config["latent_dim"])))

    def test_error(average):
        return float((gan.classify(test_x, average=average) != test_y).mean())

    # --- loop ---
    total = config["epochs"] * steps
    print(f"semi-supervised GAN: {config['labels']} labelled + {len(x)} unlabelled digits, {args.backend}, "
          f"batch {B}x3, {steps} steps/epoch, epochs {gan.iteration // steps}->{config['epochs']}, out {out}/")
    bar = tqdm(total=total, initial=gan.iteration, unit="it", dynamic_ncols=True)
    start, order, sums = time.time() - (records[-1]["seconds"] if records else 0.0), None, {}
    while gan.iteration < total:
        epoch, k = divmod(gan.iteration, steps)
        if order is None or k == 0:
            order = [be.xp.asarray(o) for o in epoch_order(config["seed"], epoch, len(x), len(pick), steps * B)]
        rows = slice(k * B, (k + 1) * B)
        lab = order[2][rows]
        stats = gan.step(lab_x[lab], lab_y[lab], images[order[0][rows]], images[order[1][rows]])
        for name, v in stats.items():  # epoch sums stay on the device: no per-step host read
            sums[name] = sums.get(name, 0) + v
        bar.update(1)
        if k + 1 < steps:
            continue
        record = {"epoch": epoch + 1, "iter": gan.iteration, "seconds": round(time.time() - start, 1),
                  "test_err": test_error(True), "test_err_live": test_error(False),
                  **{name: float(v) / steps for name, v in sums.items()}}
        sums = {}
        if not all(math.isfinite(v) for v in record.values()):
            bar.close()
            fail(f"stopped in epoch {epoch + 1}: a loss became non-finite ({record}); the last good checkpoint "
                 f"in {out}/ is untouched; try a lower --lr")
        records.append(record)
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        bar.set_postfix(test_err=f"{100 * record['test_err']:.2f}%", loss_lab=f"{record['loss_lab']:.3f}",
                        loss_unl=f"{record['loss_unl']:.3f}", loss_gen=f"{record['loss_gen']:.3f}")
        tqdm.write(f"epoch {epoch + 1:4d}  test error {100 * record['test_err']:.2f}% (averaged D), "
                   f"{100 * record['test_err_live']:.2f}% (live D)  {record['seconds']:.0f}s")
        plot_ssl_curves(records, os.path.join(out, "curves.png"))
        if (epoch + 1) % args.sample_every == 0 or gan.iteration == total:
            gan.G.eval()  # batch norm on its running statistics
            save_grid(be.to_host(gan.generate(fixed_z)).reshape(-1, 28, 28), os.path.join(out, "samples.png"),
                      nrow=10, title=f"G after epoch {epoch + 1}")
            gan.G.train()
        save_checkpoint(os.path.join(out, "checkpoint.npz"), gan)
    bar.close()

    info = {"labels": config["labels"], "seed": config["seed"], "epochs": gan.iteration // steps,
            "test_error": records[-1]["test_err"] if records else None, "data": note}
    export_recognizer(os.path.join(out, "recognizer.npz"), gan, info)
    err = records[-1]["test_err"] if records else float("nan")
    print(f"done: {gan.iteration // steps} epochs in {time.time() - start:.0f}s, test error {100 * err:.2f}% "
          f"({round(err * len(test_y))} of {len(test_y)}). Wrote to {out}/: config.json, log.jsonl, curves.png, "
          "samples.png, checkpoint.npz, recognizer.npz")
    print(f"read digits: python -c \"import tinygan.recognizer as r; m, _ = r.load_recognizer('{out}/recognizer.npz'); "
          "print(r.read_digits(m, IMAGES))\"")


if __name__ == "__main__":
    main()
