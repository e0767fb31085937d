"""Shared helpers for the benchmarks: repo import path, MNIST loading, thread environment, the GEMM floor of a step."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout without installing

PRESETS = ("seed", "deep")
BATCHES = (64, 256)
THREADS = (1, 2)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Machine-specific OpenBLAS overrides: unset both together so the auto-detected kernel runs.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def default_data_dir():
    """The genuine MNIST beside the repo (../shared/data/mnist), or None to use tinygan's own lookup."""
    d = os.path.join(ROOT, "..", "shared", "data", "mnist")
    return os.path.abspath(d) if os.path.isdir(d) else None


def load_train(data_dir=None):
    """(uint8 images (N, 28, 28), labels) of the training split, quietly."""
    from tinygan.data.mnist import load_mnist
    return load_mnist("train", data_dir=data_dir or default_data_dir(), download=False, verbose=False)


def thread_env(threads):
    """A copy of os.environ pinned to `threads` BLAS/OpenMP threads (None: leave the count alone)."""
    env = dict(os.environ)
    for name in OPENBLAS_OVERRIDES:
        env.pop(name, None)
    if threads is not None:
        for name in THREAD_VARS:
            env[name] = str(threads)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def blas_info():
    """The numpy BLAS library, kernel (architecture) and thread count, via threadpoolctl if installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"note": "threadpoolctl not installed (pip install threadpoolctl)"}
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl sees it)
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
    return {"note": "no BLAS found by threadpoolctl"}


def rss_mb(field="VmRSS"):
    """This process's VmRSS or VmHWM (peak) from /proc/self/status, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- the GEMM floor of one GAN step: matmul FLOPs from the layer shapes, and this machine's GEMM rate ---
from tinygan.models.gan import IMAGE, make_config  # noqa: E402  (after the sys.path line above)


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
