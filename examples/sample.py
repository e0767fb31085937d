"""Generate digits from a checkpoint: python examples/sample.py --checkpoint runs/mnist/checkpoint.npz --n 64."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
import tinygan as tg  # noqa: E402
from tinygan.cli import Parser  # noqa: E402
from tinygan.checkpoint import CheckpointError, load_checkpoint, read_checkpoint  # noqa: E402
from tinygan.fileio import atomic_write  # noqa: E402
from tinygan.data import write_idx  # noqa: E402
from tinygan.gan import GAN  # noqa: E402
from tinygan.plots import save_grid  # noqa: E402


def main(argv=None):
    p = Parser(description="Generate digits from a tinygan checkpoint.")
    p.add_argument("--checkpoint", required=True, metavar="PATH")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--digit", type=int, help="conditional checkpoints only: generate only this digit")
    p.add_argument("--out", default="samples", help="output folder")
    p.add_argument("--labelled", choices=["npz", "idx"], help="also write images+labels for training recognizers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    args = p.parse_args(argv)
    if args.n <= 0:
        p.error(f"argument --n: {args.n} must be positive")
    if args.digit is not None and not 0 <= args.digit <= 9:
        p.error(f"argument --digit: {args.digit} must be a digit 0-9")
    try:
        config = read_checkpoint(args.checkpoint)[1]
        if args.digit is not None and not config["conditional"]:
            p.error("argument --digit: this checkpoint is not conditional (train with --conditional)")
        if args.labelled and not config["conditional"]:
            p.error("argument --labelled: labels need a conditional checkpoint (train with --conditional)")
        gan = GAN(config, tg.Backend(args.backend, "float32", seed=args.seed))
        load_checkpoint(args.checkpoint, gan)
    except (CheckpointError, tg.BackendError) as e:
        sys.exit(f"sample.py: error: {e}")
    gan.be.rng = tg.Backend(args.backend, "float32", seed=args.seed).rng  # sampling noise from --seed
    gan.D.eval()

    labels = np.full(args.n, args.digit) if args.digit is not None else None
    if config["conditional"] and labels is None:
        labels = np.arange(args.n) % 10  # every digit, in equal shares
    images = gan.sample(args.n, labels)
    os.makedirs(args.out, exist_ok=True)
    written = [os.path.join(args.out, "samples.npy"), os.path.join(args.out, "samples.png")]
    atomic_write(written[0], lambda f: np.save(f, images))
    save_grid(images[:100], written[1], nrow=10)
    if args.labelled == "npz":
        written.append(os.path.join(args.out, "samples_labelled.npz"))
        atomic_write(written[-1], lambda f: np.savez(f, images=(images * 255).round().astype(np.uint8),
                                                     labels=labels.astype(np.uint8)))
    elif args.labelled == "idx":
        written += [os.path.join(args.out, "samples-images-idx3-ubyte"), os.path.join(args.out, "samples-labels-idx1-ubyte")]
        write_idx(written[-2], (images * 255).round().astype(np.uint8))
        write_idx(written[-1], labels.astype(np.uint8))
    print(f"{args.n} samples{f' of digit {args.digit}' if args.digit is not None else ''} "
          f"(iteration {gan.iteration} checkpoint). Wrote:")
    for path in written:
        print(f"  {path}")


if __name__ == "__main__":
    main()
