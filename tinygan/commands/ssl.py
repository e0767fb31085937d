"""tinygan ssl (also python examples/train_ssl.py): a digit recognizer from few labels and many unlabelled digits.

The semi-supervised GAN's training loop, top to bottom: its discriminator becomes the recognizer.
"""
import json
import os
import shlex
import sys
import time

import numpy as np
from tqdm import tqdm

from ..run import cli
from ..run.limits import MAX_BATCH, MAX_LABELS, MAX_LR, MAX_SAMPLES, MAX_STEPS
from . import guarded
from ..data.split import SOURCE_FLAGS, add_data_flags, split_rows, ssl_data
from ..engine.backend import Backend
from ..models.checkpoint import SSL_FIELDS, CheckpointError, check_fields, load_checkpoint, read_checkpoint, save_checkpoint
from ..run.plots import plot_ssl_curves, save_grid
from .export import finished, recognizer_info
from ..models.recognizer import export_recognizer
from ..run.runs import PRODUCTS, Run, Signals, append_log, check_resume_flags, check_target, first_nonfinite
from ..models.ssl import DEFAULTS, FEW_LABELS, SSLGAN, few_label_defaults, make_ssl_config
from ..measure.experiment import confident_per_class
from ..run.fileio import atomic_write

# Flags that --resume accepts: they steer the run, not the model or its training.
RUN_CONTROL = {"epochs", "out", "overwrite", "data", "require_full", "backend", "threads", "sample_every", "resume",
               *SOURCE_FLAGS, "new_data"}  # the data flags: checked against the checkpoint's data (data/split.py)
OUTPUTS = PRODUCTS["ssl"]  # what --overwrite removes (tinygan/run/runs.py keeps every kind's list)
# The cures' flags (docs/ssl.md, Options): dest -> config key
CURES = {**{k: k for k in ("validation", "exclude_labelled", "adam_eps_inside", "g_lr", "decay_fraction",
                           "warmup_epochs", "pseudo_threshold")},
         **{k: f"{k}_weight" for k in ("entropy", "balance", "consistency", "pull_away")}}
QUICK = dict(d_hidden=[64, 32], g_hidden=[32], epochs=3, steps_per_epoch=4, batch_size=20)


def parser(prog=None):
    p = cli.Parser(prog=prog, description="Train the semi-supervised GAN on MNIST: its discriminator, trained on a "
                                          "few labelled and all unlabelled digits, becomes a digit recognizer.")
    p.add_argument("--labels", type=cli.positive(int, MAX_LABELS), default=DEFAULTS["labels"],
                   help="labelled digits, a multiple of 10: the same number of each digit, chosen by --seed")
    p.add_argument("--epochs", type=cli.positive(int, MAX_STEPS),
                   help=f"passes over the unlabelled digits (default {DEFAULTS['epochs']}, the budget fixed for the "
                        "few-label experiment; 25-35 s an epoch on one CPU core: about 45-60 minutes)")
    p.add_argument("--steps-per-epoch", type=cli.positive(int, MAX_STEPS),
                   help="steps per epoch (default: unlabelled digits / batch)")
    p.add_argument("--batch-size", type=cli.positive(int, MAX_BATCH),
                   help="rows of each kind per step: labelled, unlabelled, generated")
    p.add_argument("--lr", type=cli.positive(float, MAX_LR))
    p.add_argument("--ema", type=cli.in_range(0, 1), help="decay of the average of D's weights that is evaluated and exported")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    cli.add_threads(p)
    add_data_flags(p)  # --data, --labelled, --unlabelled, --labels-file, --test, ... (tinygan/data/split.py)
    p.add_argument("--require-full", action="store_true",
                   help="fail instead of using the bundled 10k split when the full MNIST is not found")
    p.add_argument("--out", help="folder for the log, curves, samples, checkpoint and recognizer (default runs/ssl; "
                                 "with --resume, the checkpoint's folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint of this command")
    p.add_argument("--sample-every", type=cli.positive(int, MAX_STEPS), default=10, help="epochs between sample grids")
    p.add_argument("--quick", action="store_true", help="a smoke run in seconds: tiny model, 3 epochs of 4 steps")
    # the cures for few labels (docs/ssl.md, Options): off by default at 10 or more labels per class; below, the
    # defaults are models/ssl.py's FEW_LABELS (entropy, balance and consistency 1, labelled images out of the pool)
    p.add_argument("--validation", type=cli.count(MAX_SAMPLES), metavar="N", help="hold out the last N training "
                   "digits (never labelled nor unlabelled); each epoch then reports val_err (default 0: none)")
    p.add_argument("--exclude-labelled", action=cli.argparse.BooleanOptionalAction, default=None,
                   help="keep the labelled digits out of the unlabelled pool (default: on below 10 labels per class, "
                        "else off)")
    p.add_argument("--adam-eps-inside", action="store_true", default=None,
                   help="Adam divides by sqrt(v_hat + eps), as the reference code (default: off, sqrt(v_hat) + eps)")
    p.add_argument("--g-lr", type=cli.positive(float, MAX_LR), help="G's learning rate (default: the same as --lr)")
    p.add_argument("--decay-fraction", type=cli.in_range(0, 1, closed_hi=True), metavar="F",
                   help="both learning rates fall linearly to 0 over the last fraction F of the epochs (default 0: none)")
    p.add_argument("--warmup-epochs", type=cli.count(MAX_STEPS), metavar="W", help="the first W epochs (of "
                   "--epochs) train D on the labelled digits alone, G idle (default 0: none)")
    for flag, what in (("entropy", "the mean entropy of D's classes on unlabelled digits (confident guesses)"),
                       ("balance", "KL(D's mean class probabilities on unlabelled digits || uniform) (every digit used)"),
                       ("consistency", "the squared distance of D's class probabilities under two noise draws"),
                       ("pull-away", "the pull-away term of G's features in D (G's digits differ from each other)")):
        few = FEW_LABELS.get(f"{flag.replace('-', '_')}_weight", 0)
        p.add_argument(f"--{flag}", type=cli.non_negative_upto(100), metavar="W",
                       help=f"weight of {what} (default " + (f"{few:g} below 10 labels per class, else 0: off)"
                                                             if few else "0: off)"))
    p.add_argument("--pseudo-threshold", type=cli.in_range(0, 1, closed_hi=True, closed_lo=False), metavar="P",
                   help="self-training: each epoch after the warm-up (and after the first), unlabelled digits the "
                        "averaged D reads with confidence >= P, the same number per digit, join the labelled ones "
                        "(default: off)")
    return p


def parse_args(argv, prog=None):
    """(args, the flags written out)."""
    p = parser(prog)
    args = p.parse_args(argv)
    if args.labels % 10 and not (args.data or args.labelled or args.labels_file):  # other data: checked once read
        p.error(f"argument --labels: {args.labels} must be a positive multiple of 10 (the same number of each digit)")
    return args, p.given(argv)


def main(argv=None, prog=None):
    """Parse flags and train; every failure of usage, data, checkpoint or disk is one line and exit code 2."""
    guarded(train, argv, cli.prog_name(prog, "train_ssl.py"))


def read_ssl_checkpoint(path, prog=""):
    """(arrays, config) of a checkpoint of this command; a GAN's checkpoint is refused, naming the command it needs."""
    arrays, config = read_checkpoint(path, prog=prog)
    if not isinstance(config, dict) or config.get("kind") != "ssl":
        maker = cli.command(prog, "train").removeprefix("python examples/")
        raise CheckpointError(f"checkpoint {path!r} is a GAN's from {maker}, not a semi-supervised GAN's: resume it "
                              f"with {cli.command(prog, 'train')}")
    return arrays, check_fields(config, SSL_FIELDS, f"checkpoint {path!r}")


def train(argv, prog):
    args, given = parse_args(argv, prog)
    cli.set_threads(args.threads)

    # --- config: a new run's from the flags, or the checkpoint's ---
    if args.resume:
        arrays, config = cli.named("--resume", CheckpointError, read_ssl_checkpoint, args.resume, prog)
        check_resume_flags(given, args, config, RUN_CONTROL, names=CURES)
        saved = json.loads(str(arrays["run"])) if "run" in arrays else {}  # the run's own settings: kept unless given
        if "sample_every" not in given and isinstance(saved, dict) and type(saved.get("sample_every")) is int \
                and 0 < saved["sample_every"] <= MAX_STEPS:
            args.sample_every = saved["sample_every"]
        if finished(prog, args, arrays, config):
            return
        config["epochs"] = check_target(int(arrays["iteration"]) // config["steps_per_epoch"], args.epochs,
                                        config["epochs"], flag="--epochs", unit="epochs")
    else:
        config = make_ssl_config(**{**(QUICK if args.quick else {}), **{k: v for k, v in dict(
            labels=args.labels, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
            lr=args.lr, ema=args.ema, seed=args.seed, **{key: getattr(args, dest) for dest, key in CURES.items()}
        ).items() if v is not None}})
    if config["warmup_epochs"] >= config["epochs"]:
        raise cli.UsageError(f"--warmup-epochs {config['warmup_epochs']}: must be below the {config['epochs']} "
                             "epochs of the run (the warm-up counts inside them)")
    out = args.out or (os.path.dirname(args.resume) or "." if args.resume else "runs/ssl")

    # --- the run folder: ours alone (a lock), never another run's files (see tinygan/run/runs.py) ---
    cli.output_folder(out)
    run = Run(out, resume=args.resume, overwrite=args.overwrite, prog=prog, kind="ssl")
    try:
        be = Backend(args.backend, "float32", seed=config["seed"])
        x, y, x_test, y_test, pick, note, switch = ssl_data(args, config, bool(args.resume),
                                                            fallback=False if args.require_full else None)
        if not args.resume:  # the data set labels and classes: the few-label defaults apply below 10 per class
            few_label_defaults(config, chosen={CURES[d] for d in given if d in CURES})
        pick, unlabelled, held = split_rows(y, config, pick)
        B, pool = config["batch_size"], len(unlabelled)
        if B > pool:
            raise cli.UsageError(f"--batch-size {B} is more than the {pool} unlabelled digits: choose a smaller batch")
        config["steps_per_epoch"] = config["steps_per_epoch"] or pool // B
        if config["steps_per_epoch"] * B > pool:
            raise cli.UsageError(f"--steps-per-epoch {config['steps_per_epoch']} x --batch-size {B} is more than the "
                                 f"{pool} unlabelled digits of one pass")
        gan = SSLGAN(config, be)
        if args.resume:
            cli.named("--resume", CheckpointError, load_checkpoint, args.resume, gan, SSL_FIELDS)
        records = run.begin(prog, config, args.resume, gan.iteration)
        if switch:  # the log keeps every change of data; the curves only the epochs
            append_log(os.path.join(out, "log.jsonl"), {"iter": gan.iteration, "data_switch": switch})
            print(f"{prog}: switching data at iteration {gan.iteration} (--new-data): {switch['to']['path']}")
        records = [r for r in records if "epoch" in r]
        print(note)
        loop(args, prog, config, gan, be, (x, y, x_test, y_test, pick, unlabelled, held), out, records)
    finally:
        run.close()


def epoch_order(seed, epoch, n_unlabelled, n_labelled, rows):
    """The rows of one epoch, fixed by (seed, epoch) so a resumed run sees the same batches: two passes over
    the unlabelled digits in their own orders, and the labelled digits repeated in fresh orders."""
    rng = np.random.default_rng([seed, epoch])
    repeats = -(-rows // n_labelled)
    labelled = np.concatenate([rng.permutation(n_labelled) for _ in range(repeats)])[:rows]
    return rng.permutation(n_unlabelled)[:rows], rng.permutation(n_unlabelled)[:rows], labelled


def pseudo_labelled(gan, images, pool, epoch, path, fresh):
    """(rows of x, labels) of this epoch's pseudo-labelled digits from `pool`: chosen now (fresh: the epoch's start)
    by the averaged D and saved to path, or read back from path (a run resumed inside the epoch)."""
    if fresh:
        probs = gan.be.to_host(gan.probabilities(images[gan.be.xp.asarray(pool)]))
        keep, guess = confident_per_class(probs, gan.config["pseudo_threshold"])
        rows, labels = pool[keep].astype(np.int64), guess.astype(np.int64)
        atomic_write(path, lambda f: np.savez(f, epoch=np.array(epoch), rows=rows, labels=labels))
        return rows, labels
    try:
        with np.load(path, allow_pickle=False) as f:
            saved, rows, labels = int(f["epoch"]), f["rows"], f["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise cli.UsageError(f"{path}: the pseudo-labels of the resumed epoch cannot be read ({e}); resume from a "
                             "checkpoint saved at an epoch's end") from None
    if saved != epoch or rows.shape != labels.shape or not np.isin(rows, pool).all() or not (
            (labels >= 0) & (labels < gan.n_classes)).all():
        raise cli.UsageError(f"{path}: holds the pseudo-labels of epoch {saved + 1}, not of the resumed epoch "
                             f"{epoch + 1}, or was edited; resume from a checkpoint saved at an epoch's end")
    return rows, labels


def saved_arrays(gan):
    """What a checkpoint holds beside the config, by name: the finite guard checks each before a save."""
    return {"G's weights": gan.G.flat_params, "D's weights": gan.D.flat_params, "D's weight average": gan.ema,
            "G's Adam moments": gan.opt_g.m[0], "G's Adam second moments": gan.opt_g.v[0],
            "D's Adam moments": gan.opt_d.m[0], "D's Adam second moments": gan.opt_d.v[0]}


def loop(args, prog, config, gan, be, split, out, records):
    x, y, x_test, y_test, pick, unlabelled, held = split  # pick: (labels,) indices of the labelled images in x
    B, steps = config["batch_size"], config["steps_per_epoch"]
    log_path, ckpt = os.path.join(out, "log.jsonl"), os.path.join(out, "checkpoint.npz")
    x_val, y_val = x[held], y[held]
    images = be.asarray(x.reshape(len(x), -1) * np.float32(1 / 255))    # (N, pixels) in [0, 1], on the device
    base = images[be.xp.asarray(pick)], be.xp.asarray(y[pick].astype(np.int64))
    others = np.setdiff1d(unlabelled, pick)  # the digits self-training may label (--pseudo-threshold)
    test_x = be.asarray(x_test.reshape(len(x_test), -1) * np.float32(1 / 255))
    test_y = be.xp.asarray(y_test.astype(np.int64))
    val_x = be.asarray(x_val.reshape(len(x_val), gan.pixels) * np.float32(1 / 255))
    val_y = be.xp.asarray(y_val.astype(np.int64))
    if gan.iteration == 0:  # the recipe's data-dependent init, from 500 unlabelled digits
        first = unlabelled[np.random.default_rng(config["seed"]).permutation(len(unlabelled))[:500]]
        gan.init_from_data(images[be.xp.asarray(first)])
    fixed_z = be.asarray(np.random.default_rng(config["seed"] + 1).random((100, config["latent_dim"])))
    saved = (gan.iteration, args.resume) if args.resume else None  # the last good checkpoint: (iteration, path)

    def test_error(average, images=test_x, labels=test_y):
        return float((gan.classify(images, average=average) != labels).mean())

    # --- loop: an epoch is `steps` steps; at its end, evaluate, log, checkpoint, then pictures ---
    total = config["epochs"] * steps
    print(f"semi-supervised GAN: {config['labels']} labelled + {len(x)} unlabelled digits, {args.backend}, "
          f"batch {B}x3, {steps} steps/epoch, epochs {gan.iteration // steps}->{config['epochs']}, out {out}/")
    start, order, sums, summed = time.time() - (records[-1]["seconds"] if records else 0.0), None, {}, 0
    from_epoch = gan.iteration // steps  # the epoch this process starts from (a resume: the checkpoint's)
    bar = tqdm(total=total, initial=gan.iteration, unit="it", dynamic_ncols=True)
    # NaN or inf is caught by the finite guard below and named there: NumPy's own warnings would only repeat it
    with bar, Signals() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        while gan.iteration < total:
            epoch, k = divmod(gan.iteration, steps)
            if order is None or k == 0:
                lab_x, lab_y = base
                if config["pseudo_threshold"] and epoch >= max(config["warmup_epochs"], 1):
                    sure, labels = pseudo_labelled(gan, images, others, epoch, os.path.join(out, "pseudo.npz"), k == 0)
                    lab_x = be.xp.concatenate([lab_x, images[be.xp.asarray(sure)]])
                    lab_y = be.xp.concatenate([lab_y, be.xp.asarray(labels)])
                order = epoch_order(config["seed"], epoch, len(unlabelled), len(lab_y), steps * B)
                order = [be.xp.asarray(o) for o in (unlabelled[order[0]], unlabelled[order[1]], order[2])]
            rows = slice(k * B, (k + 1) * B)
            lab = order[2][rows]
            stats = gan.step(lab_x[lab], lab_y[lab], images[order[0][rows]], images[order[1][rows]])
            for name, v in stats.items():  # epoch sums stay on the device: no per-step host read
                sums[name] = sums.get(name, 0) + v
            summed += 1
            bar.update(1)
            if k + 1 < steps and stop.signum is None:
                continue
            if k + 1 == steps:  # a whole epoch: its record
                record = {"epoch": epoch + 1, "iter": gan.iteration, "seconds": round(time.time() - start, 1),
                          "test_err": test_error(True), "test_err_live": test_error(False),
                          **({"val_err": test_error(True, val_x, val_y), "val_err_live": test_error(False, val_x, val_y)}
                             if len(x_val) else {}),
                          **{name: float(v) / summed for name, v in sums.items()}}  # means over the steps run
                sums, summed = {}, 0
            bad = first_nonfinite({**({f"the {k}": v for k, v in record.items()} if k + 1 == steps else {}),
                                   **saved_arrays(gan)})
            if bad:
                bar.close()
                kept = (f"the last good checkpoint {saved[1]} (iteration {saved[0]}) is untouched" if saved
                        else "no checkpoint was saved yet")
                sys.exit(f"{prog}: stopped in epoch {epoch + 1}: {bad} became NaN or inf; {kept}. A resume keeps the "
                         "run's --lr: to train with a lower one, start a new run (another --out, or --overwrite).")
            # checkpoint first (with the run's own settings: a resume keeps them), then its recognizer, the log
            # line and the pictures
            save_checkpoint(ckpt, gan, {"sample_every": args.sample_every})
            export_recognizer(os.path.join(out, "recognizer.npz"), gan,  # every checkpoint has its recognizer
                              recognizer_info(gan, record if k + 1 == steps else records[-1] if records else None))
            saved = (gan.iteration, ckpt)
            if k + 1 < steps:  # stopped by a signal inside an epoch
                break
            records.append(record)
            append_log(log_path, record)
            bar.set_postfix(test_err=f"{100 * record['test_err']:.2f}%", loss_unl=f"{record['loss_unl']:.3f}",
                            loss_gen=f"{record['loss_gen']:.3f}")
            tqdm.write(f"epoch {epoch + 1:4d}  test error {100 * record['test_err']:.2f}% (averaged D), "
                       f"{100 * record['test_err_live']:.2f}% (live D)  " + (f"validation error {100 * record['val_err']:.2f}% "
                       f"(averaged), {100 * record['val_err_live']:.2f}% (live)  " if "val_err" in record else "")
                       + f"{record['seconds']:.0f}s")
            plot_ssl_curves(records, os.path.join(out, "curves.png"))
            if (epoch + 1) % args.sample_every == 0 or gan.iteration == total:
                gan.G.eval()  # batch norm on its running statistics
                save_grid(be.to_host(gan.generate(fixed_z)).reshape(-1, *config["image"]),
                          os.path.join(out, "samples.png"), nrow=10, title=f"G after epoch {epoch + 1}")
                gan.G.train()
            if stop.signum is not None:
                break
    resume = cli.shell(prog, "ssl", "--resume", ckpt,  # no data flags: the checkpoint records its data
                       *(["--backend", args.backend] if args.backend != "numpy" else []))
    if stop.signum is not None:
        print(f"{prog}: stopped by {stop.name} after step {gan.iteration}; saved {ckpt}. To continue: {resume}")
        sys.exit(stop.exit_code)
    err = records[-1]["test_err"] if records else None
    done = gan.iteration // steps
    print(f"done: {done - from_epoch} epochs ({from_epoch} → {done}), {time.time() - start:.0f}s in all, "
          f"test error {100 * err:.2f}% "
          f"({round(err * len(x_test))} of {len(x_test)} test digits). Wrote to {out}/: config.json, log.jsonl, "
          "curves.png, samples.png, checkpoint.npz, recognizer.npz")
    print(f"read images: tinygan read --recognizer {shlex.quote(os.path.join(out, 'recognizer.npz'))} PATH...  "
          "(image files, folders or globs; "
          "Python: tinygan.load_recognizer and tinygan.read_digits)")
