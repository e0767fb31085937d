"""Train a GAN on MNIST: python examples/train_mnist.py [--preset deep] [--conditional] [--backend cupy]."""
import json
import math
import os
import sys
import time

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
import tinygan as tg  # noqa: E402
from tinygan.cli import Parser, positive, sizes  # noqa: E402
from tinygan.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from tinygan.fileio import atomic_write  # noqa: E402
from tinygan.data import MNISTDataError, load_mnist  # noqa: E402
from tinygan.evaluation import evaluate_gan, format_table  # noqa: E402
from tinygan.dataset import Dataset  # noqa: E402
from tinygan.gan import GAN, PRESETS, make_config  # noqa: E402
from tinygan.plots import plot_curves, save_grid  # noqa: E402
from tinygan.report import draw_internals  # noqa: E402
from tinygan.trace import Tracer, load_trace_classifier  # noqa: E402


def fail(message):
    """A bad flag value found after parsing (a data folder, a checkpoint, a backend): one line, exit 2."""
    print(f"train_mnist.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    p = Parser(description="Train a GAN on MNIST with tinygan.")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--preset", choices=sorted(PRESETS), default="seed",
                   help="seed: the original 100-128-784 design; deep: the stronger LeakyReLU/tanh MLP")
    p.add_argument("--conditional", action="store_true", help="give the digit label to G and D")
    p.add_argument("--iterations", type=positive(int), help="training iterations (preset default)")
    p.add_argument("--batch-size", type=positive(int))
    p.add_argument("--lr", type=positive(float))
    p.add_argument("--beta1", type=float)
    p.add_argument("--beta2", type=float)
    p.add_argument("--latent-dim", type=positive(int))
    p.add_argument("--g-hidden", type=sizes, help="generator hidden sizes, e.g. 128,256,512,1024")
    p.add_argument("--d-hidden", type=sizes, help="discriminator hidden sizes, e.g. 512,256")
    p.add_argument("--ema", type=float, help="decay of an average of G's weights used for samples (0: off)")
    p.add_argument("--smooth", type=float, help="D's target for real images (1: none; 0.9: one-sided smoothing)")
    p.add_argument("--d-dropout", type=float, help="dropout probability after each hidden layer of D")
    p.add_argument("--aux", type=float, help="conditional only: weight of D's class head (AC-GAN); 0: D sees the label")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/mnist", help="folder for samples, curves, log and checkpoints")
    p.add_argument("--sample-every", type=positive(int), default=1000)
    p.add_argument("--checkpoint-every", type=positive(int), default=1000)
    p.add_argument("--log-every", type=positive(int), default=100)
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint (its config is used)")
    p.add_argument("--data", metavar="DIR", help="folder with the MNIST IDX files (.gz or raw)")
    p.add_argument("--eval", action="store_true", help="score the samples with the digit classifier at the end")
    p.add_argument("--eval-every", type=positive(int), help="also score them every N iterations (implies --eval)")
    p.add_argument("--eval-n", type=positive(int), default=10000, help="samples per evaluation")
    p.add_argument("--trace", action="store_true",
                   help="log layer norms, update ratios, unit health, D-output histograms and diagnoses; "
                        "draw internals.png")
    p.add_argument("--trace-every", type=positive(int), help="iterations between trace points (default: --log-every)")
    args = p.parse_args(argv)
    for name in ("beta1", "beta2", "ema", "d_dropout"):
        value = getattr(args, name)
        if value is not None and not 0 <= value < 1:
            p.error(f"argument --{name.replace('_', '-')}: {value} must be in [0, 1)")
    if args.aux is not None and args.aux < 0:
        p.error(f"argument --aux: {args.aux} must be >= 0")
    if args.smooth is not None and not 0.5 < args.smooth <= 1:
        p.error(f"argument --smooth: {args.smooth} must be in (0.5, 1]")
    if args.resume and not os.path.isfile(args.resume):
        p.error(f"argument --resume: {args.resume!r} does not exist (checkpoints are written as OUT/checkpoint.npz)")
    return args


def main(argv=None):
    # --- config ---
    args = parse_args(argv)
    if args.resume:
        try:
            config = read_checkpoint(args.resume)[1]
        except CheckpointError as e:
            fail(e)
        config["iterations"] = args.iterations or config["iterations"]
    else:
        config = make_config(args.preset, conditional=args.conditional, seed=args.seed, iterations=args.iterations,
                             batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, beta2=args.beta2,
                             latent_dim=args.latent_dim, g_hidden=args.g_hidden, d_hidden=args.d_hidden,
                             ema=args.ema, smooth=args.smooth, d_dropout=args.d_dropout, aux=args.aux)
    out = args.out
    try:
        os.makedirs(out, exist_ok=True)
        be = tg.Backend(args.backend, "float32", seed=config["seed"])
        images, labels = load_mnist("train", data_dir=args.data)
    except (tg.BackendError, MNISTDataError, OSError) as e:
        fail(e)
    gan = GAN(config, be)
    if args.resume:
        try:
            load_checkpoint(args.resume, gan)
        except CheckpointError as e:
            fail(e)
    data = Dataset(images, labels, be, config["data_range"])
    atomic_write(os.path.join(out, "config.json"), lambda f: f.write(json.dumps(config, indent=2).encode()))

    # Fixed noise for the sample grids, from its own generator so it is the same after a resume.
    fixed_z = be.asarray(np.random.default_rng(config["seed"] + 1).standard_normal((100, config["latent_dim"])))
    fixed_y = be.xp.asarray(np.repeat(np.arange(10), 10)) if config["conditional"] else None  # row r: digit r
    log_path = os.path.join(out, "log.jsonl")
    records = []
    if args.resume and os.path.exists(log_path):  # keep the log up to the checkpoint, drop what came after
        with open(log_path) as f:
            records = [r for r in map(json.loads, f) if r["iter"] <= gan.iteration]
    atomic_write(log_path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
    written = {"config.json", "log.jsonl"}
    tracer, trace_note = None, None
    if args.trace:  # see docs/internals.md
        classifier, trace_note = load_trace_classifier(be)
        if trace_note:
            print(trace_note)
        tracer = Tracer(gan, args.trace_every or args.log_every, classifier)

    def save_samples(name):
        images = be.to_host(gan.generate(fixed_z, fixed_y)).reshape(-1, 28, 28)
        rows = [str(d) for d in range(10)] if config["conditional"] else None
        save_grid(images, os.path.join(out, name), nrow=10, row_labels=rows, title=f"iteration {gan.iteration}")
        written.add(name)

    # --- loop ---
    iterations, B = config["iterations"], config["batch_size"]
    print(f"training {config['preset']} GAN{' (conditional)' if config['conditional'] else ''} on "
          f"{len(data)} images, {args.backend}, batch {B}, iterations {gan.iteration}->{iterations}, out {out}/")
    bar = tqdm(total=iterations, initial=gan.iteration, unit="it", dynamic_ncols=True)
    start = time.time()
    while gan.iteration < iterations:
        real, y = data.sample(B)
        traced = tracer and tracer.due(gan.iteration + 1)
        if traced:
            tracer.snapshot()  # parameters before the step, for the update ratios
        stats = gan.step(real, y if config["conditional"] else None)
        i = gan.iteration
        bar.update(1)
        last = i == iterations
        if i % args.log_every == 0 or i % args.checkpoint_every == 0 or last or traced:
            record = {"iter": i, **{k: float(v) for k, v in stats.items()}, "seconds": round(time.time() - start, 2)}
            if not all(math.isfinite(record[k]) for k in stats):
                bar.close()
                if tracer:  # the internals up to the failure are the most useful picture of it
                    draw_internals(records, os.path.join(out, "internals.png"), note=trace_note)
                sys.exit(f"train_mnist.py: stopped at iteration {i}: a loss became {record['d_loss']} / "
                         f"{record['g_loss']} (d_loss / g_loss). The last good checkpoint is untouched in "
                         f"{out}/; try a lower --lr.")
            if traced:
                record["trace"] = tracer.record(real, y if config["conditional"] else None)
                for d in record["trace"]["diagnoses"]:
                    tqdm.write(f"diagnosis at iteration {i}: {d['message']}")
            records.append(record)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(d_loss=f"{record['d_loss']:.3f}", g_loss=f"{record['g_loss']:.3f}",
                            Dx=f"{record['d_real']:.2f}", DGz=f"{record['d_fake']:.2f}")
        if i % args.sample_every == 0 or last:
            save_samples(f"samples_{i:06d}.png")
            plot_curves(records, os.path.join(out, "curves.png"))
            written.add("curves.png")
            tqdm.write(f"iter {i:6d}  d_loss {record['d_loss']:.3f}  g_loss {record['g_loss']:.3f}  "
                       f"D(x) {record['d_real']:.2f}  D(G(z)) {record['d_fake']:.2f}  -> samples_{i:06d}.png")
        if (args.eval_every and i % args.eval_every == 0) or ((args.eval or args.eval_every) and last):
            result = evaluate_gan(gan, args.eval_n, args.data)  # its own noise: training's stream is untouched
            records.append({"iter": i, "eval": result})
            with open(log_path, "a") as f:
                f.write(json.dumps(records[-1]) + "\n")
            tqdm.write(f"iter {i:6d}  " + format_table(result).replace("\n", "\n             "))
        if i % args.checkpoint_every == 0 or last:
            save_checkpoint(os.path.join(out, "checkpoint.npz"), gan)
            written.add("checkpoint.npz")
    bar.close()
    if tracer:
        draw_internals(records, os.path.join(out, "internals.png"), note=trace_note)
        written.add("internals.png")

    print(f"done: {iterations} iterations in {time.time() - start:.0f}s. Wrote to {out}/:")
    for name in sorted(written):
        print(f"  {name}")
    print(f"generate digits: python examples/sample.py --checkpoint {out}/checkpoint.npz --n 64")


if __name__ == "__main__":
    main()
