"""Score a checkpoint's digits: python examples/evaluate.py --checkpoint runs/mnist/checkpoint.npz."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
import tinygan as tg  # noqa: E402
from tinygan.cli import Parser  # noqa: E402
from tinygan.checkpoint import CheckpointError, load_checkpoint, read_checkpoint  # noqa: E402
from tinygan.data import MNISTDataError  # noqa: E402
from tinygan.evaluation import evaluate_gan, format_table  # noqa: E402
from tinygan.fileio import atomic_write  # noqa: E402
from tinygan.gan import GAN  # noqa: E402


def main(argv=None):
    p = Parser(description="Score the digits a tinygan checkpoint makes, with the shipped MNIST classifier.")
    p.add_argument("--checkpoint", required=True, metavar="PATH")
    p.add_argument("--n", type=int, default=10000, help="number of samples (at least 10,000 for published numbers)")
    p.add_argument("--data", metavar="DIR", help="folder with the MNIST IDX files")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    args = p.parse_args(argv)
    if args.n < 100:
        p.error(f"argument --n: {args.n} is too few samples to score (use 10000)")
    try:
        config = read_checkpoint(args.checkpoint)[1]
        gan = GAN(config, tg.Backend(args.backend, "float32", seed=args.seed))
        load_checkpoint(args.checkpoint, gan)
        result = evaluate_gan(gan, args.n, args.data, seed=args.seed)
    except (CheckpointError, tg.BackendError, MNISTDataError, FileNotFoundError, ValueError) as e:
        sys.exit(f"evaluate.py: error: {e}")
    result.update(checkpoint=args.checkpoint, iteration=gan.iteration, preset=config["preset"],
                  conditional=config["conditional"])
    print(format_table(result))
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=2).encode()))
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
