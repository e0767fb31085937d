"""Training iterations per second: tinygan vs the same GAN step in PyTorch, plus floor, memory, op count.

    python benchmarks/bench_step.py              # full run (~5-10 min on 2 cores)
    python benchmarks/bench_step.py --quick      # smoke run (seconds)
    python benchmarks/bench_step.py --markdown   # print the generated part of docs/benchmarks.md
    python benchmarks/bench_step.py --write-doc docs/benchmarks.md   # replace it in the doc
    python benchmarks/bench_step.py --backend cupy   # on a GPU (PyTorch CUDA as the comparison)

Every thread count runs in its own subprocess with OMP/OPENBLAS/MKL_NUM_THREADS set (and
OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset), so numpy's BLAS and PyTorch use the same count.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys

import common
import report

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def run_json(script, args, threads, label):
    """Run benchmarks/<script> in a subprocess pinned to `threads`; its last stdout line is JSON."""
    cmd = [sys.executable, os.path.join(common.HERE, script), *args]
    print(f"[{label}] {' '.join(shlex.quote(c) for c in cmd[1:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=common.thread_env(threads), stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_step.py: {label} failed (exit {proc.returncode}); its error is above")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def check_cupy():
    """Exit with one line unless CuPy and a CUDA device are usable."""
    import tinygan as tg
    try:
        tg.Backend("cupy")
    except tg.BackendError as e:
        sys.exit(f"bench_step.py: no GPU benchmark: {e}")


def write_doc(path, md):
    """Replace the text between the bench markers of `path` with md."""
    with open(path) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"bench_step.py: {path} has no {BEGIN} ... {END} markers to replace")
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w") as f:
        f.write(head + BEGIN + "\n" + md + END + tail)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short blocks, few repeats, short memory run")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--threads", help="thread counts, each in its own process (default 1,2; quick 1)")
    p.add_argument("--presets", default="seed,deep")
    p.add_argument("--batches", help="batch sizes (default 64,256; quick 64)")
    p.add_argument("--repeats", type=int, help="timed blocks per implementation (default 9; quick 3)")
    p.add_argument("--block-s", type=float, help="seconds per block (default 0.4; quick 0.03)")
    p.add_argument("--memory-iterations", type=int, help="iterations of the RSS run (default 10000; quick 300)")
    p.add_argument("--no-extras", action="store_true", help="skip the memory run, op count and profile")
    p.add_argument("--data", help="MNIST folder (default ../shared/data/mnist beside the repo, else tinygan's lookup)")
    p.add_argument("--markdown", action="store_true", help="print the markdown of docs/benchmarks.md's results")
    p.add_argument("--write-doc", metavar="PATH", help="replace the results between the bench markers of PATH")
    p.add_argument("--json", metavar="PATH", help="also save the raw results as JSON")
    args = p.parse_args(argv)

    repeats = args.repeats or (3 if args.quick else 9)
    block_s = args.block_s or (0.03 if args.quick else 0.4)
    warmup_s = 0.05 if args.quick else 0.5
    mem_iters = args.memory_iterations or (300 if args.quick else 10000)
    args.threads = args.threads or ("1" if args.quick else "1,2")
    args.batches = args.batches or ("64" if args.quick else "64,256,1024" if args.backend == "cupy" else "64,256")
    threads = [1] if args.backend == "cupy" else [int(t) for t in args.threads.split(",")]
    data = ["--data", args.data] if args.data else []
    if args.backend == "cupy":
        check_cupy()

    header = dict(command="python benchmarks/bench_step.py " + " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv)),
                  date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), cpu=cpu_name(), nproc=os.cpu_count(),
                  load_before=loadavg(), repeats=repeats, block_s=block_s,
                  openblas_overrides_in_env={k: os.environ.get(k) for k in common.OPENBLAS_OVERRIDES})
    res = dict(header=header, workers=[])
    for n in threads:
        res["workers"].append(run_json("worker.py", ["--threads", str(n), "--backend", args.backend,
                                                     "--presets", args.presets, "--batches", args.batches,
                                                     "--repeats", str(repeats), "--block-s", str(block_s),
                                                     "--warmup-s", str(warmup_s), *data], n, f"speed, {n} thread(s)"))
    if not args.no_extras and args.backend == "numpy":
        early = min(1000, mem_iters // 3)
        res["memory"] = run_json("memory_run.py", ["--iterations", str(mem_iters), "--early", str(early), *data],
                                 1, "memory")
        res["opcount"] = run_json("opcount.py", data[1:], 1, "op count")
        res["profile"] = run_json("profile_step.py", ["--json", "--seconds", "0.5" if args.quick else "3", *data],
                                  1, "profile")
    header["load_after"] = loadavg()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    md = report.markdown(res)
    if args.write_doc:
        write_doc(args.write_doc, md)
        print(f"bench_step.py: wrote the results into {args.write_doc}", file=sys.stderr)
    print(md if args.markdown else report.text(res))


if __name__ == "__main__":
    main()
