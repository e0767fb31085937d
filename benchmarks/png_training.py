"""MNIST as PNG scan folders for `tinygan ssl`: python benchmarks/png_training.py [--data DIR] [--out DIR] [--labels 100] [--seed 0] [--compare RECOGNIZER]

Writes OUT/labelled/<digit>/ with the labelled digits `tinygan ssl --labels N --seed S` picks from the IDX files
(the command's own split_rows), OUT/unlabelled/ flat with the other training digits and OUT/test/<digit>/ with the
10,000 test digits, each as benchmarks/scan_roundtrip.py writes a scan (dark ink on light paper, 64 x 64, the
digit scaled up to 36-44 px at a random place), and prints the two `tinygan ssl` commands to compare. With
--compare FILE it writes nothing: it reads OUT/test with `tinygan read --recognizer FILE` and the same digits
from the IDX arrays with tinygan.read_digits, and prints both accuracies.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core for NumPy, before NumPy loads
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
import tinygan as tg  # noqa: E402
from scans import write_scans  # noqa: E402  (benchmarks/scans.py)
from tinygan.data.augment import experiment_split  # noqa: E402
from tinygan.data.split import split_rows  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", default="/work/shared/data/mnist", help="folder with MNIST's IDX files")
p.add_argument("--out", default="/tmp/pngproof/scans", help="where labelled/, unlabelled/ and test/ go")
p.add_argument("--labels", type=int, default=100, help="labelled digits, as tinygan ssl --labels (a multiple of 10)")
p.add_argument("--seed", type=int, default=0, help="tinygan ssl's --seed (which digits are labelled) and the "
               "seed of the scans' sizes and places")
p.add_argument("--size", type=int, default=64, help="side of the scan in pixels")
p.add_argument("--compare", metavar="RECOGNIZER", help="only read OUT/test with this recognizer.npz and compare "
               "with reading the IDX test digits")
args = p.parse_args()
if args.labels <= 0 or args.labels % 10:
    p.error(f"--labels {args.labels}: must be a positive multiple of 10 (the same number of each digit)")

x, y, xt, yt, note = experiment_split(args.data, fallback=False)  # what `tinygan ssl --data DIR` learns and tests on
test = os.path.join(args.out, "test")

if args.compare:
    csv = os.path.join(args.out, "readings.csv")
    cmd = [sys.executable, "-m", "tinygan", "read", "--recognizer", args.compare, test, "--csv", csv]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TQDM_DISABLE="1")
    print("$ " + " ".join(cmd))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    said = done.stdout + done.stderr  # the summary: stdout with --csv
    m = re.search(r"accuracy ([0-9.]+)% \((\d+) of (\d+)\)", said)
    if done.returncode != 0 or m is None:
        sys.exit(f"tinygan read failed ({done.returncode}): {said.strip()}")
    print("\n".join(said.strip().splitlines()[:2]))
    model, _ = tg.load_recognizer(args.compare)
    idx_label = tg.read_digits(model, xt).labels
    idx_accuracy = 100 * float((idx_label == yt).mean())
    png_label = np.full(len(xt), -1)
    with open(csv) as f:
        for line in f.read().splitlines()[1:]:  # path,label,...: the file name is the digit's row in the test set
            path, label = line.split(",")[:2]
            png_label[int(os.path.basename(path)[:5])] = int(label)
    png_accuracy = float(m.group(1))
    print(f"accuracy on the PNG test scans (tinygan read): {png_accuracy:.2f}% ({m.group(2)} of {m.group(3)})")
    print(f"accuracy on the IDX test digits (read_digits): {idx_accuracy:.2f}%")
    print(f"difference: {png_accuracy - idx_accuracy:+.2f} points -> within 0.3 points: "
          f"{'yes' if abs(png_accuracy - idx_accuracy) <= 0.3 else 'no'}; both read the same digit for "
          f"{100 * float((png_label == idx_label).mean()):.2f}% of the {len(xt)}")
    sys.exit(0)

# the labelled digits tinygan ssl --labels N --seed S picks (its defaults at 10+ per class: no --validation)
config = {"validation": 0, "classes": [str(d) for d in range(10)], "labels": args.labels, "seed": args.seed,
          "exclude_labelled": True}
pick, rest, _ = split_rows(y, config)  # rest: every training digit not picked

rng = np.random.default_rng(args.seed)

parts = [("labelled", x[pick], y[pick]), ("unlabelled", x[rest], [""] * len(rest)), ("test", xt, yt)]
for name, images, labels in parts:
    folder = os.path.join(args.out, name)
    shutil.rmtree(folder, ignore_errors=True)
    for label in sorted(set(map(str, labels))):
        os.makedirs(os.path.join(folder, label))
    t0 = time.perf_counter()
    write_scans(images, labels, folder, args.size, rng)
    print(f"wrote {len(images)} {args.size} x {args.size} scans to {folder} in {time.perf_counter() - t0:.0f} s")

print(f"{note}\n{len(pick)} labelled (rows {', '.join(map(str, pick[:5]))}, ...), {len(rest)} unlabelled, "
      f"{len(xt)} test digits. The two runs to compare:")
print(f"python -m tinygan ssl --labels {args.labels} --seed {args.seed} --data {args.data} --out RUN_IDX")
print(f"python -m tinygan ssl --labelled {args.out}/labelled --unlabelled {args.out}/unlabelled --test {test} "
      f"--seed {args.seed} --out RUN_PNG")
print(f"python benchmarks/png_training.py --out {args.out} --compare RUN_PNG/recognizer.npz")
