"""The data of `tinygan ssl`, chosen by its flags: MNIST, an IDX set, an .npz, image folders, or labelled and
unlabelled folders; recorded in the config (source and fingerprint) and checked when a run is resumed; its
labelled, unlabelled and validation rows (split_rows)."""
import os

import numpy as np

from . import sources
from .augment import balanced_subset, experiment_split
from .mnist import is_custom
from ..run.cli import UsageError, count
from ..run.limits import MAX_LABEL

SOURCE_FLAGS = ("data", "labelled", "unlabelled", "labels_file", "test", "transpose", "label_offset", "no_normalize")
HOLDOUT = 6  # a set with no test split of its own: every 6th image (in a fixed random order) is held out to test on


def add_idx_flags(p):
    """The flags of an IDX set stored as EMNIST stores it (tinygan ssl, train and read)."""
    p.add_argument("--transpose", action="store_true", help="IDX images stored transposed (EMNIST)")
    p.add_argument("--label-offset", type=count(MAX_LABEL), default=0,
                   help="subtract this from IDX labels (EMNIST letters: 1)")


def add_data_flags(p):
    """The data flags of tinygan ssl."""
    p.add_argument("--data", metavar="PATH", help="MNIST's IDX folder (default: found or downloaded), another IDX "
                   "folder (any size and classes), an .npz with x (N, H, W) and y (N,), or image class folders "
                   "DIR/<class>/*.png")
    p.add_argument("--labelled", metavar="DIR", help="the labelled images, in class folders DIR/<class>/*.png "
                   "(instead of --data); all are used")
    p.add_argument("--unlabelled", metavar="DIR", help="with --labelled or --labels-file: unlabelled images, any "
                   "folder layout")
    p.add_argument("--labels-file", metavar="FILE", help="with --unlabelled: 'file,label' lines naming the labelled "
                   "images among them (files relative to --unlabelled)")
    p.add_argument("--test", metavar="DIR", help="test images in class folders (default: the set's test split, "
                   "else every 6th image held out; with --labelled, the labelled images)")
    add_idx_flags(p)
    p.add_argument("--no-normalize", action="store_true", help="keep images as given (all one size) instead of "
                   "MNIST's preprocessing (bright ink, cropped, 20 px in 28 x 28 by centre of mass)")
    p.add_argument("--new-data", action="store_true", help="with --resume: train on data other than the checkpoint's")


def requested(args):
    """The source the flags ask for, as the config records it (tinygan train has only --data and its options)."""
    flag = lambda name: getattr(args, name, None)  # noqa: E731
    if flag("labelled") or flag("labels_file") or flag("unlabelled"):
        if not flag("unlabelled") and flag("labels_file"):
            raise UsageError("--labels-file names files among --unlabelled DIR: add --unlabelled")
        if not (flag("labelled") or flag("labels_file")):
            raise UsageError("--unlabelled needs labelled images too: add --labelled DIR or --labels-file FILE")
        main, kind = flag("labelled") or flag("labels_file"), "labelled"
    elif args.data is not None and (os.path.isfile(args.data) and args.data.endswith(".npz") or os.path.isdir(
            args.data) and (not sources.is_mnist_folder(args.data) or is_custom(args.data))):
        main, kind = args.data, "set"
    else:
        main, kind = args.data, "mnist"
    absolute = (lambda p: p and os.path.abspath(p))  # noqa: E731
    return {"kind": kind, "path": absolute(main), "unlabelled": absolute(flag("unlabelled")),
            "labels_file": absolute(flag("labels_file")), "test": absolute(flag("test")),
            "transpose": bool(flag("transpose")), "label_offset": flag("label_offset") or 0,
            "normalize": not flag("no_normalize")}


def _holdout(s):
    """(train, test) ImageSets of a set with no test split: every HOLDOUT-th image in a fixed order is held out."""
    order = np.random.default_rng(0).permutation(len(s.x))
    test, train = np.sort(order[::HOLDOUT]), np.sort(np.setdiff1d(order, order[::HOLDOUT]))
    return (sources.ImageSet(s.x[train], s.y[train], s.classes), sources.ImageSet(s.x[test], s.y[test], s.classes))


def load(src, fallback=None):
    """(x, y, x_test, y_test, pick or None, classes, note) of a recorded source."""
    norm = src["normalize"]
    if src["kind"] == "mnist":
        x, y, xt, yt, note = experiment_split(src["path"], fallback=fallback)
        return x, y, xt, yt, None, [str(d) for d in range(10)], note
    test = sources.class_folders(src["test"], norm, what="--test") if src["test"] else None
    if src["kind"] == "set":
        kind, sets = sources.load_sets(src["path"], src["transpose"], src["label_offset"], norm)
        train = sets["train"] if "train" in sets else sets["test"]
        if test is None and "train" in sets and "test" in sets:
            test, where = sets["test"], "its own test split"
        elif test is None:
            train, test = _holdout(train)
            where = f"every {HOLDOUT}th image held out (no test split of its own)"
        else:
            where = f"--test {src['test']}"
        skipped = sum(s.skipped for s in sets.values())
        note = (f"{kind} {src['path']}: {len(train.x)} images to learn from, {len(test.x)} to test on ({where})"
                + (f"; {skipped} non-image files skipped" if skipped else ""))
        return train.x, train.y, test.x, test.y, None, train.classes, note
    # labelled images (class folders or a labels file) and unlabelled ones
    unl_files, skipped = sources.list_images([src["unlabelled"]])
    if src["labels_file"]:
        named = sources.read_labels_file(src["labels_file"], src["unlabelled"])
        classes = sorted(set(named.values()))
        if len(classes) < 2:
            raise sources.DataSourceError(f"labels file {src['labels_file']}: only one class {classes}; a recognizer "
                                          "needs at least two")
        files = [f for f in unl_files if os.path.normpath(f) not in named]
        lab_files = sorted(named)
        lab = sources.ImageSet(sources.decode_files(lab_files, norm),
                               np.array([classes.index(named[f]) for f in lab_files], np.int64), classes, lab_files)
    else:
        lab = sources.class_folders(src["path"], norm, what="--labelled")
        classes, files = lab.classes, unl_files
    unl = sources.decode_files(files, norm) if files else np.zeros((0, *lab.x.shape[1:]), np.uint8)
    if unl.shape[1:] != lab.x.shape[1:]:
        raise sources.DataSourceError(f"--unlabelled {src['unlabelled']}: its images are {unl.shape[1:]}, the labelled "
                                      f"ones {lab.x.shape[1:]}: with --no-normalize all must have one size")
    x = np.concatenate([lab.x, unl])
    y = np.concatenate([lab.y, np.full(len(unl), -1, np.int64)])
    if test is not None and test.classes != classes:
        raise sources.DataSourceError(f"--test {src['test']}: its classes {test.classes} are not the labelled "
                                      f"ones {classes}")
    xt, yt = (test.x, test.y) if test is not None else (lab.x, lab.y)
    where = f"--test {src['test']}" if test is not None else "the labelled images themselves (no --test)"
    note = (f"{len(lab.x)} labelled + {len(unl)} unlabelled images ({skipped} non-image files skipped), "
            f"{len(classes)} classes; error measured on {where}")
    return x, y, xt, yt, np.arange(len(lab.x)), classes, note


def recorded(args, config, resuming, asked):
    """The source to load: the one asked for, or (a resume given no data flag) the checkpoint's, if still there."""
    saved = config.get("data")
    given = any(getattr(args, f, None) not in (None, False, 0) for f in SOURCE_FLAGS)
    if not (resuming and not given and saved):
        return asked
    asked = {k: v for k, v in saved.items() if k not in ("shape", "classes", "hash", "origin")}
    for key in ("path", "unlabelled", "labels_file", "test"):
        if asked.get(key) and not os.path.exists(asked[key]):
            raise UsageError(f"the checkpoint's data {asked[key]} is gone: pass its new place with the same "
                             "flags it was trained with, or other data with --new-data")
    return asked


def check_sizes(config, x, classes, resuming):
    """UsageError when resumed data does not fit the checkpoint's model (image size, class names)."""
    k = len(classes)
    if resuming and (list(x.shape[1:]) != config.get("image", [28, 28]) or classes != config.get("classes", classes)):
        raise UsageError(f"the data has {k} classes of {x.shape[2]} x {x.shape[1]} images, the checkpoint's model was "
                         f"built for {len(config.get('classes', [0] * 10))} classes of "
                         f"{' x '.join(map(str, config.get('image', [28, 28])[::-1]))}: start a new run for it")


def settle(args, config, record, resuming):
    """Record the data in the config; on a resume, refuse other data unless --new-data (then: the log's record)."""
    saved = config.get("data")
    if not resuming or not saved:
        config["data"] = record
        return None
    if saved.get("hash") == record["hash"]:
        return None
    if not getattr(args, "new_data", False):
        raise UsageError(f"this data ({record['kind']} {record['path']}, {record['shape']}, hash {record['hash']}) is "
                         f"not the checkpoint's ({saved['kind']} {saved['path']}, {saved['shape']}, hash "
                         f"{saved['hash']}): pass --new-data to train on it anyway")
    config["data"] = record
    return {"from": saved, "to": record}


def gan_data(args, config, resuming, fallback=None):
    """(images, labels, switch) for tinygan train: MNIST's train split, or any set --data names (sized from it)."""
    from .mnist import load_mnist
    asked = recorded(args, config, resuming, requested(args))
    origin = {}
    if asked["kind"] == "mnist":
        split = load_mnist("train", data_dir=asked["path"], fallback=fallback)
        (x, y), classes = split, [str(d) for d in range(10)]
        # which MNIST digits: evaluate calls a score a test score only if training left those digits out
        origin = {"origin": split.source if split.source != "bundled" else
                  "bundled-train-part" if split.held_out else "bundled-all"}
    else:
        _, sets = sources.load_sets(asked["path"], asked["transpose"], asked["label_offset"], asked["normalize"])
        s = sets["train"] if "train" in sets else sets["test"]
        x, y, classes = s.x, s.y, s.classes
    check_sizes(config, x, classes, resuming)
    switch = settle(args, config, {**asked, **sources.fingerprint(x, y, classes), **origin}, resuming)
    config.update(image=list(x.shape[1:]), classes=classes)  # a resume: the checkpoint's (check_sizes), or MNIST's
    return x, y, switch


def add_gan_data_flags(p):
    """The data flags tinygan train has beside --data."""
    add_idx_flags(p)
    p.add_argument("--no-normalize", action="store_true", help="image folders: keep images as given (all one size)")
    p.add_argument("--new-data", action="store_true", help="with --resume: train on data other than the checkpoint's")


def ssl_data(args, config, resuming, fallback=None):
    """(x, y, x_test, y_test, pick, note, switch): the data, with config's image, classes and data record set
    (new run) or checked against the checkpoint's (resume; switch: the log record of a --new-data switch); pick
    is the labelled images the source names, or None: then commands/ssl.py's split_rows draws them."""
    asked = recorded(args, config, resuming, requested(args))
    x, y, xt, yt, pick, classes, note = load(asked, fallback)
    record = {**asked, **sources.fingerprint(x, y, classes)}
    k = len(classes)
    check_sizes(config, x, classes, resuming)
    keep = len(y) - config.get("validation", 0)  # the last --validation images are held out to choose settings
    if keep < len(y) and pick is not None:
        raise UsageError(f"--validation {len(y) - keep}: needs a fully labelled training set to hold out from; "
                         "this data names its labelled images itself: drop --validation")
    if keep <= len(y) // 2:
        raise UsageError(f"--validation {len(y) - keep}: holds out at least half of the {len(y)} training images; "
                         f"use at most --validation {(len(y) + 1) // 2 - 1}")
    if pick is None:
        fewest = int(np.bincount(y[:keep][y[:keep] >= 0], minlength=k).min())
        word = "digit" if classes == [str(d) for d in range(10)] else "class"
        if config["labels"] % k:
            raise UsageError(f"--labels: {config['labels']} must be a positive multiple of {k} (the same number "
                             f"of each class, {k} classes)")
        if config["labels"] // k > fewest:
            raise UsageError(f"--labels {config['labels']}: {config['labels'] // k} of each {word} asked for, but "
                             f"the rarest {word} has {fewest} training images; use at most --labels {k * fewest}")
    switch = settle(args, config, record, resuming)
    if not resuming and pick is not None:
        config["labels"] = len(pick)
    config.update(image=list(x.shape[1:]), classes=classes)  # a resume: the checkpoint's (check_sizes), or MNIST's
    return x, y, xt, yt, pick, note, switch


def split_rows(y, config, pick=None):
    """(labelled, unlabelled, validation) rows of the training images: the last config["validation"] are held out
    of both pools; the labelled ones (pick, where the data names them) are drawn from the rest, the same number of
    each class, and are in the unlabelled pool unless exclude_labelled."""
    keep, k = len(y) - config["validation"], len(config["classes"])
    if pick is None:
        pick = balanced_subset(y[:keep], config["labels"] // k, config["seed"], classes=k)  # grouped by class
    unlabelled = np.setdiff1d(np.arange(keep), pick) if config["exclude_labelled"] else np.arange(keep)
    return pick, unlabelled, np.arange(keep, len(y))
