"""The step's matmuls in NumPy and in PyTorch, same shapes and layouts, timed in turns: is either BLAS faster?

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/gemm_compare.py
"""
import os
import statistics
import time

import common  # noqa: F401  (puts the repo on sys.path)
import numpy as np
import torch

from common import step_gemms


SETTLE_S = 0.2  # OpenBLAS and OpenMP worker threads spin for up to ~0.1 s after a call before sleeping


def jobs(preset, B):
    """(numpy call, torch call) pairs, one per matmul of the step, each in its engine's own layout.

    tinygan keeps W as (in, out) and writes into preallocated outputs; PyTorch keeps W as (out, in)
    (nn.Linear) and lets its allocator provide outputs, as autograd does.
    """
    rng, out = np.random.default_rng(0), []
    for name, a, b, ta, tb in step_gemms(preset, B):
        A, Bm = rng.standard_normal(a, np.float32), rng.standard_normal(b, np.float32)
        nA, nB = (A.T if ta else A), (Bm.T if tb else Bm)       # the engine's transposed views
        C = np.empty((nA.shape[0], nB.shape[1]), np.float32)
        tA, tB = torch.from_numpy(A).clone(), torch.from_numpy(Bm).clone()  # torch-allocated (aligned) copies
        if "fwd" in name:        # y = x W^T with W (out, in)
            Wt = torch.from_numpy(Bm).t().contiguous()
            call = lambda tA=tA, Wt=Wt: torch.mm(tA, Wt.t())
        elif ta:                 # dW (out, in) = dout^T x; A is x (M, in), Bm is dout (M, out)
            call = lambda tA=tA, tB=tB: torch.mm(tB.t(), tA)
        else:                    # dx = dout W; A is dout (M, out), W is (out, in)
            Wt = torch.from_numpy(Bm).t().contiguous()
            call = lambda tA=tA, Wt=Wt: torch.mm(tA, Wt)
        out.append((lambda nA=nA, nB=nB, C=C: np.matmul(nA, nB, out=C), call))
    return out


def rate(calls, n):
    t = time.perf_counter()
    for _ in range(n):
        for c in calls:
            c()
    return (time.perf_counter() - t) / n


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print("preset batch  numpy ms  torch ms  numpy/torch (median of 7 interleaved rounds)")
    for preset in common.PRESETS:
        for B in common.BATCHES:
            pairs = jobs(preset, B)
            np_calls, t_calls = [p[0] for p in pairs], [p[1] for p in pairs]
            n = max(1, int(0.2 / max(rate(np_calls, 1), 1e-6)))
            times = {"numpy": [], "torch": []}
            for r in range(7):
                for name, calls in (("numpy", np_calls), ("torch", t_calls))[::1 if r % 2 == 0 else -1]:
                    time.sleep(SETTLE_S)  # the other library's worker threads stop spinning first
                    times[name].append(rate(calls, n))
            ratio = statistics.median(a / b for a, b in zip(times["numpy"], times["torch"]))
            print(f"{preset:6s} {B:5d}  {statistics.median(times['numpy']) * 1e3:8.2f}  "
                  f"{statistics.median(times['torch']) * 1e3:8.2f}  {ratio:.2f}")


if __name__ == "__main__":
    main()
