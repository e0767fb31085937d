"""One benchmark process: interleaved tinygan / PyTorch / GEMM-floor / Adam-alone blocks for every config, as JSON.

Run by bench_step.py in a subprocess whose environment pins the BLAS/OpenMP thread count.
"""
import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

import common  # noqa: F401  (puts the repo on sys.path)
import numpy as np

from common import FloorRunner, gemm_flops, square_gemm_rate, step_gemms


def tinygan_runner(preset, B, images, labels, backend):
    """(A zero-argument callable doing one tinygan iteration (sample a batch, GAN.step), its backend)."""
    import tinygan as tg
    from tinygan.models.gan import GAN, Dataset, make_config
    config = make_config(preset, batch_size=B)
    be = tg.Backend(backend, "float32", seed=0)
    gan = GAN(config, be)
    data = Dataset(images, labels, be, config["data_range"])

    def run():
        real, _ = data.sample(B)
        return gan.step(real)
    return run, be


# OpenBLAS's and OpenMP's worker threads keep spinning for up to ~0.1 s after a call. Both libraries live
# in this process, so with 2 threads a block would otherwise share its cores with the other side's spinners.
SETTLE_S = 0.2


def adam_runner(preset, B, be):
    """Both Adam updates of a step (G's and D's), alone, on a GAN of their own: the optimizer's share."""
    from tinygan.models.gan import GAN, make_config
    gan = GAN(make_config(preset, batch_size=B), be)
    gan.G.flat_grads[...] = 1e-3  # any gradient: the update's cost does not depend on its values
    gan.D.flat_grads[...] = 1e-3

    def run():
        gan.opt_d.step()
        gan.opt_g.step()
    return run


def tinygan_graph_runner(preset, B, images, labels):
    """One tinygan iteration replayed as a CUDA graph (Philox noise, device step counters, captured cuBLAS)."""
    import tinygan as tg
    from tinygan.engine import cuda
    from tinygan.models.gan import GAN, Dataset, make_config
    config = make_config(preset, batch_size=B)
    be = tg.Backend("cupy", "float32", seed=0, rng="philox")
    gan = GAN(config, be)
    gan.use_device_counters()
    step = cuda.GraphStep(gan, Dataset(images, labels, be, config["data_range"]))
    step()  # the first call runs one step eagerly, then captures
    return step


def timed_block(fn, n, sync):
    """Iterations per second of n back-to-back calls."""
    sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return n / (time.perf_counter() - t)


def calibrate(fn, sync, block_s, warmup_s):
    """Warm up for ~warmup_s, then return how many calls take ~block_s."""
    n, spent = 1, 0.0
    while spent < warmup_s or n == 1:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        spent_now = time.perf_counter() - t
        spent += spent_now
        rate = n / max(spent_now, 1e-9)
        n = min(n * 2, 1 << 16)
    return max(1, int(rate * block_s))


def bench_config(preset, B, images, labels, args, torch, device):
    """Interleaved blocks for one (preset, batch): tinygan, each PyTorch variant, the GEMM floor."""
    from torch_gan import TorchGAN, variants
    tg_run, be = tinygan_runner(preset, B, images, labels, args.backend)
    sync_np = be.sync
    sync_t = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    runners = {"tinygan": (tg_run, sync_np)}
    if args.backend == "cupy":  # the same step as one CUDA graph per iteration (tinygan/cuda.py)
        runners["tinygan:graph"] = (tinygan_graph_runner(preset, B, images, labels), sync_np)
    if torch is not None:
        for name, kw in variants(preset).items():
            runners["torch:" + name] = (TorchGAN(preset, B, images, device, **kw).step, sync_t)
        if device == "cuda":
            from torch_gan import GraphedTorchGAN
            runners["torch:cudagraph"] = (GraphedTorchGAN(preset, B, images, device, opt="fused").step, sync_t)
    gemms = step_gemms(preset, B)
    runners["floor"] = (FloorRunner(be.xp, be.dtype, gemms), sync_np)
    runners["adam"] = (adam_runner(preset, B, be), sync_np)

    sizes = {k: calibrate(fn, sync, args.block_s, args.warmup_s) for k, (fn, sync) in runners.items()}
    rates = {k: [] for k in runners}
    order = list(runners)
    for r in range(args.repeats):
        for k in (order if r % 2 == 0 else order[::-1]):   # alternate the order: no position bias
            fn, sync = runners[k]
            if args.threads > 1:  # let the last block's BLAS/OpenMP worker threads stop spinning on the cores
                time.sleep(SETTLE_S)
            rates[k].append(timed_block(fn, sizes[k], sync))
    med = {k: statistics.median(v) for k, v in rates.items()}
    torch_names = [k for k in med if k.startswith("torch:") and k != "torch:cudagraph"]
    best = max(torch_names, key=med.get) if torch_names else None
    # Each round's blocks run back to back, so load that comes and goes hits both sides of a round alike:
    # the median of the per-round ratios is the comparison; its min and max show the spread.
    paired = sorted(a / b for a, b in zip(rates["tinygan"], rates[best])) if best else None
    flops = gemm_flops(gemms)
    row = dict(preset=preset, batch=B, tinygan_its=med["tinygan"],
               torch_its=med[best] if best else None, torch_best=best[6:] if best else None,
               torch_variants={k[6:]: med[k] for k in torch_names},
               paired_ratio=statistics.median(paired) if paired else None,
               paired_ratio_range=(paired[0], paired[-1]) if paired else None,
               floor_flops=flops, floor_its=med["floor"], gemm_gflops=flops * med["floor"] / 1e9, adam_its=med["adam"],
               spread={k: (min(v), max(v)) for k, v in rates.items()}, block_iters=sizes)
    if args.backend == "cupy":
        row["tinygan_graph_its"] = med["tinygan:graph"]
        row["torch_graph_its"] = med.get("torch:cudagraph")
        dot = runners["tinygan:graph"][0].graph.debug_dot_str()  # the captured step in DOT: one node per GPU operation
        row["graph_nodes"] = len(re.findall(r'_node_\d+"\s*\[', dot if isinstance(dot, str) else dot.decode()))
        pool = be.xp.get_default_memory_pool()
        row["cupy_pool_used_mb"] = pool.used_bytes() / 2 ** 20
        row["cupy_pool_total_mb"] = pool.total_bytes() / 2 ** 20
        if device == "cuda":
            row["torch_cuda_max_alloc_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--presets", default="seed,deep")
    p.add_argument("--batches", default="64,256")
    p.add_argument("--block-s", type=float, default=0.4, help="seconds per timed block")
    p.add_argument("--warmup-s", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--data")
    args = p.parse_args()

    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    device = "cpu"
    if args.backend == "cupy":
        device = "cuda" if torch is not None and torch.cuda.is_available() else None
        if device is None:
            torch = None  # no PyTorch CUDA: tinygan-on-CuPy numbers only
    images, labels = common.load_train(args.data)

    import tinygan as tg
    be = tg.Backend(args.backend, "float32")
    info = dict(threads=args.threads, backend=args.backend, blas=common.blas_info(),
                numpy=np.__version__, torch=torch.__version__ if torch else None,
                torch_threads=torch.get_num_threads() if torch else None,
                python=platform.python_version(), n_images=len(images),
                env={k: os.environ.get(k) for k in common.THREAD_VARS + common.OPENBLAS_OVERRIDES},
                square_gemm_gflops=square_gemm_rate(be.xp, be.dtype, be.sync))
    rows = []
    for preset in args.presets.split(","):
        for B in map(int, args.batches.split(",")):
            row = bench_config(preset, B, images, labels, args, torch, device)
            row["threads"] = args.threads
            rows.append(row)
            print(f"  {preset} B={B} threads={args.threads}: tinygan {row['tinygan_its']:.1f} it/s, "
                  f"torch {row['torch_its'] or 0:.1f} it/s ({row['torch_best']})", file=sys.stderr, flush=True)
    print(json.dumps(dict(info=info, rows=rows)))


if __name__ == "__main__":
    main()
