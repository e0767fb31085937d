"""tinygan read: read image files, folders, globs or an IDX/NPZ set with a recognizer; a CSV of what it reads."""
import csv
import io
import os
import sys

import numpy as np

from ..run import cli
from . import guarded
from ..data import sources
from ..data.split import add_idx_flags
from ..models.recognizer import load_recognizer, read_digits
from ..run.fileio import atomic_write

HEADER = ["path", "label", "confidence", "second", "second_confidence"]


def parser(prog=None):
    p = cli.Parser(prog=prog, description="Read images with a recognizer (tinygan ssl's recognizer.npz): one CSV "
                                          "row per image; with known labels, the accuracy and confusion matrix too.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive; class folders give the "
                   "labels), glob patterns, or one .npz (x, y) or IDX folder")
    p.add_argument("--recognizer", required=True, metavar="FILE", help="a recognizer.npz")
    p.add_argument("--csv", metavar="OUT", help="write the CSV here (default: standard output)")
    p.add_argument("--reject-below", type=cli.in_range(0, 1, closed_hi=True), metavar="P",
                   help="mark rows whose confidence is below P as unsure (an extra column 'unsure'); the accuracy "
                        "then also counts only the sure rows")
    p.add_argument("--labels", metavar="FILE", help="'file,label' lines (files relative to FILE's folder): the true "
                   "labels, for the accuracy")
    p.add_argument("--no-normalize", action="store_true", help="feed images as given (they must match the "
                   "recognizer's size) instead of MNIST's preprocessing")
    add_idx_flags(p)
    return p


def main(argv=None, prog=None):
    """Parse flags and read; every failure of usage, file or image is one line and exit code 2."""
    return guarded(read, argv, cli.prog_name(prog, "tinygan read"), "interrupted: nothing was written")


def truth_from_folders(paths, files, classes):
    """{file: class name} for files under PATH/<class>/ where every such subfolder is one of the classes."""
    truth = {}
    for p in paths:
        if not os.path.isdir(p):
            continue
        subs = [d for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, d)) and not d.startswith(".")]
        if not subs or any(d not in classes for d in subs):
            continue
        for f in files:
            rel = os.path.relpath(f, p)
            if not rel.startswith("..") and os.sep in rel:
                truth[os.path.normpath(f)] = rel.split(os.sep)[0]
    return truth


def gather(args, classes):
    """(row names, uint8 images (N, H, W), true class names or None per row, note)."""
    one = args.paths[0]
    if len(args.paths) == 1 and (one.endswith(".npz") and os.path.isfile(one)
                                 or os.path.isdir(one) and sources._idx_files(one)):
        kind, sets = sources.load_sets(one, args.transpose, args.label_offset)
        split = "test" if "test" in sets else "train"
        s = sets[split]
        names = [f"{one}#{split}{i}" for i in range(len(s.x))]
        return names, s.x, [s.classes[c] for c in s.y], f"{kind} {one}, its {split} split"
    files, skipped = sources.list_images(args.paths)
    x = sources.decode_files(files, normalize=not args.no_normalize)
    truth = (sources.read_labels_file(args.labels, os.path.dirname(os.path.abspath(args.labels)), classes)
             if args.labels else truth_from_folders(args.paths, files, classes))
    truth = {os.path.normpath(os.path.abspath(k)): v for k, v in truth.items()}
    rows = [truth.get(os.path.normpath(os.path.abspath(f))) for f in files]
    if args.labels and any(r is None for r in rows):
        missing = sum(r is None for r in rows)
        print(f"note: {missing} images have no line in {args.labels}: left out of the accuracy", file=sys.stderr)
    return files, x, rows, f"{len(files)} images ({skipped} non-image files skipped)"


def confusion(truth, read, classes):
    """The confusion matrix as text: a row per true class, a column per class read."""
    k = len(classes)
    m = np.zeros((k, k), np.int64)
    for t, r in zip(truth, read):
        m[t, r] += 1
    width = max(5, *(len(c) for c in classes), len(str(m.max())))
    lines = [" " * width + " " + " ".join(f"{c:>{width}}" for c in classes) + "   (rows: true, columns: read)"]
    lines += [f"{classes[i]:>{width}} " + " ".join(f"{v:>{width}}" for v in m[i]) for i in range(k) if m[i].any()]
    return "\n".join(lines)


def read(argv, prog):
    args = parser(prog).parse_args(argv)
    if args.csv and os.path.isdir(args.csv):
        raise cli.UsageError(f"--csv {args.csv!r} is a folder: give a file name, e.g. "
                             f"{os.path.join(args.csv, 'readings.csv')}")
    model, info = load_recognizer(args.recognizer)
    classes = list(model.classes)
    trained = info.get("data") if isinstance(info.get("data"), dict) else {}
    if trained.get("normalize") is False and trained.get("kind") != "mnist":
        args.no_normalize = True  # read images the way the recognizer's training images were prepared
    names, x, truth, note = gather(args, classes)
    unknown = sorted({t for t in truth if t is not None and t not in classes})
    if unknown:
        raise cli.UsageError(f"the true labels {unknown} are not classes of {args.recognizer} ({', '.join(classes)})")
    if x.shape[1:] != tuple(model.image):
        raise cli.UsageError(f"the images are {x.shape[2]} x {x.shape[1]} but {args.recognizer} reads "
                             f"{model.image[1]} x {model.image[0]}: "
                             + ("resize them" if args.no_normalize else "pass --no-normalize, or resize them"))
    r = read_digits(model, x)
    unsure = r.confidences < args.reject_below if args.reject_below is not None else np.zeros(len(x), bool)
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(HEADER + (["unsure"] if args.reject_below is not None else []))
    for i, name in enumerate(names):
        w.writerow([name, r.names[i], f"{r.confidences[i]:.4f}", classes[r.second[i]], f"{r.second_confidences[i]:.4f}"]
                   + ([int(unsure[i])] if args.reject_below is not None else []))
    if args.csv:
        atomic_write(args.csv, lambda f: f.write(text.getvalue().encode("utf-8")))
    else:
        sys.stdout.write(text.getvalue())
    say = sys.stdout if args.csv else sys.stderr  # the CSV on standard output stays clean
    print(f"read {len(x)} images from {note} with {args.recognizer}"
          + (f"; {int(unsure.sum())} unsure (confidence below {args.reject_below})" if unsure.any() else "")
          + (f"; wrote {args.csv}" if args.csv else ""), file=say)
    known = np.array([t is not None for t in truth])
    if known.any():
        t = np.array([classes.index(c) for c in np.array(truth, dtype=object)[known]])
        got = r.labels[known]
        result = {"accuracy": float((got == t).mean()), "n": int(known.sum())}
        line = f"accuracy {100 * result['accuracy']:.2f}% ({int((got == t).sum())} of {result['n']})"
        sure = ~unsure[known]
        if args.reject_below is not None and sure.any():
            result["accuracy_sure"] = float((got[sure] == t[sure]).mean())
            line += f"; on the {int(sure.sum())} sure rows {100 * result['accuracy_sure']:.2f}%"
        print(line, file=say)
        print(confusion(t, got, classes), file=say)
        return result
    return None
