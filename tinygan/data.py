"""MNIST on the host: where the files are, their checksums, mirrors, and the bundled 10k fallback."""
import hashlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .fileio import atomic_write
from .idx import (DataNotFoundError, IDXFormatError, MNISTDataError, idx_bytes, kind_of,  # noqa: F401
                  parse_idx, read_bytes, read_idx, write_idx)

_kind, _read_bytes = kind_of, read_bytes  # older names

# Standard file names; each may be raw or gzipped (name + ".gz").
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL = FILES["train"] + FILES["test"]

# Canonical MD5 of each DECOMPRESSED file (so raw and .gz copies check the same).
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
TIMEOUT = 20  # seconds per connect / read, not for the whole file
GET_IT = ("pass --data DIR or set $TINYGAN_DATA to a folder with the four MNIST files "
          "(train-images-idx3-ubyte.gz, ...), or allow a download (network, TINYGAN_OFFLINE unset)")


class ChecksumError(MNISTDataError):
    """A file parses but its MD5 is not the canonical MNIST one."""


def to_unit(x):
    """uint8 pixels -> float32 in [0, 1] (numpy or cupy)."""
    return x.astype("float32") * np.float32(1 / 255)


def to_signed(x):
    """uint8 pixels -> float32 in [-1, 1], the range of a tanh generator (numpy or cupy)."""
    return x.astype("float32") * np.float32(2 / 255) - np.float32(1)


# --- checksums, remembered by a stamp keyed on (size, mtime) ---

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


def _stamps(path, beside=True):
    """Where a file's stamp may live: beside it (if allowed), then the user cache by abs path."""
    p = Path(path).resolve()
    key = hashlib.sha1(str(p).encode()).hexdigest()[:20]
    out = [p.parent / f".{p.name}.md5ok"] if beside and _writable(p.parent) else []
    return out + [cache_dir() / "stamps" / f"{p.name}.{key}.json"]


def _md5(path):
    """MD5 hex digest of the decompressed content of a raw or gzipped file."""
    return hashlib.md5(read_bytes(path)).hexdigest()


def _check_md5(path, name):
    """Hash a file and raise ChecksumError unless it matches MD5[name]."""
    got, want = _md5(path), MD5[name]
    if got != want:
        raise ChecksumError(f"{path}: checksum mismatch: MD5 of the decompressed data is {got}, "
                            f"expected {want} (canonical {name}); the file is corrupt or not MNIST: "
                            "delete it and download it again, or point --data at a good copy")


def _stamp(path, name):
    """The verdict record for a file as it is now: size, mtime and the MD5 it was checked against."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": MD5[name]}


def _write_stamp(path, name, beside=True):
    """Remember that path passed; never fail because a stamp can't be written."""
    data = json.dumps(_stamp(path, name)).encode()
    for s in _stamps(path, beside):
        try:
            s.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(s, data)
            return
        except OSError:
            continue


def verify(path, name, beside=True):
    """Check a file against MD5[name], skipping the hash when a stamp for its (size, mtime) exists."""
    want = _stamp(path, name)
    for s in _stamps(path, beside):
        try:
            if json.loads(s.read_text()) == want:
                return
        except (OSError, ValueError):
            pass
    _check_md5(path, name)
    _write_stamp(path, name, beside)


# --- locating and downloading ---

def _file(d, name):
    """The path of name or name.gz in d, or None."""
    for p in (Path(d) / name, Path(d) / (name + ".gz")):
        if p.is_file():
            return p
    return None


def _checked_dir(d, what, names=ALL, beside=True):
    """Check that d holds every file in names, each verified; raise a clear error otherwise."""
    d = Path(d).expanduser()
    if not d.is_dir():
        raise DataNotFoundError(f"{what} {d}: no such directory; create it with the MNIST files "
                                f"in it, or drop {what} to use the cache / download")
    missing = [n for n in names if _file(d, n) is None]
    if missing:
        raise DataNotFoundError(f"{what} {d}: missing {', '.join(n + '[.gz]' for n in missing)}; "
                                f"put the standard MNIST files there, or drop {what}")
    for n in names:
        verify(_file(d, n), n, beside)
    return d


def _user_agent():
    """'tinygan/<version>' for HTTP requests."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"tinygan/{version('tinygan')}"
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "tinygan/0.1.0"


def _fetch(url, dest, name, timeout, verbose):
    """Download url to a temp file beside dest, verify its MD5, then os.replace it into place."""
    from tqdm import tqdm
    req = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=timeout) as r:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False,
                      disable=None if verbose else True) as bar:
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
            got = f.tell()
        if total is not None and got != total:
            raise IDXFormatError(f"{url}: truncated transfer, {got} of {total} bytes")
        _check_md5(tmp, name)  # checked under the temp name: nothing unverified ever has the real name
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)  # a failed or corrupt download never stays
    _write_stamp(dest, name)  # os.replace keeps size and mtime, so the stamp matches
    return dest


def download_mnist(dest_dir, names=ALL, mirrors=None, timeout=None, verbose=True):
    """Download the missing names into dest_dir as .gz, trying each mirror in order."""
    dest_dir = Path(dest_dir)
    mirrors, timeout = list(MIRRORS if mirrors is None else mirrors), timeout or TIMEOUT
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=dest_dir, prefix=".probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MNISTDataError(f"cannot write to the MNIST cache {dest_dir} ({e.strerror or e}); make it "
                             "writable, set $XDG_CACHE_HOME elsewhere, or pass --data DIR / set "
                             "$TINYGAN_DATA to a folder with the MNIST files") from None
    dead = set()  # mirrors that could not be reached: don't wait on them again for the next file
    for name in names:
        if _file(dest_dir, name) is not None:
            continue
        errors = []
        for base in mirrors:
            if base in dead:
                continue
            url = base.rstrip("/") + "/" + name + ".gz"
            try:
                _fetch(url, dest_dir / (name + ".gz"), name, timeout, verbose)
                break
            except (OSError, ValueError, http.client.HTTPException, MNISTDataError) as e:
                if isinstance(e, OSError) and not isinstance(e, urllib.error.HTTPError):
                    dead.add(base)  # connection refused / timed out / DNS: the host is down
                errors.append(f"{url}: {e}")
        else:
            raise DataNotFoundError(f"could not download {name}.gz from any mirror ("
                                    + "; ".join(errors or ["no mirror left"]) + ")")
    return dest_dir


def _offline():
    """True when $TINYGAN_OFFLINE is set to anything but '' or '0'."""
    return os.environ.get("TINYGAN_OFFLINE", "") not in ("", "0")


def _find(data_dir=None, download=True, verbose=True, mirrors=None, timeout=None):
    """(directory with the full verified set, None) or (None, why it is not available)."""
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
        return None, "downloads disabled by TINYGAN_OFFLINE"
    try:
        download_mnist(cache, ALL, mirrors, timeout, verbose)
    except MNISTDataError as e:  # no network, mirrors down, cache not writable: fall back
        why = str(e)
        return None, why if len(why) <= 240 else why[:237] + "..."
    return str(_checked_dir(cache, "cache")), None


def find_mnist(data_dir=None, download=True, verbose=True, mirrors=None, timeout=None):
    """The directory holding the full verified MNIST set, or None if only the bundled split is."""
    return _find(data_dir, download, verbose, mirrors, timeout)[0]


def load_mnist(split="train", data_dir=None, download=True, verbose=True, mirrors=None, timeout=None):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) for split 'train' or 'test'."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    d, why = _find(data_dir, download, verbose, mirrors, timeout)
    names = FILES[split]
    if d is None:  # offline default: the t10k split shipped in the package
        d, names = bundled_dir(), FILES["test"]
        for n in names:
            p = _file(d, n)
            if p is None:
                raise DataNotFoundError(f"{d}: bundled {n}.gz is missing; reinstall tinygan")
            verify(p, n, beside=False)  # never write stamps into the installed package
        if verbose:
            use = "as TRAINING data (10k images, not 60k)" if split == "train" else "(the real test split)"
            print(f"tinygan: full MNIST not available ({why}); using the bundled 10k t10k split {use}. "
                  f"For the full set, {GET_IT}.", file=sys.stderr)
    images, labels = (read_idx(_file(d, n)) for n in names)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise IDXFormatError(f"{d}: images {images.shape} and labels {labels.shape} do not match "
                             "MNIST's (N, 28, 28) and (N,); replace the files")
    return images, labels
