"""Training and reading data beyond MNIST: IDX sets of any size, .npz arrays, image folders; a decode cache.

Every source becomes uint8 images (N, H, W), int64 labels (N,) (-1: unlabelled) and class names."""
import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import images as imgs
from .idx import DataNotFoundError, MNISTDataError, parse_idx, read_bytes
from ..run.fileio import atomic_write

CACHE_VERSION = 1
MAX_CLASSES = 65_536


class DataSourceError(MNISTDataError):
    """A data folder or file cannot be used as given; the message names it and what to do."""


@dataclass
class ImageSet:
    """Images (N, H, W) uint8, labels (N,) int64 (-1 where unlabelled), class names, and where they came from."""
    x: np.ndarray
    y: np.ndarray
    classes: list
    paths: list = field(default_factory=list)
    skipped: int = 0


def fingerprint(x, y, classes):
    """What a checkpoint records of its data: shape, class count and a hash of the arrays."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(x), np.ascontiguousarray(y, dtype=np.int64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return {"shape": list(x.shape), "classes": len(classes), "hash": h.hexdigest()[:16]}


# --- image files ---

def utf8_name(path, what="folder"):
    """A file or folder name as text; one clear error when it is not valid UTF-8 (os.listdir keeps it escaped)."""
    name = os.path.basename(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataSourceError(f"{os.path.dirname(path)}: the {what} name {os.fsencode(name)!r} is not valid "
                              "UTF-8: rename it") from None
    return name


def list_images(paths):
    """(image files sorted, non-image files skipped) from files, folders (recursive) and glob patterns."""
    found, skipped = [], 0
    for p in paths:
        p = os.fspath(p)
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        if not matches:
            raise DataNotFoundError(f"{p}: no file matches this pattern")
        for m in matches:
            if os.path.isdir(m):
                for root, dirs, files in os.walk(m):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for f in sorted(files):
                        if imgs.is_image(f) and not f.startswith("."):
                            found.append(os.path.join(root, f))
                        else:
                            skipped += 1
            elif os.path.isfile(m):
                found.append(m)
            else:
                raise DataNotFoundError(f"{m}: no such file or folder")
    return found, skipped


def _cache_path(files, normalize):
    """The decode cache's file for these files as they are now (names, sizes, times) and this preprocessing."""
    from .mnist import cache_dir
    h = hashlib.sha256(json.dumps([CACHE_VERSION, normalize]).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return cache_dir() / "decoded" / f"{h.hexdigest()[:24]}.npz"


def decode_files(files, normalize=True, cache=True, progress=None):
    """uint8 (N, H, W) of image files, normalised to 28 x 28 or kept as given (then all one size); cached."""
    if not files:
        raise DataNotFoundError("no image files found (png, jpg, jpeg, bmp, gif, tif, tiff)")
    path = _cache_path(files, normalize) if cache else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                x = f["x"]
            if x.dtype == np.uint8 and x.ndim == 3 and len(x) == len(files):
                return x
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache file is decoded again and replaced
    from tqdm import tqdm
    out, first = [], None
    for f in tqdm(files, desc="decoding images", unit="img", disable=None if progress is None else not progress):
        g = imgs.prepare(imgs.decode(f), normalize)
        if first is None:
            first = (f, g.shape)
        elif g.shape != first[1]:
            raise DataSourceError(f"{f} is {g.shape[1]} x {g.shape[0]} pixels but {first[0]} is "
                                  f"{first[1][1]} x {first[1][0]}: with --no-normalize every image must have one "
                                  "size; resize them, or drop --no-normalize")
        out.append(g)
    x = np.stack(out)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda fh: np.savez(fh, x=x))
        except OSError:
            pass  # no cache: the next run decodes again
    return x


def class_folders(root, normalize=True, cache=True, what="--data"):
    """ImageSet of DIR/<class>/*.png|jpg|...: classes in sorted order, non-image files skipped and counted."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataNotFoundError(f"{what} {root}: no such folder")
    names = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)) and not n.startswith("."))
    if not names:
        raise DataSourceError(f"{what} {root}: no class folders in it; put each class's images in a folder "
                              "named after the class (DIR/<class>/*.png)")
    classes, files, labels, skipped = [], [], [], 0
    for c, n in enumerate(names):
        classes.append(utf8_name(os.path.join(root, n), "class folder"))
        found, s = list_images([os.path.join(root, n)])
        if not found:
            raise DataSourceError(f"{what} {os.path.join(root, n)}: the class folder holds no images; add some or "
                                  "remove it")
        files += found
        labels += [c] * len(found)
        skipped += s
    if len(classes) < 2:
        raise DataSourceError(f"{what} {root}: only one class ({classes[0]!r}); a recognizer needs at least two "
                              "class folders")
    x = decode_files(files, normalize, cache)
    return ImageSet(x, np.array(labels, np.int64), classes, files, skipped)


def read_labels_file(path, root, classes=None):
    """{image path: class name} from `file,label` lines (files relative to root); checked against root's files."""
    path = os.fspath(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataNotFoundError(f"labels file {path}: cannot read it ({e})") from None
    out = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or (n == 1 and line.replace(" ", "").lower() in ("file,label", "path,label")):
            continue
        parts = [p.strip() for p in line.rsplit(",", 1)]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise DataSourceError(f"labels file {path}: line {n} is not 'file,label'")
        f = parts[0] if os.path.isabs(parts[0]) else os.path.join(root, parts[0])
        if not os.path.isfile(f):
            raise DataSourceError(f"labels file {path}: line {n} names {parts[0]}, which is not a file in {root}")
        if classes is not None and parts[1] not in classes:
            raise DataSourceError(f"labels file {path}: line {n} gives class {parts[1]!r}, which is not one of "
                                  f"{', '.join(classes)}")
        out[os.path.normpath(f)] = parts[1]
    if not out:
        raise DataSourceError(f"labels file {path}: no 'file,label' lines in it")
    return out


# --- array sets: IDX pairs and .npz ---

def _idx_files(folder):
    """{'train'|'test': (images file, labels file)} of the IDX files in a folder, by their names."""
    names = sorted(os.listdir(folder))
    out = {}
    for split, words in (("train", ("train",)), ("test", ("t10k", "test"))):
        ims = [n for n in names if "idx3" in n and any(w in n for w in words)]
        labs = [n for n in names if "idx1" in n and any(w in n for w in words)]
        if ims and labs:
            out[split] = (os.path.join(folder, ims[0]), os.path.join(folder, labs[0]))
    return out


def read_idx_set(folder, transpose=False, label_offset=0):
    """{'train': ImageSet, ['test': ImageSet]} of an IDX folder; its MD5SUMS checked when it has one."""
    from .mnist import read_sums, verify
    pairs = _idx_files(folder)
    if "train" not in pairs and "test" not in pairs:
        raise DataNotFoundError(f"--data {folder}: no IDX pair (*train*idx3* and *train*idx1*, or t10k/test) in it")
    sums = read_sums(folder)
    sets, top = {}, 0
    for split, (fi, fl) in pairs.items():
        if sums is not None:
            for f in (fi, fl):
                name = os.path.basename(f).removesuffix(".gz")
                if name in sums:
                    verify(f, name, want=sums[name])
        x, y = parse_idx(read_bytes(fi), fi), parse_idx(read_bytes(fl), fl)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise DataSourceError(f"{fi} and {fl}: images {x.shape} and labels {y.shape} are not (N, H, W) and (N,)")
        y = y.astype(np.int64) - label_offset
        if y.min() < 0:
            raise DataSourceError(f"{fl}: label {y.min() + label_offset} is below --label-offset {label_offset}")
        sets[split] = ImageSet(np.ascontiguousarray(x.transpose(0, 2, 1)) if transpose else x, y, [])
        top = max(top, int(y.max()) + 1)
    names = Path(folder) / "classes.txt"
    classes = (names.read_text(encoding="utf-8").split() if names.is_file()
               else [str(i + label_offset) for i in range(top)])
    if len(classes) < top:
        raise DataSourceError(f"{names}: names {len(classes)} classes, the labels reach {top}")
    for s in sets.values():
        s.classes = classes
    return sets


def read_npz(path):
    """{'train': ImageSet, ['test': ImageSet]} of an .npz with x (N, H, W) uint8 or float in [0, 1] and y (N,)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in ("x", "y", "x_test", "y_test", "classes")}
    except (OSError, ValueError, EOFError) as e:
        raise DataSourceError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    if "x" not in arrays or "y" not in arrays:
        raise DataSourceError(f"{path}: needs arrays 'x' (N, H, W) and 'y' (N,); it has {sorted(arrays)}")
    sets = {}
    for split, (kx, ky) in (("train", ("x", "y")), ("test", ("x_test", "y_test"))):
        if kx not in arrays:
            continue
        x, y = arrays[kx], arrays.get(ky)
        if y is None or x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or len(x) == 0 or y.dtype.kind not in "iu":
            raise DataSourceError(f"{path}: '{kx}' {x.shape} and '{ky}' must be (N, H, W) images and (N,) integer "
                                  "labels")
        if x.dtype.kind == "f":
            if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
                raise DataSourceError(f"{path}: float '{kx}' must lie in [0, 1] (finite); scale it, or store uint8")
            x = np.rint(x * 255).astype(np.uint8)
        elif x.dtype != np.uint8:
            raise DataSourceError(f"{path}: '{kx}' is {x.dtype}: store uint8 pixels or floats in [0, 1]")
        if y.min() < 0:
            raise DataSourceError(f"{path}: '{ky}' holds a negative label")
        sets[split] = ImageSet(x, y.astype(np.int64), [])
    top = max(int(s.y.max()) + 1 for s in sets.values())
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(i) for i in range(top)]
    if len(classes) < top:
        raise DataSourceError(f"{path}: 'classes' names {len(classes)} classes, the labels reach {top}")
    for s in sets.values():
        s.classes = classes
    return sets


def is_mnist_folder(path):
    """Whether a folder holds MNIST's own file names (read and checked by tinygan.data.mnist)."""
    from .mnist import ALL, _file
    return path is not None and os.path.isdir(path) and _file(path, ALL[0]) is not None


def load_sets(path, transpose=False, label_offset=0, normalize=True, cache=True):
    """(kind, {'train': ImageSet, ['test': ImageSet]}) of any labelled source: .npz, IDX folder, class folders."""
    path = os.fspath(path)
    if os.path.isfile(path):
        if not path.endswith(".npz"):
            raise DataSourceError(f"--data {path}: a file must be an .npz with x and y; for IDX files pass their "
                                  "folder, for images their class folders' parent")
        return "npz", read_npz(path)
    if not os.path.isdir(path):
        raise DataNotFoundError(f"--data {path}: no such file or folder")
    if _idx_files(path):
        return "idx", read_idx_set(path, transpose, label_offset)
    if not any(os.path.isdir(os.path.join(path, n)) for n in os.listdir(path)):
        raise DataNotFoundError(f"--data {path}: neither an IDX pair (such as MNIST's train-images-idx3-ubyte.gz and "
                                "train-labels-idx1-ubyte.gz) nor class folders (DIR/<class>/*.png) in it")
    return "folders", {"train": class_folders(path, normalize, cache)}


def load_images(paths, normalize=True):
    """(image files, uint8 images (N, 28, 28) with MNIST's preprocessing, or as given) of files, folders, globs."""
    files, _ = list_images([paths] if isinstance(paths, (str, os.PathLike)) else paths)
    return files, decode_files(files, normalize)
