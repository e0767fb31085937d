"""Philox4x32-10 (Salmon et al. 2011): a counter-based generator, the plain-array reference of the GPU's random numbers.

A counter-based generator has no hidden state: block j of the stream is a fixed function of (key, j), so the
whole state is the key and a block counter. On the GPU that counter lives in a device array that each draw
advances, which lets a CUDA graph replay draws that differ every time and lets a checkpoint hold the exact state.
"""
import math

M0, M1 = 0xD2511F53, 0xCD9E8D57   # the round multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85   # the key schedule's Weyl increments
MASK = 0xFFFFFFFF


def philox4x32(xp, c0, c1, c2, c3, k0, k1, rounds=10):
    """Four uint32 words out of each 128-bit counter (c0..c3: uint32 arrays) under the 64-bit key (k0, k1)."""
    c = [xp.asarray(v, dtype=xp.uint64) for v in (c0, c1, c2, c3)]
    k0, k1 = int(k0), int(k1)
    for r in range(rounds):
        if r:  # the key is bumped before every round but the first
            k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
        p0, p1 = c[0] * M0, c[2] * M1  # 32 x 32 -> 64-bit products, exact in uint64
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & MASK, (p0 >> 32) ^ c[3] ^ k1, p0 & MASK]
    return [v.astype(xp.uint32) for v in c]


def blocks(xp, key, first, n):
    """The uint32 words of n blocks starting at block counter `first`: shape (4 n,), block by block."""
    j = xp.arange(n, dtype=xp.uint64) + xp.uint64(first)      # 64-bit block index -> counter words c0, c1
    zero = xp.zeros(n, dtype=xp.uint64)
    words = philox4x32(xp, j & MASK, j >> 32, zero, zero, key & MASK, (key >> 32) & MASK)
    return xp.stack(words, axis=1).reshape(-1)


def uniform(xp, key, first, n, dtype="float32"):
    """n uniforms in [0, 1) from the blocks at `first`, and the number of blocks used."""
    used = -(-n // 4)
    w = blocks(xp, key, first, used)[:n]
    if xp.dtype(dtype) == xp.float64:  # 53 bits: 32 from this word, 21 from a second pass one block-set later
        w2 = blocks(xp, key, first + used, used)[:n]
        u = ((w.astype(xp.uint64) << 21) | (w2.astype(xp.uint64) >> 11)).astype(xp.float64) * 2.0 ** -53
        return u, 2 * used
    return (w >> 8).astype(xp.float32) * xp.float32(2.0 ** -24), used  # 24 bits, exactly representable


def normal(xp, key, first, n, dtype="float32"):
    """n standard normal samples by Box-Muller on pairs of uniforms, and the number of blocks used."""
    h = (n + 1) // 2
    u, used = uniform(xp, key, first, 2 * h, dtype)
    r = xp.sqrt(-2 * xp.log(1 - u[:h]))  # 1 - u is in (0, 1]: the log is finite
    t = (2 * math.pi) * u[h:]
    return xp.concatenate([r * xp.cos(t), r * xp.sin(t)])[:n].astype(dtype), used


def integers(xp, key, first, high, n):
    """n integers in [0, high) as int64, by multiply-shift of 32-bit words (bias below high / 2^32), and blocks used."""
    used = -(-n // 4)
    w = blocks(xp, key, first, used)[:n].astype(xp.uint64)
    return ((w * xp.uint64(high)) >> 32).astype(xp.int64), used


class Stream:
    """A Philox generator on any array module: the key and the next unused block are its whole state."""

    def __init__(self, xp, key, counter=0):
        self.xp, self.key, self.counter = xp, int(key) & 0xFFFFFFFFFFFFFFFF, int(counter)

    def random(self, out):
        """Uniforms in [0, 1) written into out (float32 or float64)."""
        u, used = uniform(self.xp, self.key, self.counter, out.size, out.dtype)
        out[...] = u.reshape(out.shape)
        self.counter += used
        return out

    def standard_normal(self, out):
        """Standard normal samples written into out."""
        z, used = normal(self.xp, self.key, self.counter, out.size, out.dtype)
        out[...] = z.reshape(out.shape)
        self.counter += used
        return out

    def integers(self, high, out):
        """Integers in [0, high) written into out (int64)."""
        k, used = integers(self.xp, self.key, self.counter, high, out.size)
        out[...] = k.reshape(out.shape)
        self.counter += used
        return out

    def state(self):
        """{philox_key, counter}: the exact state."""
        return {"philox_key": self.key, "counter": self.counter}
