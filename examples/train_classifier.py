"""Train the MNIST classifier used for GAN evaluation and ship its weights (tinygan/models/weights/classifier.npz)."""
import datetime
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package beside this script, installed or not
import tinygan as tg  # noqa: E402
from tinygan.models import classifier  # noqa: E402
from tinygan.data import mnist as data
from tinygan.models.classifier import accuracy  # noqa: E402
from tinygan.run.cli import Parser, fail, positive, seed  # noqa: E402

WEIGHTS = Path(tg.__file__).resolve().parent / "weights" / "classifier.npz"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"  # checkout-side copy, if any
SHIFT = 2  # random translation of up to +-2 pixels each way


def parse_args(argv=None):
    p = Parser(description=__doc__)
    p.add_argument("--epochs", type=positive(int), default=15)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--data", default=None,
                   help="folder with the MNIST files (default: shared/data/mnist beside the checkout if it exists, "
                        "else --data's usual lookup: $TINYGAN_DATA, the user cache, a download)")
    p.add_argument("--out", default=str(WEIGHTS),
                   help="weights file to write (.npz; a .json recipe goes beside it; default: the shipped "
                        "tinygan/models/weights/classifier.npz)")
    p.add_argument("--batch", type=positive(int), default=128)
    p.add_argument("--lr", type=positive(float), default=1e-3)
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    return p.parse_args(argv)


def shift_batch(x, rng, s=SHIFT):
    """Translate each image by its own random (dy, dx) in [-s, s], filling with black."""
    # x: (B, 28, 28) -> (B, 28, 28); pad then crop a shifted 28x28 window per image
    b = len(x)
    pad = np.pad(x, ((0, 0), (s, s), (s, s)))
    dy, dx = rng.integers(0, 2 * s + 1, b), rng.integers(0, 2 * s + 1, b)
    rows = (dy[:, None] + np.arange(28))[:, :, None]  # (B, 28, 1)
    cols = (dx[:, None] + np.arange(28))[:, None, :]  # (B, 1, 28)
    return pad[np.arange(b)[:, None, None], rows, cols]


def lr_at(epoch, epochs, lr):
    """Cosine decay from lr to lr/100 over the run, per epoch."""
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs - 1, 1))))


def save(model, recipe, out):
    """Write the state dict (.npz, no pickle) and the recipe (.json), each via temp file + os.replace."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, write in ((out, lambda f: np.savez(f, **model.state_dict())),
                        (out.with_suffix(".json"), lambda f: f.write(json.dumps(recipe, indent=2).encode() + b"\n"))):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; shipped files should be world-readable
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def main(argv=None):
    args = parse_args(argv)
    data_dir = args.data if args.data is not None else (str(SHARED) if SHARED.is_dir() else None)
    try:
        found = data.find_mnist(data_dir)
    except data.MNISTDataError as e:
        fail("train_classifier.py", e)
    if found is None:
        fail("train_classifier.py", "the full 60k MNIST train split is needed (the bundled 10k is the test set); "
             "pass --data DIR with the four MNIST files, or set $TINYGAN_DATA")
    x_train, y_train = data.load_mnist("train", data_dir=data_dir)
    x_test, y_test = data.load_mnist("test", data_dir=data_dir)
    x_test = data.to_unit(x_test)  # (10000, 28, 28) float32

    be = tg.Backend(args.backend, "float32", args.seed)
    rng = np.random.default_rng(args.seed)  # host: shuffling and shifts
    model = classifier.build_classifier(be).train()
    opt = tg.Adam(model.parameters(), lr=args.lr)
    n, t0 = len(x_train), time.time()
    log = []
    for epoch in range(args.epochs):
        opt.lr = lr_at(epoch, args.epochs, args.lr)
        order = rng.permutation(n)
        x_epoch = data.to_unit(shift_batch(x_train[order], rng)).reshape(n, -1)  # (60000, 784)
        y_epoch = be.asarray(y_train[order].astype(np.int64), dtype="int64")
        total = 0.0
        for i in range(0, n, args.batch):
            x = be.asarray(x_epoch[i:i + args.batch])
            model.zero_grad()
            loss, grad = tg.softmax_cross_entropy(model.forward(x), y_epoch[i:i + args.batch])
            model.backward(grad)
            opt.step()
            total += float(loss) * len(x)
        acc = accuracy(model, x_test, y_test)  # predict switches dropout off, then back on
        log.append({"epoch": epoch + 1, "lr": opt.lr, "train_loss": total / n, "test_accuracy": acc})
        print(f"epoch {epoch + 1:2d}/{args.epochs}  lr {opt.lr:.2e}  loss {total / n:.4f}  "
              f"test acc {acc:.4f}  {time.time() - t0:.0f}s", flush=True)

    runtime = time.time() - t0
    final = log[-1]["test_accuracy"] if log else accuracy(model, x_test, y_test)
    recipe = {
        "architecture": repr(model.eval()),
        "sizes": list(classifier.SIZES), "dropout": classifier.DROPOUT,
        "features": f"ReLU output of the {classifier.SIZES[-2]}-unit layer (input of the last Dense)",
        "input": "float in [0, 1], (N, 784) or (N, 28, 28)",
        "optimizer": "Adam(betas=(0.9, 0.999), eps=1e-8)",
        "epochs": args.epochs, "batch": args.batch, "seed": args.seed,
        "lr_schedule": f"cosine per epoch from {args.lr:g} to {args.lr / 100:g}",
        "augmentation": f"random shift of up to +-{SHIFT} px in x and y, per image, fresh each epoch",
        "train_data": "MNIST train split, 60000 images", "dtype": "float32", "backend": args.backend,
        "test_accuracy": final, "runtime_s": round(runtime, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "numpy": np.__version__, "log": log,
    }
    save(model, recipe, args.out)
    print(f"test accuracy {final:.4f} after {runtime:.0f}s; wrote {args.out} and {Path(args.out).with_suffix('.json')}")


if __name__ == "__main__":
    main()
