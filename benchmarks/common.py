"""Shared helpers for the benchmarks: repo import path, MNIST loading, thread environment."""
import os
import sys

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
    from tinygan.data import load_mnist
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
