"""Peak RSS and RSS growth of a seed training run (GAN.step in this process; no PyTorch imported).

Prints one JSON line: RSS after setup, at iteration `--early` and at the end, and VmHWM (peak).
"""
import argparse
import json
import resource

import common
from common import rss_mb


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="seed")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iterations", type=int, default=10000)
    p.add_argument("--early", type=int, default=1000, help="the iteration whose RSS growth is measured from")
    p.add_argument("--data")
    args = p.parse_args()

    import tinygan as tg
    from tinygan.models.gan import GAN, Dataset, make_config
    start = rss_mb()
    images, labels = common.load_train(args.data)
    config = make_config(args.preset, batch_size=args.batch)
    be = tg.Backend("numpy", "float32", seed=0)
    gan = GAN(config, be)
    data = Dataset(images, labels, be, config["data_range"])
    del images, labels  # what a training script keeps is the Dataset's copy
    setup = rss_mb()
    early = None
    for i in range(1, args.iterations + 1):
        real, _ = data.sample(args.batch)
        stats = gan.step(real)
        if i == args.early:
            early = rss_mb()
    end = rss_mb()
    print(json.dumps(dict(preset=args.preset, batch=args.batch, iterations=args.iterations, early_iter=args.early,
                          rss_start_mb=start, rss_setup_mb=setup, rss_early_mb=early, rss_end_mb=end,
                          growth_mb=end - early, peak_vmhwm_mb=rss_mb("VmHWM"),
                          peak_ru_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          final_d_loss=float(stats["d_loss"]), blas=common.blas_info())))


if __name__ == "__main__":
    main()
