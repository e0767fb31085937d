"""tinygan train (also python examples/train_mnist.py): train a GAN on MNIST. The training loop, top to bottom."""
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from ..run import cli
from ..run.limits import MAX_BATCH, MAX_EVAL, MAX_LATENT, MAX_LR, MAX_STEPS
from . import guarded
from ..engine.backend import Backend
from ..models.checkpoint import GAN_FIELDS, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from ..data.mnist import MNISTDataError, is_custom
from ..data.split import add_gan_data_flags, gan_data
from ..data.dataset import Dataset
from ..measure.evaluation import evaluate_gan, format_table
from ..models.gan import GAN, PRESETS, make_config
from ..run.plots import plot_curves, save_grid
from ..run.report import draw_internals
from ..run.runs import Run, Signals, append_log, check_resume_flags, check_target, first_nonfinite
from ..measure.trace import Tracer, load_trace_classifier

# Flags that --resume accepts: they steer the run, not the model or its training.
RUN_CONTROL = {"iterations", "out", "overwrite", "data", "require_full", "backend", "threads", "sample_every",
               "checkpoint_every", "log_every", "eval", "eval_every", "eval_n", "trace", "trace_every", "resume",
               "cuda_graph", "transpose", "label_offset", "no_normalize", "new_data"}  # data: see data/split.py
MIN_EVAL = 100  # fewer samples make the evaluation table meaningless
INTERVALS = ("checkpoint_every", "sample_every", "log_every")  # kept in the checkpoint: a resume keeps them
DEFAULTS = {"checkpoint_every": 1000, "sample_every": 1000, "log_every": 100}


def parser(prog=None):
    p = cli.Parser(prog=prog, description="Train a GAN on MNIST with tinygan.")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--cuda-graph", action="store_true",
                   help="with --backend cupy: capture one iteration as a CUDA graph and replay it (draws from the "
                        "Philox generator; experimental: not yet run on a GPU)")
    cli.add_threads(p)
    p.add_argument("--preset", choices=sorted(PRESETS), default="seed",
                   help="seed: the original 100-128-784 design; deep: the stronger LeakyReLU/tanh MLP")
    p.add_argument("--conditional", action="store_true", help="give the digit label to G and D")
    p.add_argument("--iterations", type=cli.positive(int, MAX_STEPS), help="training iterations (preset default)")
    p.add_argument("--batch-size", type=cli.positive(int, MAX_BATCH))
    p.add_argument("--lr", type=cli.positive(float, MAX_LR))
    p.add_argument("--beta1", type=cli.in_range(0, 1))
    p.add_argument("--beta2", type=cli.in_range(0, 1))
    p.add_argument("--latent-dim", type=cli.positive(int, MAX_LATENT))
    p.add_argument("--g-hidden", type=cli.sizes, help="generator hidden sizes, e.g. 128,256,512,1024")
    p.add_argument("--d-hidden", type=cli.sizes, help="discriminator hidden sizes, e.g. 512,256")
    p.add_argument("--ema", type=cli.in_range(0, 1), help="decay of an average of G's weights used for samples (0: off)")
    p.add_argument("--smooth", type=cli.in_range(0.5, 1, closed_lo=False, closed_hi=True),
                   help="D's target for real images (1: none; 0.9: one-sided smoothing)")
    p.add_argument("--d-dropout", type=cli.in_range(0, 1), help="dropout probability after each hidden layer of D")
    p.add_argument("--aux", type=cli.in_range(0, 100, closed_hi=True),
                   help="with --conditional: weight of D's class head (AC-GAN, deep preset); 0: D sees the label")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--out", help="folder for samples, curves, log and checkpoints (default runs/mnist; "
                                 "with --resume, the checkpoint's folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--sample-every", type=cli.positive(int, MAX_STEPS), default=DEFAULTS["sample_every"])
    p.add_argument("--checkpoint-every", type=cli.positive(int, MAX_STEPS), default=DEFAULTS["checkpoint_every"])
    p.add_argument("--log-every", type=cli.positive(int, MAX_STEPS), default=DEFAULTS["log_every"])
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint (its config is used)")
    p.add_argument("--data", metavar="PATH", help="folder with the MNIST IDX files (.gz or raw), another IDX set "
                   "(any size and classes; MD5SUMS checked if present), an .npz (x, y) or image class folders")
    add_gan_data_flags(p)  # --transpose, --label-offset, --no-normalize, --new-data (tinygan/data/split.py)
    p.add_argument("--require-full", action="store_true",
                   help="fail instead of training on the bundled 10k split when the full MNIST is not found")
    p.add_argument("--eval", action="store_true", help="score the samples with the digit classifier at the end")
    p.add_argument("--eval-every", type=cli.positive(int, MAX_STEPS), help="also score them every N iterations (implies --eval)")
    p.add_argument("--eval-n", type=cli.positive(int, MAX_EVAL), default=10000,
                   help=f"samples per evaluation ({MIN_EVAL} to {MAX_EVAL:,})")
    p.add_argument("--trace", action="store_true",
                   help="log layer norms, update ratios, unit health, D-output histograms and diagnoses; "
                        "draw internals.png")
    p.add_argument("--trace-every", type=cli.positive(int, MAX_STEPS),
                   help="iterations between trace points (implies --trace; default: --log-every)")
    return p


def parse_args(argv, prog=None):
    """(args, the flags written out), with every combination that would do nothing refused."""
    p = parser(prog)
    args = p.parse_args(argv)
    given = p.given(argv)
    args.eval = args.eval or args.eval_every is not None or "eval_n" in given
    args.trace = args.trace or args.trace_every is not None
    if args.cuda_graph and args.backend != "cupy":
        p.error("argument --cuda-graph: a CUDA graph runs on the GPU: add --backend cupy")
    if args.cuda_graph and args.trace:
        p.error("argument --cuda-graph: the tracer reads a step's internals from the host, which a replayed graph "
                "never returns to: drop --trace or --cuda-graph")
    if args.eval_n < MIN_EVAL:
        p.error(f"argument --eval-n: {args.eval_n} samples are too few to score (at least {MIN_EVAL}; 10000 for "
                "published numbers)")
    if args.aux is not None and not (args.conditional or args.resume):
        p.error("argument --aux: the class head needs labels: add --conditional")
    if args.conditional and args.aux and not args.resume:
        preset = make_config(args.preset)
        if not preset["d_logits"]:
            p.error(f"argument --aux: the AC-GAN head needs a discriminator that outputs logits; the {args.preset} "
                    "preset's D ends in a sigmoid: use --preset deep, or --aux 0")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"argument --out: {args.out!r} is a file, not a folder: choose a folder (it is created if missing)")
    return args, given


def main(argv=None, prog=None):
    """Parse flags and train; every failure of usage, data, checkpoint or disk is one line and exit code 2."""
    guarded(train, argv, cli.prog_name(prog, "train_mnist.py"))


def train(argv, prog):
    args, given = parse_args(argv, prog)
    cli.set_threads(args.threads)
    start = time.time()

    # --- config: a new run's from the flags, or the checkpoint's ---
    if args.resume:
        arrays, config = cli.named("--resume", CheckpointError, read_checkpoint, args.resume, GAN_FIELDS, prog)
        done = int(arrays["iteration"])
        check_resume_flags(given, args, config, RUN_CONTROL)
        keep_intervals(args, given, arrays.get("run"))
        if (args.iterations or config["iterations"]) == done and not end_work_done(args.resume, done):
            config["iterations"] = done  # stopped after its last step: only the end-of-run work is left
        else:
            config["iterations"] = check_target(done, args.iterations, config["iterations"])
    else:
        config = make_config(args.preset, conditional=args.conditional, seed=args.seed, iterations=args.iterations,
                             batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, beta2=args.beta2,
                             latent_dim=args.latent_dim, g_hidden=args.g_hidden, d_hidden=args.d_hidden,
                             ema=args.ema, smooth=args.smooth, d_dropout=args.d_dropout, aux=args.aux)
    out = args.out or (os.path.dirname(args.resume) or "." if args.resume else "runs/mnist")

    # --- the run folder: ours alone (a lock), never another run's files (see tinygan/run/runs.py) ---
    cli.output_folder(out)
    run = Run(out, resume=args.resume, overwrite=args.overwrite, prog=prog)
    try:
        be = Backend(args.backend, "float32", seed=config["seed"], rng="philox" if args.cuda_graph else "default")
        images, labels, switch = gan_data(args, config, bool(args.resume), False if args.require_full else None)
        if (args.eval or args.trace) and (config["image"] != [28, 28] or len(config["classes"]) != 10):
            raise cli.UsageError("--eval and --trace score digits with the MNIST classifier: this data is not 28 x 28 "
                                 "digits; drop them")
        if config["batch_size"] > len(images):
            raise cli.UsageError(f"--batch-size {config['batch_size']} is larger than the training set "
                                 f"({len(images)} images): choose a smaller batch")
        eval_data = None if is_custom(args.data) else args.data  # a synthetic set is scored against real MNIST
        gan = GAN(config, be)
        if args.resume:
            cli.named("--resume", CheckpointError, load_checkpoint, args.resume, gan)
        data = Dataset(images, labels, be, config["data_range"])
        records = run.begin(prog, config, args.resume, gan.iteration)
        if switch:  # the log keeps every change of data
            append_log(os.path.join(out, "log.jsonl"), {"iter": gan.iteration, "data_switch": switch})
        loop(args, prog, config, gan, data, be, out, records, eval_data, start)
    finally:
        run.close()


def keep_intervals(args, given, saved):
    """Set the --*-every intervals not given on the command line to the checkpoint's (saved: its 'run' JSON)."""
    try:
        saved = json.loads(str(saved)) if saved is not None else {}
    except ValueError:
        saved = {}
    for key in INTERVALS:
        value = saved.get(key) if isinstance(saved, dict) else None
        if key not in given and type(value) is int and 0 < value <= MAX_STEPS:
            setattr(args, key, value)


def end_work_done(ckpt, done):
    """Whether the run of this checkpoint finished its end-of-run work at iteration done (its last grid is there)."""
    return os.path.exists(os.path.join(os.path.dirname(ckpt) or ".", f"samples_{done:06d}.png"))


def saved_arrays(gan):
    """What a checkpoint holds beside the config, by name: the finite guard checks each before a save."""
    arrays = {"G's weights": gan.G.flat_params, "D's weights": gan.D.flat_params,
              "G's Adam moments": gan.opt_g.m[0], "G's Adam second moments": gan.opt_g.v[0],
              "D's Adam moments": gan.opt_d.m[0], "D's Adam second moments": gan.opt_d.v[0]}
    if gan.ema is not None:
        arrays["G's weight average"] = gan.ema
    return arrays


def loop(args, prog, config, gan, data, be, out, records, eval_data, start):
    written = {"config.json", "log.jsonl"}
    log_path, ckpt = os.path.join(out, "log.jsonl"), os.path.join(out, "checkpoint.npz")
    cond = config["conditional"]
    tracer, trace_note = None, None
    if args.trace:  # see docs/internals.md
        classifier, trace_note = load_trace_classifier(be)  # draws nothing from training's generator
        if trace_note:
            print(trace_note)
        tracer = Tracer(gan, args.trace_every or args.log_every, classifier)
    # Fixed noise for the sample grids, from its own generator so it is the same after a resume.
    fixed_z = be.asarray(np.random.default_rng(config["seed"] + 1).standard_normal((100, config["latent_dim"])))
    k = len(config["classes"])  # set from the data (data/split.py gan_data)
    fixed_y = be.xp.asarray(np.repeat(np.arange(10) % k, 10)) if cond else None  # row r: class r
    title = f"{config['preset']}{' conditional' if cond else ''} GAN, {out}"
    saved = (gan.iteration, args.resume) if args.resume else None  # the last good checkpoint: (iteration, path)

    def plots():
        plot_curves(records, os.path.join(out, "curves.png"), title=f"training curves: {title}")
        written.add("curves.png")
        if tracer:
            draw_internals(records, os.path.join(out, "internals.png"), note=trace_note)
            written.add("internals.png")

    graph = None
    if args.cuda_graph:  # one captured iteration, replayed; gan.step below stays the reference (tinygan/engine/cuda.py)
        from ..engine.cuda import GraphStep
        gan.use_device_counters()
        graph = GraphStep(gan, data)

    # --- loop ---
    iterations, B, first = config["iterations"], config["batch_size"], gan.iteration
    run_settings = {k: getattr(args, k) for k in INTERVALS}  # saved in each checkpoint: a resume keeps them
    source = f" from {args.data}{' (its own IDX set, checked against its MD5SUMS)' if eval_data is None else ''}" \
        if args.data else ""
    print(f"training {config['preset']} GAN{' (conditional)' if cond else ''} on {len(data)} images{source}, "
          f"{args.backend}, batch {B}, iterations {gan.iteration}->{iterations}, out {out}/")

    def end_of_interval(i, last):
        """Evaluation, then the sample grid and the curves (which show that evaluation), as an interval ends."""
        if (args.eval_every and i % args.eval_every == 0) or (args.eval and last):
            try:  # its own noise: training's stream is untouched
                result = evaluate_gan(gan, args.eval_n, eval_data)
            except (MNISTDataError, ValueError, OSError) as e:
                tqdm.write(f"{prog}: evaluation at iteration {i} failed, training goes on: {e}", file=sys.stderr)
            else:
                records.append({"iter": i, "eval": result})
                append_log(log_path, records[-1])
                tqdm.write(f"iter {i:6d}  " + format_table(result).replace("\n", "\n             "))
        if i % args.sample_every == 0 or last:
            name = f"samples_{i:06d}.png"
            images = be.to_host(gan.generate(fixed_z, fixed_y)).reshape(-1, *config["image"])
            save_grid(images, os.path.join(out, name), nrow=10, row_labels=[config["classes"][d % k] for d in range(10)]
                      if cond else None, title=f"iteration {i}")
            written.add(name)
            plots()
            losses = next((r for r in reversed(records) if "d_loss" in r and r["iter"] == i), None)
            tqdm.write(f"iter {i:6d}  " + (f"d_loss {losses['d_loss']:.3f}  g_loss {losses['g_loss']:.3f}  "
                                           f"D(x) {losses['d_real']:.2f}  D(G(z)) {losses['d_fake']:.2f}  "
                                           if losses else "") + f"-> {name}")

    ended = False  # the end-of-run work (final checkpoint, evaluation, grid, curves) is done
    if gan.iteration == iterations:  # resumed after its last step, before its end-of-run work: do that work now
        print(f"{prog}: the checkpoint is at its last iteration ({iterations}); finishing the end-of-run work")
        end_of_interval(iterations, True)
        ended = True
    bar = tqdm(total=iterations, initial=gan.iteration, unit="it", dynamic_ncols=True, disable=ended)
    # NaN or inf is caught by the finite guard below and named there: NumPy's own warnings would only repeat it
    with bar, Signals() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        while gan.iteration < iterations:
            traced = tracer and tracer.due(gan.iteration + 1)
            if graph is not None:
                try:
                    stats = graph()  # samples the batch itself; the stats are device scalars, read at log points
                except Exception as e:
                    if graph.graph is not None:  # it had been captured: a real failure
                        raise
                    print(f"{prog}: CUDA graph capture failed ({type(e).__name__}: {e}); training without it")
                    graph = None
                    continue
            else:
                real, y = data.sample(B)
                if traced:
                    tracer.snapshot()  # parameters before the step, for the update ratios
                stats = gan.step(real, y if cond else None)
            i = gan.iteration
            bar.update(1)
            last = i == iterations or stop.signum is not None
            if i % args.log_every == 0 or i % args.checkpoint_every == 0 or i % args.sample_every == 0 or last or traced:
                record = {"iter": i, **{k: float(v) for k, v in stats.items()}, "seconds": round(time.time() - start, 2)}
                bad = first_nonfinite({**{f"the {k}": record[k] for k in stats}, **saved_arrays(gan)})
                if bad:
                    bar.close()
                    if tracer:  # the internals up to the failure are the most useful picture of it
                        draw_internals(records, os.path.join(out, "internals.png"), note=trace_note)
                    kept = (f"the last good checkpoint {saved[1]} (iteration {saved[0]}) is untouched" if saved
                            else "no checkpoint was saved yet")
                    sys.exit(f"{prog}: stopped at iteration {i}: {bad} became NaN or inf (d_loss {record['d_loss']:.4g}"
                             f", g_loss {record['g_loss']:.4g}); {kept}. A resume keeps the run's --lr: to train with "
                             "a lower one, start a new run (another --out, or --overwrite).")
                if traced:
                    record["trace"] = tracer.record(real, y if cond else None)
                    for d in record["trace"]["diagnoses"]:
                        tqdm.write(f"diagnosis at iteration {i}: {d['message']}")
                records.append(record)
                append_log(log_path, record)
                bar.set_postfix(d_loss=f"{record['d_loss']:.3f}", g_loss=f"{record['g_loss']:.3f}",
                                Dx=f"{record['d_real']:.2f}", DGz=f"{record['d_fake']:.2f}")
            # End of an interval: checkpoint first, then evaluation, then pictures (which show that evaluation).
            if i % args.checkpoint_every == 0 or last:
                save_checkpoint(ckpt, gan, run_settings)
                saved = (i, ckpt)
                written.add("checkpoint.npz")
            if stop.signum is not None:
                break
            end_of_interval(i, last)
            ended = last
    words = ["--resume", ckpt] + \
        (["--backend", args.backend] if args.backend != "numpy" else []) + \
        [w for k in INTERVALS if getattr(args, k) != DEFAULTS[k] for w in ("--" + k.replace("_", "-"), getattr(args, k))]
    resume = cli.shell(prog, "train", *words)  # no data flags: the checkpoint records its data
    if stop.signum is not None and not ended:
        plots()
        print(f"{prog}: stopped by {stop.name} after iteration {gan.iteration}; saved {ckpt}. To continue: {resume}")
        sys.exit(stop.exit_code)
    note = f" ({stop.name} came during the end-of-run work, which finished)" if stop.signum is not None else ""
    print(f"done: {iterations - first:,} iterations ({first:,} → {iterations:,}) in {time.time() - start:.0f}s{note}. "
          f"Wrote to {out}/:")
    for name in sorted(written):
        print(f"  {name}")
    print(f"generate digits: {cli.shell(prog, 'sample', '--checkpoint', ckpt, '--n', 64)}")
