"""The GEMM floor of one GAN step: its matmul FLOPs counted from the layer shapes, and a machine GEMM rate."""
import time

from tinygan.gan import IMAGE, make_config


def dense_shapes(preset):
    """([(n_in, n_out)] of G's Dense layers, same for D) for a preset."""
    c = make_config(preset)
    g = [c["latent_dim"], *c["g_hidden"], IMAGE]
    d = [IMAGE, *c["d_hidden"], 1]
    return list(zip(g[:-1], g[1:])), list(zip(d[:-1], d[1:]))


def step_gemms(preset, B):
    """Every matmul one step needs, as (name, a_shape, b_shape, transpose_a, transpose_b).

    The minimum, not what an engine happens to do: no input gradient for the first layer of a
    backward whose input needs none (the images in D's update, the noise z in G's update).
    """
    g, d = dense_shapes(preset)
    out = []

    def forward(tag, layers, M):
        for i, (n, m) in enumerate(layers):
            out.append((f"{tag} fwd L{i}", (M, n), (n, m), False, False))        # x @ W

    def backward(tag, layers, M, weights, first_input):
        for i, (n, m) in reversed(list(enumerate(layers))):
            if weights:
                out.append((f"{tag} dW L{i}", (M, n), (M, m), True, False))     # x^T @ dout
            if i > 0 or first_input:
                out.append((f"{tag} dx L{i}", (M, m), (n, m), False, True))     # dout @ W^T

    forward("D-step G", g, B)                      # fake for D's update
    forward("D-step D", d, 2 * B)                  # real+fake concatenated
    backward("D-step D", d, 2 * B, True, False)    # weight grads; no grad for the images
    forward("G-step G", g, B)
    forward("G-step D", d, B)
    backward("G-step D", d, B, False, True)        # input grads only, down to the image
    backward("G-step G", g, B, True, False)        # weight grads; no grad for z
    return out


def gemm_flops(gemms):
    """2 M K N per matmul, summed."""
    total = 0
    for _, a, b, ta, tb in gemms:
        M, K = (a[1], a[0]) if ta else a
        N = b[0] if tb else b[1]
        total += 2 * M * K * N
    return total


class FloorRunner:
    """Runs exactly the step's matmuls back to back on preallocated arrays: one call = one step's GEMMs."""

    def __init__(self, xp, dtype, gemms, seed=0):
        rng = xp.random.RandomState(seed) if hasattr(xp.random, "RandomState") else None
        self.xp, self.jobs = xp, []
        for _, a, b, ta, tb in gemms:
            A = rng.standard_normal(a).astype(dtype)
            Bm = rng.standard_normal(b).astype(dtype)
            A, Bm = (A.T if ta else A), (Bm.T if tb else Bm)   # transposed views, as the engine's x.T / W.T
            C = xp.empty((A.shape[0], Bm.shape[1]), dtype=dtype)
            self.jobs.append((A, Bm, C))

    def __call__(self):
        mm = self.xp.matmul
        for A, Bm, C in self.jobs:
            mm(A, Bm, out=C)


def square_gemm_rate(xp, dtype, sync, n=2048, repeats=5):
    """Sustained GFLOP/s of an n x n float matmul (median of repeats)."""
    A = xp.ones((n, n), dtype=dtype)
    Bm = xp.ones((n, n), dtype=dtype)
    C = xp.empty((n, n), dtype=dtype)
    xp.matmul(A, Bm, out=C)  # warm up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        xp.matmul(A, Bm, out=C)
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return 2 * n ** 3 / times[len(times) // 2] / 1e9
