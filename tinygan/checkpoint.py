"""Checkpoints: one .npz (no pickle) holding G, D, both Adams, the iteration, RNG state and config; classifier weights."""
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .fileio import atomic_write


class CheckpointError(Exception):
    """A checkpoint cannot be read or written; the message names the file and what to do."""


def save_checkpoint(path, gan):
    """Write gan's full training state to path atomically."""
    arrays = {"iteration": np.array(gan.iteration), "config": np.array(json.dumps(gan.config)),
              "rng_state": np.array(gan.be.rng_state())}
    for prefix, part in (("G", gan.G), ("D", gan.D), ("opt_g", gan.opt_g), ("opt_d", gan.opt_d)):
        for k, v in part.state_dict().items():
            arrays[f"{prefix}/{k}"] = np.asarray(v)
    if gan.ema is not None:
        arrays[gan.ema_key] = gan.be.to_host(gan.ema)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_checkpoint(path):
    """The arrays of a checkpoint file, and its config; CheckpointError if unreadable."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist: check the path (runs write "
                              "OUT/checkpoint.npz)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        config = json.loads(str(arrays["config"]))
    except Exception as e:
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({type(e).__name__}: {e}); "
                              "it is not a tinygan checkpoint or it is damaged") from None
    return arrays, config


def load_checkpoint(path, gan):
    """Restore a GAN built from the checkpoint's config to the exact saved state."""
    arrays, _ = read_checkpoint(path)
    try:
        for prefix, part in (("G", gan.G), ("D", gan.D), ("opt_g", gan.opt_g), ("opt_d", gan.opt_d)):
            part.load_state_dict({k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")})
        if gan.ema is not None:
            gan.ema[...] = gan.be.asarray(arrays[gan.ema_key])
        gan.iteration = int(arrays["iteration"])
        # cupy cannot restore its generator state: it re-seeds from (seed, iteration) instead
        gan.be.set_rng_state(str(arrays["rng_state"]), reseed=gan.config["seed"] * 1_000_003 + gan.iteration)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path!r} does not match this model: {e}") from None


WEIGHTS = Path(__file__).resolve().parent / "weights" / "classifier.npz"
RETRAIN = "regenerate it with: python examples/train_classifier.py --data DIR"


def load_classifier_weights(path=None):
    """{name: float array} from the classifier .npz (default: the shipped tinygan/weights/classifier.npz)."""
    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: classifier weights not found; {RETRAIN}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path}: not a readable classifier .npz ({type(e).__name__}: {e}); "
                         f"the file is corrupt or truncated: {RETRAIN}") from None
