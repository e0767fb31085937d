"""MNIST on the host: where the files are, their checksums, bounded downloads, and the bundled 10k fallback."""
import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

from . import download
from ..run.fileio import atomic_write
from .idx import (DataNotFoundError, IDXFormatError, MNISTDataError, idx_bytes, kind_of, parse_idx,  # noqa: F401
                  read_bytes, read_idx, write_idx)


# Standard file names; each may be raw or gzipped (name + ".gz").
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL = FILES["train"] + FILES["test"]

# Canonical MD5 and size of each DECOMPRESSED file (so raw and .gz copies check the same).
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SIZES = {"train-images-idx3-ubyte": 47040016, "train-labels-idx1-ubyte": 60008,
         "t10k-images-idx3-ubyte": 7840016, "t10k-labels-idx1-ubyte": 10008}
SUMS = "MD5SUMS"  # in a --data folder: a set other than MNIST (e.g. from `tinygan sample`), checked against it

MIRRORS = (  # https only: the checksum catches a swapped file, https keeps it from being swapped
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
TIMEOUT = 20    # seconds per connect / read
DEADLINE = 600  # seconds for a whole file, however slowly it trickles in
GET_IT = ("pass --data DIR or set $TINYGAN_DATA to a folder with the four MNIST files "
          "(train-images-idx3-ubyte.gz, ...), or allow a download (network, TINYGAN_OFFLINE unset)")


HOLD_OUT = 2000  # offline: the last 2,000 digits of the bundled t10k split are held out of training, for scoring


class Split(tuple):
    """(images, labels), and where they come from (source, same_images, held_out)."""
    # source: 'mnist', 'custom' (a set with an MD5SUMS) or 'bundled'; same_images: the train and test splits are the
    # same images (the bundled split without its hold-out); held_out: bundled digits kept out of training (else 0)

    def __new__(cls, images, labels, source, same_images=False, held_out=0):
        self = super().__new__(cls, (images, labels))
        self.source, self.same_images, self.held_out = source, same_images, held_out
        return self


ChecksumError = download.ChecksumError  # a file parses but its MD5 is not the one expected (MNIST's, or MD5SUMS's)


def to_unit(x):
    """uint8 pixels -> float32 in [0, 1] (numpy or cupy)."""
    return x.astype("float32") * np.float32(1 / 255)


def to_signed(x):
    """uint8 pixels -> float32 in [-1, 1], the range of a tanh generator (numpy or cupy)."""
    return x.astype("float32") * np.float32(2 / 255) - np.float32(1)


def cache_dir():
    """The user cache for tinygan: $XDG_CACHE_HOME/tinygan, default ~/.cache/tinygan."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinygan"


def bundled_dir():
    """The package-data folder holding the t10k split shipped with tinygan."""
    return str(Path(__file__).resolve().parent / "mnist_data")


def _writable(d):
    """True if we may write in d; a dir with no owner-write bit counts as read-only even for root."""
    try:
        return os.access(d, os.W_OK) and bool(os.stat(d).st_mode & 0o200)
    except OSError:
        return False


def _atomic_write(path, data):
    """Write bytes atomically (never half a file)."""
    atomic_write(path, lambda f: f.write(data))


# --- checksums: raw files hashed every time (by content); gzipped ones remembered by a (size, mtime) stamp,
# since reading them checks the gzip CRC of every byte anyway ---

def _stamps(path, beside=True):
    """Where a file's stamp may live: beside it (if allowed), then the user cache by abs path."""
    p = Path(path).resolve()
    key = hashlib.sha1(str(p).encode()).hexdigest()[:20]
    out = [p.parent / f".{p.name}.md5ok"] if beside and _writable(p.parent) else []
    return out + [cache_dir() / "stamps" / f"{p.name}.{key}.json"]


def _md5(path, limit=None):
    """MD5 hex digest of the decompressed content of a raw or gzipped file, read in blocks (bounded memory)."""
    h, inflate, total = hashlib.md5(), None, 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            if inflate is None:
                inflate = zlib.decompressobj(wbits=31) if block[:2] == b"\x1f\x8b" else False
            while block:
                data = inflate.decompress(block, 1 << 20) if inflate else block
                block = inflate.unconsumed_tail if inflate else b""
                total += len(data)
                if limit is not None and total > limit:
                    raise IDXFormatError(f"{path}: holds more than the {limit} bytes of its file; "
                                         "it is not MNIST (or is damaged): replace it")
                h.update(data)
    return h.hexdigest()


def _check_md5(path, name, want=None):
    """Hash a file and raise ChecksumError unless it matches want (default: canonical MD5[name])."""
    canonical = want is None
    want = MD5[name] if canonical else want
    got = _md5(path, SIZES.get(name) if canonical else None)
    if got != want:
        whose = f"canonical {name}" if canonical else f"{name} in {Path(path).parent / SUMS}"
        raise ChecksumError(f"{path}: checksum mismatch: MD5 of the decompressed data is {got}, "
                            f"expected {want} ({whose}); the file is corrupt or not MNIST: "
                            "delete it and download it again, or point --data at a good copy")


def _stamp(path, name, want):
    """The verdict record for a file as it is now: size, mtime and the MD5 it was checked against."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": want}


def _write_stamp(path, name, beside=True, want=None):
    """Remember that path passed; never fail because a stamp can't be written."""
    data = json.dumps(_stamp(path, name, want or MD5[name])).encode()
    for s in _stamps(path, beside):
        try:
            s.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(s, data)
            return
        except OSError:
            continue


def verify(path, name, beside=True, want=None):
    """Check a file against want (default MD5[name]); a gzipped file with a stamp for its (size, mtime) is not rehashed."""
    gz = str(path).endswith(".gz")
    if gz:
        stamp = _stamp(path, name, want or MD5[name])
        for s in _stamps(path, beside):
            try:
                if json.loads(s.read_text()) == stamp:
                    return
            except (OSError, ValueError):
                pass
    _check_md5(path, name, want)  # a raw file: every time (a flipped byte keeps size and mtime)
    if gz:
        _write_stamp(path, name, beside, want)


# --- locating ---

def _file(d, name):
    """The path of name or name.gz in d, or None."""
    for p in (Path(d) / name, Path(d) / (name + ".gz")):
        if p.is_file():
            return p
    return None


def read_sums(d):
    """{file name: MD5} from d/MD5SUMS (md5sum's format), or None when d has none."""
    path = Path(d) / SUMS
    if not path.is_file():
        return None
    sums = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 32:
            raise IDXFormatError(f"{path}: line {n} is not 'MD5  file name'; fix or delete the file")
        sums[parts[1].lstrip("*").removesuffix(".gz")] = parts[0].lower()
    return sums


def _checked_dir(d, what, names=ALL, beside=True):
    """Check that d holds every file in names, each verified (against d/MD5SUMS if it has one); raise a clear error otherwise."""
    d = Path(d).expanduser()
    if d.is_file():
        raise DataNotFoundError(f"{what} {d} is a file: pass the folder that holds the IDX files ({d.parent})")
    if not d.is_dir():
        raise DataNotFoundError(f"{what} {d}: no such directory; create it with the MNIST files "
                                f"in it, or drop {what} to use the cache / download")
    sums = read_sums(d)
    if sums is not None:  # a set of its own: only what its MD5SUMS lists, and only the split asked for
        names = [n for n in names if n in sums] or names
    missing = [n for n in names if _file(d, n) is None]
    if missing:
        raise DataNotFoundError(f"{what} {d}: missing {', '.join(n + '[.gz]' for n in missing)}; "
                                f"put the standard MNIST files there, or drop {what}")
    for n in names:
        verify(_file(d, n), n, beside, None if sums is None else sums[n])
    return d


def is_custom(d):
    """Whether folder d holds an IDX set of its own (it has an MD5SUMS), not MNIST."""
    return d is not None and (Path(d).expanduser() / SUMS).is_file()


def download_mnist(dest_dir, names=ALL, mirrors=None, timeout=None, verbose=True, deadline=None):
    """Download the missing names into dest_dir as .gz (bounded in time, size and memory), trying each mirror in order."""
    dest_dir = Path(dest_dir)
    fetched = download.download_files(dest_dir, names, list(MIRRORS if mirrors is None else mirrors), MD5, SIZES,
                                      timeout or TIMEOUT, deadline or DEADLINE, verbose)
    for name in fetched:
        _write_stamp(dest_dir / (name + ".gz"), name)  # hashed while downloading: remember it
    return dest_dir


def _offline():
    """True when $TINYGAN_OFFLINE is set to anything but '' or '0'."""
    return os.environ.get("TINYGAN_OFFLINE", "") not in ("", "0")


def require_full():
    """True when $TINYGAN_REQUIRE_FULL forbids the fallback to the bundled 10k split."""
    return os.environ.get("TINYGAN_REQUIRE_FULL", "") not in ("", "0")


def _find(data_dir=None, download=True, verbose=True, mirrors=None, timeout=None):
    """(directory with the full verified set, None) or (None, why it is not available, in a few words)."""
    if data_dir is not None:
        return str(_checked_dir(data_dir, "--data")), None
    if os.environ.get("TINYGAN_DATA"):
        return str(_checked_dir(os.environ["TINYGAN_DATA"], "$TINYGAN_DATA")), None
    cache = cache_dir() / "mnist"
    if all(_file(cache, n) for n in ALL):
        return str(_checked_dir(cache, "cache")), None
    if not download:
        return None, "download=False"
    if _offline():
        return None, "TINYGAN_OFFLINE is set"
    try:
        download_mnist(cache, ALL, mirrors, timeout, verbose)
    except MNISTDataError as e:  # no network, mirrors down, cache not writable: fall back
        return None, str(e)  # the whole reason: which file, which mirrors, what went wrong
    return str(_checked_dir(cache, "cache")), None


def find_mnist(data_dir=None, download=True, verbose=True, mirrors=None, timeout=None):
    """The directory holding the full verified MNIST set, or None if only the bundled split is."""
    return _find(data_dir, download, verbose, mirrors, timeout)[0]


def load_mnist(split="train", data_dir=None, download=True, verbose=True, mirrors=None, timeout=None,
               fallback=None, hold_out=True):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) for 'train' or 'test' as a Split saying where they come from."""
    # fallback=False refuses the bundled 10k. Offline the bundled split is cut in two (hold_out): its first 8,000
    # digits are 'train', the last 2,000 'test', so nothing is scored on what was trained on. hold_out=False gives
    # all 10,000 for either split, with same_images=True (and a warning if verbose).
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    d, why = _find(data_dir, download, verbose, mirrors, timeout)
    names = FILES[split]
    if d is None:  # offline default: the t10k split shipped in the package
        if fallback is False or (fallback is None and require_full()):
            raise DataNotFoundError(f"full MNIST not available ({why}) and the bundled 10k split was refused "
                                    f"(--require-full / TINYGAN_REQUIRE_FULL); {GET_IT}")
        d, names = bundled_dir(), FILES["test"]
        for n in names:
            p = _file(d, n)
            if p is None:
                raise DataNotFoundError(f"{d}: bundled {n}.gz is missing; reinstall tinygan")
            verify(p, n, beside=False)  # never write stamps into the installed package
        images, labels = (read_idx(_file(d, n)) for n in names)
        if not hold_out:
            if verbose:
                print(f"tinygan: warning: no full MNIST ({why}); train and test are the SAME 10,000 bundled digits: "
                      "a score on them is not a test score", file=sys.stderr)
            return Split(images, labels, "bundled", same_images=True)
        if verbose:
            use = (f"TRAINING on {len(images) - HOLD_OUT:,} digits of the bundled 10k test split, the other "
                   f"{HOLD_OUT:,} held out for scoring" if split == "train" else
                   f"scoring on the {HOLD_OUT:,} digits of the bundled 10k test split held out of offline training")
            print(f"tinygan: no full MNIST ({why}); {use} (for all 60k pass --data DIR or set TINYGAN_DATA; "
                  "TINYGAN_REQUIRE_FULL=1 makes this an error)", file=sys.stderr)
        cut = slice(None, -HOLD_OUT) if split == "train" else slice(-HOLD_OUT, None)
        return Split(images[cut], labels[cut], "bundled", held_out=HOLD_OUT)
    elif is_custom(d) and not all(_file(d, n) for n in names):
        raise DataNotFoundError(f"--data {d} holds its own IDX set (it has an {SUMS}) without the {split} files "
                                f"{' and '.join(names)}")
    images, labels = (read_idx(_file(d, n)) for n in names)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise IDXFormatError(f"{d}: images {images.shape} and labels {labels.shape} do not match "
                             "MNIST's (N, 28, 28) and (N,); replace the files")
    return Split(images, labels, "custom" if is_custom(d) else "mnist")
