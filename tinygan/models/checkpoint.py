"""Checkpoints: one .npz (no pickle) holding G, D, both Adams, the iteration, RNG state and config; checked on load."""
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..run.fileio import atomic_write


class CheckpointError(Exception):
    """A checkpoint cannot be read or written; the message names the file, the field and what to do."""


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


def _sizes(v):
    return isinstance(v, list) and len(v) > 0 and all(type(n) is int and n > 0 for n in v)


def _number(v):
    return type(v) in (int, float) and math.isfinite(v)


# Each config field of a GAN: (test, what it must be). A hand-edited or foreign file fails here, by name.
GAN_FIELDS = {
    "preset": (lambda v: isinstance(v, str), "a preset name"),
    "conditional": (lambda v: type(v) is bool, "true or false"),
    "seed": (lambda v: type(v) is int, "an integer"),
    "g_hidden": (_sizes, "a list of positive layer sizes"),
    "d_hidden": (_sizes, "a list of positive layer sizes"),
    "act": (lambda v: v in ("relu", "leaky"), "'relu' or 'leaky'"),
    "g_out": (lambda v: v in ("sigmoid", "tanh"), "'sigmoid' or 'tanh'"),
    "d_logits": (lambda v: type(v) is bool, "true or false"),
    "data_range": (lambda v: v in ("unit", "signed"), "'unit' or 'signed'"),
    "lr": (lambda v: _number(v) and v > 0, "a positive number"),
    "beta1": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "batch_size": (lambda v: type(v) is int and v > 0, "a positive integer"),
    "iterations": (lambda v: type(v) is int and v > 0, "a positive integer"),
    "latent_dim": (lambda v: type(v) is int and v > 0, "a positive integer"),
    "d_dropout": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "smooth": (lambda v: _number(v) and 0.5 < v <= 1, "a number in (0.5, 1]"),
    "ema": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "aux": (lambda v: _number(v) and v >= 0, "a number >= 0"),
}
SIZED = {  # set from the data; optional (OPTIONAL): checkpoints written before they existed are MNIST's
    "image": (lambda v: _sizes(v) and len(v) == 2, "[height, width]"),
    "classes": (lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(c, str) for c in v)
                and len(set(v)) == len(v), "a list of at least 2 different class names"),
    "data": (lambda v: v is None or isinstance(v, dict), "a record of the training data"),
}
GAN_FIELDS.update(SIZED)

# The semi-supervised GAN's config (tinygan/models/ssl.py), checked the same way.
SSL_FIELDS = {
    "kind": (lambda v: v == "ssl", "'ssl'"),
    "labels": (lambda v: type(v) is int and v > 0, "a positive integer"),
    "seed": (lambda v: type(v) is int, "an integer"),
    "d_hidden": (_sizes, "a list of positive layer sizes"),
    "g_hidden": (_sizes, "a list of positive layer sizes"),
    "input_noise": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "hidden_noise": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "latent_dim": (lambda v: type(v) is int and v > 0, "a positive integer"),
    "lr": (lambda v: _number(v) and v > 0, "a positive number"),
    "beta1": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "adam_eps": (lambda v: _number(v) and v > 0, "a positive number"),
    "batch_size": (lambda v: type(v) is int and v > 0, "a positive integer"),
    "unlabelled_weight": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "ema": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "epochs": (lambda v: type(v) is int and v > 0, "a positive integer"),
    "steps_per_epoch": (lambda v: type(v) is int and v > 0, "a positive integer"),
    # added later: an older checkpoint without them reads as their default (the third entry), today's recipe
    "validation": (lambda v: type(v) is int and v >= 0, "an integer >= 0", 0),
    "exclude_labelled": (lambda v: type(v) is bool, "true or false", False),
    "adam_eps_inside": (lambda v: type(v) is bool, "true or false", False),
    "g_lr": (lambda v: v is None or (_number(v) and v > 0), "null or a positive number", None),
    "decay_fraction": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]", 0.0),
    "warmup_epochs": (lambda v: type(v) is int and v >= 0, "an integer >= 0", 0),
    "entropy_weight": (lambda v: _number(v) and v >= 0, "a number >= 0", 0.0),
    "balance_weight": (lambda v: _number(v) and v >= 0, "a number >= 0", 0.0),
    "consistency_weight": (lambda v: _number(v) and v >= 0, "a number >= 0", 0.0),
    "pull_away_weight": (lambda v: _number(v) and v >= 0, "a number >= 0", 0.0),
    "pseudo_threshold": (lambda v: v is None or (_number(v) and 0 < v <= 1), "null or a number in (0, 1]", None),
    **SIZED,
}
OPTIONAL = {"image", "classes", "data"}  # absent from checkpoints written before they existed: MNIST's then


def check_fields(config, fields, where):
    """Raise CheckpointError naming the first config field that is missing or out of range."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: field 'config' is a {type(config).__name__}, not a dictionary of settings; "
                              "the file is not a tinygan checkpoint or was edited by hand")
    for key, (ok, what, *default) in fields.items():
        if key not in config and default:  # a field added later: an older file means its default
            config[key] = default[0]
        if key not in config and key in OPTIONAL:  # set from the data; older files are MNIST's
            continue
        if key not in config:
            raise CheckpointError(f"{where}: field 'config.{key}' is missing; the file is not a checkpoint of this "
                                  "version of tinygan or was edited by hand")
        if not ok(config[key]):
            raise CheckpointError(f"{where}: field 'config.{key}' is {config[key]!r}, it must be {what}")
    return config


def _looks_like(head):
    """A guess at what a file that is not a zip is, from its first bytes."""
    for magic, what in ((b"\x89PNG", "a PNG image"), (b"\x93NUMPY", "a .npy array"), (b"\x1f\x8b", "a gzip file"),
                        (b"{", "JSON text"), (b"[", "JSON text"), (b"<", "HTML or XML")):
        if head.lstrip().startswith(magic):
            return what
    return "not a zip archive"


def read_checkpoint(path, fields=None):
    """The arrays of a checkpoint file and its config, checked (config fields too if given, e.g. GAN_FIELDS)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        inside = os.path.join(path, "checkpoint.npz")
        hint = f"did you mean {inside}?" if os.path.isfile(inside) else "pass the checkpoint file (OUT/checkpoint.npz)"
        raise CheckpointError(f"checkpoint {path!r} is a folder: {hint}")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist: check the path (runs write OUT/checkpoint.npz)")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if not head.startswith(b"PK"):
            raise CheckpointError(f"checkpoint {path!r} is {_looks_like(head)}, not a tinygan checkpoint "
                                  "(a .npz written by training as OUT/checkpoint.npz)")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({type(e).__name__}: {e}); "
                              "it is not a tinygan checkpoint or it is damaged") from None
    for key in ("config", "iteration", "rng_state"):
        if key not in arrays:
            raise CheckpointError(f"checkpoint {path!r}: field {key!r} is missing; it is not a tinygan checkpoint")
    for key in ("config", "rng_state"):
        if arrays[key].shape != () or arrays[key].dtype.kind != "U":
            raise CheckpointError(f"checkpoint {path!r}: field {key!r} must be one JSON string")
    try:
        config = json.loads(str(arrays["config"]))
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path!r}: field 'config' is not valid JSON ({e})") from None
    it = arrays["iteration"]
    if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
        raise CheckpointError(f"checkpoint {path!r}: field 'iteration' must be one integer >= 0, "
                              f"got an array of shape {it.shape} and type {it.dtype}")
    for k, v in arrays.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise CheckpointError(f"checkpoint {path!r}: field {k!r} holds NaN or inf; the saved state is broken, "
                                  "use an earlier checkpoint")
    if fields is GAN_FIELDS and isinstance(config, dict) and config.get("kind") == "ssl":
        raise CheckpointError(f"checkpoint {path!r} is a semi-supervised GAN's: use it with examples/train_ssl.py")
    check_fields(config, fields or {}, f"checkpoint {path!r}")
    return arrays, config


def load_checkpoint(path, gan, fields=None):
    """Restore a model (GAN, SSLGAN) built from the checkpoint's config to the exact saved state."""
    arrays, _ = read_checkpoint(path, fields)
    where = f"checkpoint {path!r}"
    for prefix, part in (("G", gan.G), ("D", gan.D), ("opt_g", gan.opt_g), ("opt_d", gan.opt_d)):
        try:
            part.load_state_dict({k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")})
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise CheckpointError(f"{where}: field {prefix!r} does not match the model of its config ({e})") from None
    if gan.ema is not None:  # averaged weights: G's (GAN), D's (SSLGAN)
        key = gan.ema_key
        if key not in arrays or arrays[key].shape != gan.ema.shape:
            raise CheckpointError(f"{where}: field {key!r} is missing or has the wrong shape (expected {gan.ema.shape})")
        gan.ema[...] = gan.be.asarray(arrays[key])
    gan.iteration = int(arrays["iteration"])
    try:
        state = json.loads(str(arrays["rng_state"]))
    except ValueError:
        state = None
    if not isinstance(state, dict) or not ({"bit_generator", "cupy_seed", "philox_key"} & set(state)):
        raise CheckpointError(f"{where}: field 'rng_state' is not a random generator state saved by tinygan")
    try:  # cupy cannot restore its generator state: it re-seeds from (seed, iteration) instead
        gan.be.set_rng_state(str(arrays["rng_state"]), reseed=gan.config["seed"] * 1_000_003 + gan.iteration)
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{where}: field 'rng_state' is not a random generator state ({e})") from None


def load_gan(path, backend="numpy", seed=None):
    """A GAN rebuilt from a checkpoint file, in its saved state; seed (if given) reseeds its random stream."""
    from ..engine.backend import Backend
    from .gan import GAN
    _, config = read_checkpoint(path, GAN_FIELDS)
    try:
        gan = GAN(config, Backend(backend, "float32", seed=config["seed"]))
    except ValueError as e:  # a combination no GAN can be built from, e.g. an AC-GAN head on a sigmoid D
        raise CheckpointError(f"checkpoint {path!r}: field 'config' describes no valid GAN ({e})") from None
    load_checkpoint(path, gan)
    if seed is not None:
        gan.be.rng = gan.be.generator(seed)
    return gan


WEIGHTS = Path(__file__).resolve().parent / "weights" / "classifier.npz"
RETRAIN = "regenerate it with: python examples/train_classifier.py --data DIR"


def load_classifier_weights(path=None):
    """{name: float array} from the classifier .npz (default: the shipped tinygan/models/weights/classifier.npz)."""
    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: classifier weights not found; {RETRAIN}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path}: not a readable classifier .npz ({type(e).__name__}: {e}); "
                         f"the file is corrupt or truncated: {RETRAIN}") from None
