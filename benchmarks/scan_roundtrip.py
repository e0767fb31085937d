"""Scans round trip: MNIST's test digits written as scans and read by `tinygan read`, against reading the IDX directly.

python benchmarks/scan_roundtrip.py --recognizer FILE [--data DIR] [--out DIR] [--limit N] [--seed 0]
python benchmarks/scan_roundtrip.py --decode-only [N] [--data DIR] [--out DIR]

The first form writes each test digit as a scan would look (dark ink on light paper, 64 x 64 PNG, the digit
scaled up to 36-44 px at a random place, in OUT/scans/<digit>/NNNNN.png with NNNNN its index in the test set),
runs `python -m tinygan read --recognizer FILE OUT/scans --csv ...` on the folder twice (first run decodes,
the second is served from the decode cache), reads the same digits from the IDX files with
tinygan.read_digits, and prints both accuracies, their difference in points and the share of digits read
alike. The second form writes N (default 60,000) training digits as 28 x 28 PNGs and times decoding them with
the loader `read` uses (tinygan.data.sources.decode_files), uncached then cached, on one core.
The decode cache lives in OUT/cache (XDG_CACHE_HOME), emptied before each first run.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # one core for NumPy, before NumPy loads
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
import tinygan as tg  # noqa: E402
from scans import write_scans  # noqa: E402  (benchmarks/scans.py)

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--recognizer", default="/work/runs/tune/ebc20/recognizer.npz", help="a recognizer.npz")
p.add_argument("--data", default="/work/shared/data/mnist", help="folder with MNIST's IDX files")
p.add_argument("--out", default="/tmp/scan-proof", help="where the PNGs, CSV and decode cache go")
p.add_argument("--limit", type=int, default=None, help="only the first N test digits (a quick check)")
p.add_argument("--seed", type=int, default=0, help="seed for the digits' sizes and places")
p.add_argument("--size", type=int, default=64, help="side of the scan in pixels")
p.add_argument("--decode-only", type=int, nargs="?", const=60000, default=None, metavar="N",
               help="only time decoding N 28 x 28 training PNGs (default 60,000)")
args = p.parse_args()

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core; children inherit it
cache = os.path.join(args.out, "cache")
os.environ["XDG_CACHE_HOME"] = cache  # the decode cache, here and in the `read` subprocess
print(f"one core (cpu {sorted(os.sched_getaffinity(0))}), OPENBLAS_NUM_THREADS=1; load average "
      + " ".join(f"{v:.2f}" for v in os.getloadavg()))


def timed(fn):
    """(fn's result, wall seconds, CPU seconds of this process and its finished children)."""
    t0, c0 = time.perf_counter(), os.times()
    result = fn()
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) \
        + (c1.children_system - c0.children_system)
    return result, time.perf_counter() - t0, cpu


def say_time(what, n, wall, cpu):
    print(f"{what}: {n} images in {wall:.1f} s wall, {cpu:.1f} s CPU ({1e6 * wall / n:.0f} us/image wall)")


# --- decode only: N 28 x 28 PNGs through read's loader -------------------------------------------------
if args.decode_only is not None:
    from tinygan.data import sources
    x, _ = tg.load_mnist("train", data_dir=args.data, download=False, verbose=False, fallback=False)
    n = min(args.decode_only, len(x))
    folder = os.path.join(args.out, "decode")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)

    def write_pngs():
        for i in range(n):
            Image.fromarray(x[i], mode="L").save(os.path.join(folder, f"{i:05d}.png"))
    _, wall, cpu = timed(write_pngs)
    say_time("wrote 28 x 28 PNGs", n, wall, cpu)
    files, _ = sources.list_images([folder])
    shutil.rmtree(cache, ignore_errors=True)
    first, wall, cpu = timed(lambda: sources.decode_files(files, progress=False))
    say_time("decoded, first run (no cache)", n, wall, cpu)
    again, wall2, cpu2 = timed(lambda: sources.decode_files(files, progress=False))
    say_time("decoded, second run (cache)", n, wall2, cpu2)
    assert np.array_equal(first, again), "the cached decode differs from the first"
    print(f"claim 'decoding 60,000 28x28 PNGs takes <= 30 s on one core': {n} took {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU -> {'holds' if wall <= 30 * n / 60000 else 'fails'} (wall, scaled to {n})")
    sys.exit(0)

# --- 1. the test digits as scans: dark ink on light paper, 64 x 64, scaled up, at a random place -------
x, y = tg.load_mnist("test", data_dir=args.data, download=False, verbose=False, fallback=False)
if args.limit:
    x, y = x[:args.limit], y[:args.limit]
scans = os.path.join(args.out, "scans")
shutil.rmtree(scans, ignore_errors=True)
for d in range(10):
    os.makedirs(os.path.join(scans, str(d)))
rng = np.random.default_rng(args.seed)


_, wall, cpu = timed(lambda: write_scans(x, y, scans, args.size, rng))
say_time(f"wrote {args.size} x {args.size} scans to {scans}", len(x), wall, cpu)

# --- 2. the real command on the folder, twice: decoding, then the decode cache -------------------------
out_csv = os.path.join(args.out, "readings.csv")
cmd = [sys.executable, "-m", "tinygan", "read", "--recognizer", args.recognizer, scans, "--csv", out_csv]
env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TQDM_DISABLE="1")
print("$ " + " ".join(cmd))
shutil.rmtree(cache, ignore_errors=True)
accuracy = None
for run in ("first run (decodes)", "second run (decode cache)"):
    done, wall, cpu = timed(lambda: subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT))
    if done.returncode != 0:
        sys.exit(f"tinygan read failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    say_time(f"tinygan read, {run}", len(x), wall, cpu)
    m = re.search(r"accuracy ([0-9.]+)% \((\d+) of (\d+)\)", done.stdout)
    if m is None:
        sys.exit(f"no accuracy line in tinygan read's output:\n{done.stdout}")
    accuracy = float(m.group(1))
print("\n".join(done.stdout.strip().splitlines()[:2]))

with open(out_csv, newline="") as f:
    lines = f.read().splitlines()[1:]
png_label = np.full(len(x), -1)
for line in lines:
    path, label = line.split(",")[:2]
    png_label[int(os.path.basename(path)[:5])] = int(label)
assert (png_label >= 0).all(), "some test digits have no row in the CSV"

# --- 3. the same digits read from the IDX arrays directly ----------------------------------------------
model, _ = tg.load_recognizer(args.recognizer)
idx_label = tg.read_digits(model, x).labels
idx_accuracy = 100 * float((idx_label == y).mean())
png_accuracy = 100 * float((png_label == y).mean())
agree = 100 * float((png_label == idx_label).mean())
print(f"accuracy from the PNG scans (tinygan read): {accuracy:.2f}% (from its CSV: {png_accuracy:.2f}%)")
print(f"accuracy from the IDX arrays (read_digits): {idx_accuracy:.2f}%")
print(f"difference: {png_accuracy - idx_accuracy:+.2f} points; both readings agree on {agree:.2f}% of "
      f"{len(x)} digits")
print(f"claim 'within 0.3 points': {'holds' if abs(png_accuracy - idx_accuracy) <= 0.3 else 'fails'}")
