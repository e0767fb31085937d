"""Helpers of the data tests: IDX bytes, writing a set of files, listing a folder (fixtures: conftest.py)."""
import gzip
import os

from tinygan.data import mnist as data

idx = data.idx_bytes


def write_set(d, raw, gz=True):
    """Write the four files into d, gzipped or raw."""
    d.mkdir(parents=True, exist_ok=True)
    for n, b in raw.items():
        (d / (n + ".gz" if gz else n)).write_bytes(gzip.compress(b) if gz else b)
    return d


def names_in(d):
    """The sorted file names in folder d (none if it does not exist)."""
    return sorted(os.listdir(d)) if d.exists() else []
