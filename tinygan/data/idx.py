"""The IDX file format of MNIST: read (raw or gzipped), parse, encode and write, with clear errors."""
import gzip
import zlib
from pathlib import Path

import numpy as np

from ..run.fileio import atomic_write


class MNISTDataError(Exception):
    """Base of every data error; the message names the file and what to do."""


class IDXFormatError(MNISTDataError, ValueError):
    """A file is not a valid IDX file (truncated, wrong magic, HTML, bad gzip, bad labels)."""


class DataNotFoundError(MNISTDataError):
    """A directory or file is missing, or no mirror could deliver it."""


def read_bytes(path):
    """The decompressed bytes of a raw or gzipped file (gzip told by its magic 1f 8b)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataNotFoundError(f"{path}: is a folder, not an IDX file") from None
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)  # checks the gzip CRC: a flipped byte is caught here
        except (OSError, EOFError, zlib.error) as e:
            raise IDXFormatError(
                f"{path}: corrupt gzip stream ({type(e).__name__}: {e}); the file is damaged or "
                "truncated (an interrupted download?): delete it and download it again") from None
    check_not_html(path, data[:512])
    return data


def check_not_html(path, head):
    """Raise a clear error for an error page saved in place of the data."""
    start = head.lstrip()[:16].lower()
    if start.startswith((b"<html", b"<!doctype", b"<?xml", b"<head")):
        raise IDXFormatError(
            f"{path}: this is an HTML page, not MNIST IDX/gzip data (an error page saved by a "
            "failed download or a login wall?): delete it and download the file again")


def kind_of(path):
    """'images' or 'labels' from a standard MNIST file name, else None (any IDX)."""
    name = Path(path).name
    return "labels" if "-labels-" in name else "images" if "-images-" in name else None


def parse_idx(data, name="<bytes>", kind=None):
    """Parse IDX bytes into a uint8 array; kind 'images' wants 3 dims, 'labels' 1 dim in 0..9."""
    if len(data) < 4:
        raise IDXFormatError(f"{name}: truncated: {len(data)} bytes, an IDX header needs at least 4; "
                             "delete the file and download it again")
    zero, dtype, ndim = data[0] | data[1], data[2], data[3]
    want_ndim = {"images": 3, "labels": 1}.get(kind)
    if zero or dtype != 0x08 or ndim == 0 or (want_ndim and ndim != want_ndim):
        want = f"00 00 08 {want_ndim:02x}" if want_ndim else "00 00 08 nn (uint8, nn >= 1 dims)"
        raise IDXFormatError(f"{name}: wrong magic number {data[:4].hex(' ')}, expected {want}; "
                             "this is not an MNIST IDX file (or it is corrupt): replace it")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise IDXFormatError(f"{name}: truncated inside the header ({len(data)} of {head} bytes); "
                             "delete the file and download it again")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for n in shape:
        count *= n  # Python int: no overflow however large the declared sizes
    have = len(data) - head
    if have < count:
        raise IDXFormatError(f"{name}: truncated: header declares shape {shape} = {count} bytes of "
                             f"data, found {have}; delete the file and download it again")
    if have > count:
        raise IDXFormatError(f"{name}: {have - count} unexpected bytes after the {count} declared by "
                             f"shape {shape}; the file is corrupt: replace it")
    x = np.frombuffer(data, np.uint8, count, head).reshape(shape).copy()  # copy: writable
    if kind == "labels" and x.size and x.max() > 9:
        i = int(np.argmax(x > 9))
        raise IDXFormatError(f"{name}: label {x[i]} at index {i}, expected digits 0..9; "
                             "the file is corrupt or not MNIST labels: replace it")
    return x


def idx_header(shape):
    """The IDX header of a uint8 array of this shape: 00 00 08 ndim, then big-endian sizes."""
    return bytes([0, 0, 8, len(shape)]) + b"".join(int(n).to_bytes(4, "big") for n in shape)


def idx_bytes(arr):
    """The IDX encoding of a uint8 array: header, then the data."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return idx_header(arr.shape) + arr.tobytes()


def write_idx(path, arr):
    """Write a uint8 array as a raw IDX file, atomically."""
    atomic_write(path, lambda f: f.write(idx_bytes(arr)))


def read_idx(path, kind=None):
    """Read a raw or gzipped IDX file into a uint8 array (kind from the MNIST file name if None)."""
    return parse_idx(read_bytes(path), str(path), kind or kind_of(path))


class IDXWriter:
    """Write an IDX file of known shape chunk by chunk (bounded memory); call it inside atomic_write."""

    def __init__(self, f, shape):
        self.f, self.shape, self.left = f, tuple(shape), int(np.prod(shape, dtype=np.int64))
        f.write(idx_header(self.shape))

    def write(self, chunk):
        """Append uint8 rows; the header's count must be met exactly by the end."""
        chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
        if chunk.shape[1:] != self.shape[1:] or chunk.size > self.left:
            raise ValueError(f"chunk of shape {chunk.shape} does not fit an IDX file of shape {self.shape}")
        self.f.write(chunk.tobytes())
        self.left -= chunk.size

    def close(self):
        """Check that every declared byte was written."""
        if self.left:
            raise ValueError(f"IDX file of shape {self.shape} is {self.left} bytes short")
