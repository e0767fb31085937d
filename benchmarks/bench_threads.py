"""How --threads holds up on a busy machine: iterations/s of a seed run with 1 and 2 BLAS threads, alone and beside
busy processes. python benchmarks/bench_threads.py [--seconds 20] [--rounds 2] [--busy 2] [--preset seed]

Each run is `python -m tinygan train` stopped by SIGTERM after --seconds (it saves and exits 143); its speed is the
iterations between the first and the last log line over the time between them, so start-up is not counted.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from common import OPENBLAS_OVERRIDES, ROOT, THREAD_VARS


def run(threads, seconds, preset, out):
    """Iterations per second of one training run with `threads` BLAS threads, stopped after `seconds`."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS + OPENBLAS_OVERRIDES}  # --threads decides
    env.update(PYTHONPATH=ROOT, TINYGAN_OFFLINE="1")
    cmd = [sys.executable, "-m", "tinygan", "train", "--preset", preset, "--threads", str(threads),
           "--iterations", "1000000", "--log-every", "10", "--sample-every", "1000000", "--checkpoint-every", "1000000",
           "--out", out, "--overwrite"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    with open(os.path.join(out, "log.jsonl")) as f:
        log = [json.loads(line) for line in f if line.strip()]
    a, b = log[0], log[-1]
    if len(log) < 2:  # so slow that one line was logged: count from the start of the run instead
        a = {"iter": 0, "seconds": 0.0}
    return (b["iter"] - a["iter"]) / (b["seconds"] - a["seconds"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--busy", type=int, default=2, help="busy processes (pure-Python loops) competing for the cores")
    p.add_argument("--preset", default="seed")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for busy in (0, args.busy):
                hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
                try:
                    for threads in (1, 2):
                        load = os.getloadavg()[0]
                        rate = run(threads, args.seconds, args.preset, os.path.join(tmp, f"t{threads}"))
                        results.setdefault((threads, busy), []).append(rate)
                        print(f"round {r}: {threads} thread(s), {busy} busy processes: {rate:6.1f} it/s "
                              f"(load average {load:.1f})", flush=True)
                finally:
                    for h in hogs:
                        h.kill()
                        h.wait()
    print(f"\n{args.preset} preset, {os.cpu_count()} cores; best of {args.rounds} rounds, it/s:")
    for (threads, busy), rates in sorted(results.items()):
        print(f"  --threads {threads}, {busy} busy processes: {max(rates):6.1f}   (all: "
              + ", ".join(f"{x:.1f}" for x in rates) + ")")


if __name__ == "__main__":
    main()
