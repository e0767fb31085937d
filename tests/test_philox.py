"""Philox4x32-10, the plain-array reference of the GPU's counter-based random numbers."""
import numpy as np
import pytest

from tinygan.engine import philox

# Known-answer vectors of Philox4x32-10 (Random123's kat_vectors): counter words, key words -> output words.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr, key, want", KAT)
def test_known_answers(ctr, key, want):
    out = philox.philox4x32(np, *[np.array([c], np.uint32) for c in ctr], *key)
    assert [int(w[0]) for w in out] == list(want)


def test_blocks_are_a_pure_function_of_key_and_counter():
    a = philox.blocks(np, key=7, first=10, n=6)
    assert a.dtype == np.uint32 and a.shape == (24,)
    assert np.array_equal(a[8:], philox.blocks(np, key=7, first=12, n=4)), "block 12 is block 12, however reached"
    assert not np.array_equal(a, philox.blocks(np, key=8, first=10, n=6)), "another key, another stream"
    big = philox.blocks(np, key=7, first=2 ** 32 - 1, n=2)  # the 64-bit block index carries into the second word
    assert not np.array_equal(big[:4], big[4:])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_and_normal(dtype):
    u, used = philox.uniform(np, 1, 0, 100_001, dtype)
    assert u.dtype == dtype and used == (25_001 if dtype == "float32" else 50_002)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    z, _ = philox.normal(np, 1, 0, 200_001, dtype)
    assert z.dtype == dtype and z.shape == (200_001,) and np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005


def test_integers_cover_the_range_evenly():
    x, used = philox.integers(np, 3, 5, 10, 100_000)
    assert x.dtype == np.int64 and used == 25_000 and x.min() == 0 and x.max() == 9
    counts = np.bincount(x, minlength=10)
    assert np.abs(counts - 10_000).max() < 500  # ~5 sigma for a fair die
    big, _ = philox.integers(np, 3, 0, 60_000, 200_000)
    assert big.max() < 60_000 and len(np.unique(big)) > 57_000  # 60000 (1 - exp(-10 / 3)) = 57,850 expected
