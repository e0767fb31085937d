"""tinygan sample (also python examples/sample.py): digits from a checkpoint, streamed to disk chunk by chunk."""
import contextlib
import hashlib
import os
import shutil
import time
import zipfile

import numpy as np
from tqdm import tqdm

from ..run import cli
from ..run.limits import MAX_BATCH, MAX_SAMPLES
from . import guarded
from ..models.checkpoint import CheckpointError, load_gan
from ..data.mnist import SUMS
from ..run.fileio import atomic_open, atomic_write, clean_temps
from ..data.idx import IDXWriter
from ..run.plots import save_grid
from ..run.runs import terminate_raises

FORMATS = ("png", "npy", "npz", "idx", "folders")
GRID = 100       # samples in the png grid: a png-only run draws no more than these
MAX_HOURS = 12   # a run estimated to take longer is refused unless --max-hours allows it
CHUNK = 10000  # samples made and written at a time: memory stays near CHUNK x 3 kB however large --n is


def parser(prog=None):
    p = cli.Parser(prog=prog, description="Generate digits from a tinygan checkpoint.")
    p.add_argument("--checkpoint", required=True, metavar="PATH")
    p.add_argument("--n", type=cli.positive(int, MAX_SAMPLES), default=64, help="number of samples")
    p.add_argument("--digit", type=int, choices=range(10), metavar="0-9",
                   help="conditional checkpoints only: generate only this digit")
    p.add_argument("--format", type=cli.names(FORMATS, "png,idx"), action="append", metavar="png,npy,npz,idx,folders",
                   help="what to write (default png): png a grid of the first 100; npy float32 images in [0, 1]; "
                        "npz uint8 images and labels; idx MNIST-style IDX files and an MD5SUMS (give the folder to "
                        "tinygan train --data); folders one PNG per sample in OUT/images/<class>/ (image folders "
                        "that --data reads back). Several: --format png,idx")
    p.add_argument("--labelled", choices=["npz", "idx"], help="the older spelling of --format npz / --format idx")
    p.add_argument("--out", metavar="DIR", help="output folder (default: a samples/ folder beside the checkpoint)")
    p.add_argument("--idx-prefix", default="train", metavar="NAME",
                   help="IDX files are NAME-images-idx3-ubyte and NAME-labels-idx1-ubyte (default train: MNIST's "
                        "names for a training set; t10k for a test set)")
    p.add_argument("--overwrite", action="store_true", help="replace sample files already in --out")
    p.add_argument("--chunk", type=cli.positive(int, MAX_BATCH), default=CHUNK,
                   help=f"samples per chunk (default {CHUNK})")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--max-hours", type=cli.positive(float, 10000), default=MAX_HOURS,
                   help="refuse a run estimated (from a timed trial batch) to take longer than this")
    cli.add_threads(p)
    return p


def main(argv=None, prog=None):
    """Parse flags and write the samples; bad usage, checkpoints and write failures are one line and exit code 2."""
    guarded(sample, argv, cli.prog_name(prog, "sample.py"),
            "interrupted: no sample file was written (nothing is left half-written)")


def sample(argv, prog):
    p = parser(prog)
    args = p.parse_args(argv)
    asked = [f for group in args.format or [] for f in group] + ([args.labelled] if args.labelled else [])
    want = sorted(set(asked or ["png"]), key=FORMATS.index)
    if not args.idx_prefix.replace("-", "").replace("_", "").replace(".", "").isalnum():
        p.error(f"argument --idx-prefix: {args.idx_prefix!r} must be letters, digits, '-', '_' or '.'")
    cli.set_threads(args.threads)
    gan = cli.named("--checkpoint", CheckpointError, load_gan, args.checkpoint, args.backend, seed=args.seed, prog=prog)
    cond = gan.config["conditional"]
    if args.digit is not None and not cond:
        raise cli.UsageError("--digit: this checkpoint is not conditional (train with --conditional)")
    labelled = [f for f in want if f in ("npz", "idx", "folders")]
    if labelled and not cond:
        raise cli.UsageError(f"--format {labelled[0]}: labels need a conditional checkpoint (train with "
                             "--conditional); an unconditional one can write png or npy")
    out = args.out or os.path.join(os.path.dirname(args.checkpoint) or ".", "samples")
    cli.output_folder(out)
    clean_temps(out)  # what an earlier sample run left when it was killed
    names = {"png": ["samples.png"], "npy": ["samples.npy"], "npz": ["samples.npz"],
             "idx": [f"{args.idx_prefix}-images-idx3-ubyte", f"{args.idx_prefix}-labels-idx1-ubyte"],
             "folders": ["images"]}
    image, classes = tuple(gan.config.get("image", (28, 28))), gan.config.get("classes", [str(d) for d in range(10)])
    targets = {f: [os.path.join(out, n) for n in names[f]] for f in want}
    there = [t for f in want for t in targets[f] if os.path.exists(t)]
    if there and not args.overwrite:
        raise cli.UsageError(f"{there[0]} already exists: pass --overwrite to replace it, or choose another --out")
    n = args.n if want != ["png"] else min(args.n, GRID)  # a png alone shows the first 100: draw no more
    px = image[0] * image[1]
    need = n * ((4 * px if "npy" in want else 0) + (px + 1 if "npz" in want else 0) + (px + 1 if "idx" in want else 0)
                + (px + 100 if "folders" in want else 0))
    free = shutil.disk_usage(out).free
    if need > free:
        raise cli.UsageError(f"--n {n}: the files need {need / 1e9:.2f} GB and {out} has {free / 1e9:.2f} GB free; "
                             "ask for fewer samples or another --out")
    hours = estimate_seconds(gan, n, cond) / 3600
    if hours > args.max_hours:
        raise cli.UsageError(f"--n {n}: about {hours:,.1f} hours at this machine's measured speed "
                             f"({need / 1e9:,.1f} GB), more than --max-hours {args.max_hours:g}; ask for fewer samples, "
                             "or raise --max-hours if it is meant")

    def labels(a, b):  # the digits asked for samples a..b-1: all one digit, or every digit in turn
        if not cond:
            return None
        return np.full(b - a, args.digit) if args.digit is not None else np.arange(a, b) % len(classes)

    with terminate_raises(), contextlib.ExitStack() as files:  # every file is a temp file until all chunks are in:
        # nothing half-written, and Ctrl-C or SIGTERM removes the temp files on the way out
        npy = files.enter_context(atomic_open(targets["npy"][0])) if "npy" in want else None
        if npy:
            np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (n, *image)})
        npz = files.enter_context(zipfile.ZipFile(files.enter_context(atomic_open(targets["npz"][0])), "w"))\
            if "npz" in want else None
        npz_images = files.enter_context(npz.open("images.npy", "w", force_zip64=True)) if npz else None
        if npz_images:
            np.lib.format.write_array_header_1_0(npz_images, {"descr": "|u1", "fortran_order": False,
                                                              "shape": (n, *image)})
        sums = {}
        if "idx" in want:
            writers = []
            for path, shape in zip(targets["idx"], [(n, *image), (n,)]):
                tee = Tee(files.enter_context(atomic_open(path)))
                sums[os.path.basename(path)] = tee.md5
                writers.append(IDXWriter(tee, shape))
        folders = None
        if "folders" in want:  # filled under a temp name, renamed into place once every image is in
            folders = files.enter_context(PendingFolder(targets["folders"][0], classes))
        first = None
        for a in tqdm(range(0, n, args.chunk), unit="chunk", disable=n <= args.chunk, leave=False):
            b = min(n, a + args.chunk)
            y = labels(a, b)
            x = gan.sample(b - a, y)  # (k, H, W) float32 in [0, 1]
            first = x[:100] if first is None else first
            u8 = (x * 255).round().astype(np.uint8)
            if npy:
                npy.write(x.astype("<f4").tobytes())
            if npz_images:
                npz_images.write(u8.tobytes())
            if folders:
                folders.write(a, u8, y)
            if "idx" in want:
                writers[0].write(u8)
                writers[1].write(y.astype(np.uint8))
        if npz:
            npz_images.close()
            with npz.open("labels.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n,)})
                for a in range(0, n, args.chunk):
                    f.write(labels(a, min(n, a + args.chunk)).astype(np.uint8).tobytes())
        if "idx" in want:
            for w in writers:
                w.close()
    if "png" in want:
        save_grid(first, targets["png"][0], nrow=10, title=f"{os.path.basename(args.checkpoint)}, "
                                                           f"iteration {gan.iteration}")
    written = [t for f in want for t in targets[f]]
    if sums:  # keep other sets' lines (e.g. a t10k split written earlier into the same folder)
        path = os.path.join(out, SUMS)
        lines = {}
        if os.path.isfile(path):
            with open(path) as f:
                lines = {ln.split()[1]: ln for ln in f.read().splitlines() if len(ln.split()) == 2}
        lines.update({name: f"{h.hexdigest()}  {name}" for name, h in sums.items()})
        atomic_write(path, lambda f: f.write("".join(ln + "\n" for _, ln in sorted(lines.items())).encode()))
        written.append(path)
    print(f"{n} samples{f' of digit {args.digit}' if args.digit is not None else ''} "
          f"(iteration {gan.iteration} checkpoint). Wrote:")
    for path in written:
        print(f"  {path}")
    if "idx" in want and args.idx_prefix == "train":
        print(f"train on them: {cli.shell(prog, 'train', '--data', out)}")


def estimate_seconds(gan, n, cond, trial=512):
    """Seconds to draw n samples, from a timed trial batch through G on zero noise (no random draw is used)."""
    be, k = gan.be, min(n, trial)
    z = be.zeros(k, gan.config["latent_dim"])
    y = be.xp.zeros(k, dtype="int64") if cond else None
    gan.generate(z, y)  # warm-up: buffers allocated once
    t = time.perf_counter()
    be.to_host(gan.generate(z, y))
    per = (time.perf_counter() - t) / k
    return n * per * 1.5  # writing, the uint8 copies and the checksums: measured at about half the drawing time


class Tee:
    """A file that also feeds what is written to an MD5."""

    def __init__(self, f):
        self.f, self.md5 = f, hashlib.md5()

    def write(self, b):
        self.md5.update(b)
        return self.f.write(b)


class PendingFolder:
    """OUT/images/<class>/NNNNNN.png written in a temp folder beside it and renamed into place at the end."""

    def __init__(self, path, classes):
        self.path, self.classes = path, classes
        self.tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-images")

    def __enter__(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        for c in self.classes:
            os.makedirs(os.path.join(self.tmp, c))
        return self

    def write(self, start, u8, labels):
        from PIL import Image
        for i, (img, c) in enumerate(zip(u8, labels)):
            Image.fromarray(img).save(os.path.join(self.tmp, self.classes[c], f"{start + i:06d}.png"))

    def __exit__(self, kind, *exc):
        if kind is None:
            if os.path.isdir(self.path):  # --overwrite: the old folder goes as a whole
                shutil.rmtree(self.path)
            for c in self.classes:  # no empty class folder: --data would refuse it
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(self.tmp, c))
            os.replace(self.tmp, self.path)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
