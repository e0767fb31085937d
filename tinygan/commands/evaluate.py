"""tinygan evaluate (also python examples/evaluate.py): score the digits a checkpoint makes."""
import json
import os
import sys
import time

from ..run import cli
from ..run.limits import MAX_EVAL
from . import guarded
from ..models.checkpoint import CheckpointError, load_gan
from ..measure.evaluation import evaluate_gan, format_table, judge_test_score, trained_on
from ..run.fileio import atomic_write
from ..measure.supervised import classification_accuracy

MIN_N = 100  # fewer samples make the table meaningless


def parser(prog=None):
    p = cli.Parser(prog=prog, description="Score the digits a tinygan checkpoint makes, with the shipped MNIST "
                                          "classifier.")
    p.add_argument("--checkpoint", required=True, metavar="PATH")
    p.add_argument("--n", type=cli.positive(int, MAX_EVAL), default=10000,
                   help=f"number of samples (at least {MIN_N}; 10,000 for published numbers)")
    p.add_argument("--data", metavar="DIR", help="folder with the MNIST IDX files")
    p.add_argument("--require-full", action="store_true",
                   help="fail instead of scoring against the bundled 10k split when the full MNIST is not found")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
    p.add_argument("--cas", type=cli.positive(int, MAX_EVAL), metavar="N",
                   help="conditional checkpoints: also train the project's classifier on N generated labelled digits "
                        "and report its accuracy on the real test split, beside the same classifier trained on N real "
                        "digits (Classification Accuracy Score; 10000 is a good N)")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    cli.add_threads(p)
    return p


def main(argv=None, prog=None):
    """Parse flags, score, print the table; every failure is one line and exit code 2. Returns the result."""
    return guarded(evaluate, argv, cli.prog_name(prog, "evaluate.py"), "interrupted: nothing was written", also=(ValueError,))


def evaluate(argv, prog):
    p = parser(prog)
    args = p.parse_args(argv)
    if args.n < MIN_N:
        p.error(f"argument --n: {args.n} is too few samples to score (at least {MIN_N}; use 10000)")
    if args.json and os.path.isdir(args.json):
        p.error(f"argument --json: {args.json!r} is a folder: give a file name, e.g. {os.path.join(args.json, 'eval.json')}")
    if args.json:  # checked before the work, not after it
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            p.error(f"argument --json: the folder {folder!r} does not exist: create it or choose another path")
        if not os.access(folder, os.W_OK) or (os.path.exists(args.json) and not os.access(args.json, os.W_OK)):
            p.error(f"argument --json: cannot write {args.json!r} (permission denied): choose another path")
    if args.require_full:
        os.environ["TINYGAN_REQUIRE_FULL"] = "1"  # the evaluation's own data lookup reads it
    cli.set_threads(args.threads)
    gan = cli.named("--checkpoint", CheckpointError, load_gan, args.checkpoint, args.backend, prog=prog)
    if gan.config.get("image", [28, 28]) != [28, 28] or len(gan.config.get("classes", range(10))) != 10:
        p.error(f"argument --checkpoint: the evaluation scores 28 x 28 digits with the MNIST classifier; this model "
                f"makes {len(gan.config['classes'])} classes of {' x '.join(map(str, gan.config['image'][::-1]))} "
                "images (its own data): it cannot be scored here")
    if args.cas and not gan.config["conditional"]:
        p.error("argument --cas: it trains a classifier on generated digits and their labels: the checkpoint must be "
                "conditional (train with --conditional)")
    start = time.time()
    result = evaluate_gan(gan, args.n, args.data, seed=args.seed,
                          progress=lambda what: print(f"{prog}: [{time.time() - start:4.0f}s] {what}", file=sys.stderr))
    judge_test_score(result, trained_on(gan.config))
    result.update(checkpoint=args.checkpoint, iteration=gan.iteration, preset=gan.config["preset"],
                  conditional=gan.config["conditional"])
    print(format_table(result))
    if args.cas:
        result["cas"] = classification_accuracy(gan, args.cas, args.data, args.seed)
        c = result["cas"]
        print(f"  CAS: trained on {c['n']} generated digits {100 * c['synthetic']:.2f}%, on {c['n']} real digits "
              f"{100 * c['real']:.2f}% (the classifier 784-512-256-10, {c['epochs']} epochs; accuracy on "
              f"{c['test']} real test digits)")
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=2).encode()))
        print(f"wrote {args.json}")
    return result
