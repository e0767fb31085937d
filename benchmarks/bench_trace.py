"""Cost of --trace: a trace point's time against the steps between trace points (python benchmarks/bench_trace.py)."""
import argparse

import common  # noqa: F401  (puts the checkout on sys.path)
from common import load_train

import tinygan as tg
from tinygan.models.gan import GAN, Dataset, make_config
from tinygan.measure.trace import load_trace_classifier, measure_overhead


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--every", type=int, default=100, help="iterations between trace points (the CLI default)")
    p.add_argument("--steps", type=int, default=100, help="plain steps timed per configuration")
    args = p.parse_args()
    images, labels = load_train()
    print("| preset | conditional | classifier | step ms | trace point ms | overhead at every "
          f"{args.every} |\n|---|---|---|---:|---:|---:|")
    for preset, cond in (("seed", False), ("deep", False), ("deep", True)):
        for with_classifier in (False, True):
            be = tg.Backend("numpy", "float32", seed=0)
            config = make_config(preset, conditional=cond)
            gan = GAN(config, be)
            data = Dataset(images, labels, be, config["data_range"])
            classifier = load_trace_classifier(be)[0] if with_classifier else None
            r = measure_overhead(gan, data, every=args.every, steps=args.steps, classifier=classifier)
            print(f"| {preset} | {cond} | {with_classifier} | {r['step_s'] * 1e3:.2f} | {r['trace_s'] * 1e3:.1f} | "
                  f"{r['overhead']:.1%} |")


if __name__ == "__main__":
    main()
