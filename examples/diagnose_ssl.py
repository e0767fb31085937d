"""Why a semi-supervised run fails: does D fail to separate the digits, or separate them and name them wrongly?

python examples/diagnose_ssl.py --data DIR CHECKPOINT [CHECKPOINT ...] [--json OUT]

For each checkpoint of `tinygan ssl`, on the 10,000 test digits, for the averaged and the live D: the confusion
matrix, how often each class is predicted, and the purity of D's last hidden features (k-means, k = 10, against
the true digits), beside the accuracy that the best one-to-one naming of those clusters would give.
"""
import argparse
import json
import os
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinygan.commands.ssl import read_ssl_checkpoint  # noqa: E402
from tinygan.data.augment import experiment_split  # noqa: E402
from tinygan.engine.backend import Backend  # noqa: E402
from tinygan.models.checkpoint import SSL_FIELDS, load_checkpoint  # noqa: E402
from tinygan.models.ssl import SSLGAN  # noqa: E402


def kmeans(f, k=10, restarts=5, iters=100, seed=0):
    """Cluster ids (N,) of the rows of f (N, J): Lloyd's algorithm from k-means++ starts; the lowest inertia wins."""
    rng, best, best_inertia = np.random.default_rng(seed), None, np.inf
    sq = (f ** 2).sum(axis=1)
    for _ in range(restarts):
        centres = [f[rng.integers(len(f))]]
        for _ in range(k - 1):  # k-means++: the next centre far from the chosen ones
            d = np.min([sq - 2 * f @ c + c @ c for c in centres], axis=0).clip(0)
            centres.append(f[rng.choice(len(f), p=d / d.sum())])
        c = np.array(centres)
        for _ in range(iters):
            dist = sq[:, None] - 2 * f @ c.T + (c ** 2).sum(axis=1)[None]   # (N, k)
            ids = dist.argmin(axis=1)
            new = np.array([f[ids == j].mean(axis=0) if (ids == j).any() else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        inertia = dist[np.arange(len(f)), ids].sum()
        if inertia < best_inertia:
            best, best_inertia = ids, inertia
    return best


def purity(ids, y, k=10):
    """(purity: each cluster named by its majority digit, accuracy of the best one-to-one naming of clusters)."""
    table = np.zeros((k, 10), int)   # table[cluster, digit]
    np.add.at(table, (ids, y), 1)
    rows, cols = linear_sum_assignment(-table)
    return table.max(axis=1).sum() / len(y), table[rows, cols].sum() / len(y)


def diagnose(path, x_test, y_test):
    """{averaged: {...}, live: {...}} for one checkpoint."""
    _, config = read_ssl_checkpoint(path)
    be = Backend("numpy", "float32", seed=config["seed"])
    gan = SSLGAN(config, be)
    load_checkpoint(path, gan, SSL_FIELDS)
    images = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
    out = {"epoch": int(gan.iteration // (config["steps_per_epoch"] or 600)), "labels": config["labels"]}
    for name, average in (("averaged", True), ("live", False)):
        if average:
            gan.use_average(True)
        gan.D.eval()
        feats, pred = [], []
        for a in range(0, len(images), 1000):
            f = gan.D.forward(images[a:a + 1000], upto=gan.features).copy()
            feats.append(f)
            pred.append(gan.D.forward(images[a:a + 1000]).argmax(axis=1))
        gan.D.train()
        if average:
            gan.use_average(False)
        feats, pred = np.concatenate(feats), np.concatenate(pred)
        confusion = np.zeros((10, 10), int)   # confusion[true, predicted]
        np.add.at(confusion, (y_test, pred), 1)
        pure, named = purity(kmeans(feats), y_test)
        out[name] = {"error": float((pred != y_test).mean()), "confusion": confusion.tolist(),
                     "predicted": np.bincount(pred, minlength=10).tolist(), "kmeans_purity": float(pure),
                     "kmeans_best_naming": float(named), "dead_features": int((feats.max(axis=0) <= 0).sum()),
                     "features": int(feats.shape[1])}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", help="folder with the MNIST IDX files")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    _, _, x_test, y_test, note = experiment_split(args.data, fallback=False)
    print(note)
    pure, named = purity(kmeans(x_test.reshape(len(x_test), -1).astype(np.float32) / 255), y_test)
    print(f"reference: k-means on the raw pixels of the test digits: purity {100 * pure:.1f}% "
          f"(best one-to-one naming {100 * named:.1f}%)")
    results = {"pixels": {"kmeans_purity": float(pure), "kmeans_best_naming": float(named)}}
    for path in args.checkpoints:
        r = results[path] = diagnose(path, x_test, y_test)
        print(f"\n{path}: epoch {r['epoch']}, {r['labels']} labels")
        for name in ("averaged", "live"):
            d = r[name]
            print(f"  {name:8s} D: test error {100 * d['error']:.2f}%, k-means purity of last hidden features "
                  f"{100 * d['kmeans_purity']:.1f}% (best one-to-one naming {100 * d['kmeans_best_naming']:.1f}%), "
                  f"{d['dead_features']} of {d['features']} features never active")
            print(f"           predicted per class: {d['predicted']}")
            print("           confusion (rows: true digit, columns: predicted):")
            for row in d["confusion"]:
                print("           " + " ".join(f"{n:5d}" for n in row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
