"""cProfile of tinygan steps: the functions where a step's time goes, per step."""
import cProfile
import pstats
import time

import common  # noqa: F401


def owner(file, line):
    """'Class.' for a method defined at file:line (the last class statement above it), else ''."""
    try:
        with open(file) as f:
            lines = f.readlines()[:line]
    except (OSError, TypeError):
        return ""
    for text in reversed(lines[:-1]):
        if text.startswith("class "):
            return text[6:].split("(")[0].split(":")[0].strip() + "."
        if text.startswith("def "):
            return ""
    return ""


def matmul_share(step, n):
    """(ms per step, ms per step spent inside matmul) over n plain steps, every matmul call timed."""
    import numpy as np
    plain, spent = np.matmul, [0.0]

    def timed(*args, **kw):
        t = time.perf_counter()
        try:
            return plain(*args, **kw)
        finally:
            spent[0] += time.perf_counter() - t
    np.matmul = timed  # the engine looks matmul up on its array module at each call
    try:
        t = time.perf_counter()
        for _ in range(n):
            step()
        total = time.perf_counter() - t
    finally:
        np.matmul = plain
    return total / n * 1e3, spent[0] / n * 1e3


def profile_steps(preset, batch, images, labels, seconds=2.0, top=8):
    """{'ms_per_step', 'rows': [(function, ms per step own time, % of step, calls per step)], matmul share}."""
    import tinygan as tg
    from tinygan.models.gan import GAN, Dataset, make_config
    config = make_config(preset, batch_size=batch)
    be = tg.Backend("numpy", "float32", seed=0)
    gan, data = GAN(config, be), Dataset(images, labels, be, config["data_range"])

    def step():
        real, _ = data.sample(batch)
        gan.step(real)
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds / 4 or n < 3:   # warm up, and count steps per seconds/4
        step()
        n += 1
    n *= 4  # about `seconds` of profiled steps (more under cProfile's overhead)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        step()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    rows = []
    for (file, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():
        where = f"{file.split('/')[-1]}:{line}" if line else "builtin"
        rows.append((f"{owner(file, line)}{name} ({where})", tt / n * 1e3, 100 * tt / total, nc / n))
    rows.sort(key=lambda r: -r[1])
    plain_ms, matmul_ms = matmul_share(step, n)
    return dict(preset=preset, batch=batch, steps=n, ms_per_step=total / n * 1e3, rows=rows[:top],
                plain_ms_per_step=plain_ms, matmul_ms_per_step=matmul_ms)


if __name__ == "__main__":
    import argparse
    import json
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", action="store_true", help="one JSON line instead of text")
    ap.add_argument("--data")
    a = ap.parse_args()
    im, lb = common.load_train(a.data)
    results = [profile_steps(p, b, im, lb, a.seconds) for p, b in (("seed", 64), ("deep", 64), ("deep", 256))]
    if a.json:
        print(json.dumps(results))
    for r in [] if a.json else results:
        print(f"{r['preset']} B={r['batch']}: {r['ms_per_step']:.2f} ms/step over {r['steps']} steps; without "
              f"cProfile {r['plain_ms_per_step']:.2f} ms/step, {r['matmul_ms_per_step']:.2f} ms of it in matmul")
        for name, ms, pct, calls in r["rows"]:
            print(f"  {ms:7.3f} ms {pct:5.1f}%  {calls:6.1f}/step  {name}")
