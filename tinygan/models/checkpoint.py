"""Checkpoints: one .npz (no pickle) holding G, D, both Adams, the iteration, RNG state and config; checked on load."""
import json
import re
import os
import zipfile
from pathlib import Path

import numpy as np

from ..run.fileio import atomic_write, npz_headers, npz_read
from ..run.limits import MAX_PARAMS, MAX_TEXT
from .fields import (GAN_FIELDS, OPTIONAL, SIZED, SSL_FIELDS, config_problem,  # noqa: F401  (checked here, re-exported)
                     model_params)

TEXT = ("config", "rng_state", "run", "data")  # members holding one JSON string
SCALARS = ("iteration",)
PARTS = ("G", "D", "opt_g", "opt_d")
NAME = re.compile(r"[A-Za-z0-9_.]{1,64}")


class CheckpointError(Exception):
    """A checkpoint cannot be read or written; the message names the file, the field and what to do."""


def save_checkpoint(path, gan, run=None):
    """Write gan's full training state to path atomically (run: the run's own settings, e.g. its intervals)."""
    arrays = {"iteration": np.array(gan.iteration), "config": np.array(json.dumps(gan.config)),
              "rng_state": np.array(gan.be.rng_state())}
    if run:
        arrays["run"] = np.array(json.dumps(run))
    for prefix, part in (("G", gan.G), ("D", gan.D), ("opt_g", gan.opt_g), ("opt_d", gan.opt_d)):
        for k, v in part.state_dict().items():
            arrays[f"{prefix}/{k}"] = np.asarray(v)
    if gan.ema is not None:
        arrays[gan.ema_key] = gan.be.to_host(gan.ema)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def check_fields(config, fields, where):
    """Raise CheckpointError naming the first config field that is missing or out of range."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: field 'config' is a {type(config).__name__}, not a dictionary of settings; "
                              "the file is not a tinygan checkpoint or was edited by hand")
    for key, (ok, what, *default) in fields.items():
        if key not in config and default:  # a field added later: an older file means its default
            config[key] = default[0]
    problem = config_problem(config, fields)  # a missing OPTIONAL field (image, classes, data) means MNIST's
    if problem:
        key, text = problem
        if key is None:
            raise CheckpointError(f"{where}: field 'config' {text}; the file was edited by hand or is not tinygan's")
        if key not in config:
            raise CheckpointError(f"{where}: field 'config.{key}' is missing; the file is not a checkpoint of this "
                                  "version of tinygan or was edited by hand")
        raise CheckpointError(f"{where}: field 'config.{key}' {text}")
    return config


def _looks_like(head):
    """A guess at what a file that is not a zip is, from its first bytes."""
    for magic, what in ((b"\x89PNG", "a PNG image"), (b"\x93NUMPY", "a .npy array"), (b"\x1f\x8b", "a gzip file"),
                        (b"{", "JSON text"), (b"[", "JSON text"), (b"<", "HTML or XML")):
        if head.lstrip().startswith(magic):
            return what
    return "not a zip archive"


def _known(name):
    """Whether a member name is one a tinygan checkpoint holds: only these are ever read."""
    if name in TEXT or name in SCALARS or name in ("G_ema", "D_ema"):
        return True
    part, _, rest = name.partition("/")
    return part in PARTS and NAME.fullmatch(rest) is not None


def _fields_for(config, fields):
    """The fields to check: those given, else the ones of the config's kind (a model is built from it either way)."""
    if fields is not None:
        return fields
    return SSL_FIELDS if isinstance(config, dict) and config.get("kind") == "ssl" else GAN_FIELDS


def read_checkpoint(path, fields=None, prog=None):
    """The arrays of a checkpoint file and its config, checked (config fields too if given, e.g. GAN_FIELDS).

    Every size is checked before anything is allocated: the config against bounds, each member's npy header against
    the model the config describes; members a checkpoint never holds are not read at all. prog: the command that
    reads it, named in a mix-up ('tinygan ssl' or 'python examples/train_ssl.py')."""
    path = os.fspath(path)
    where = f"checkpoint {path!r}"
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
        with zipfile.ZipFile(path) as zf:
            headers = npz_headers(zf, _known)
            arrays, config = _read_small(zf, headers, where)
            fields = _fields_for(config, fields)
            if fields is GAN_FIELDS and isinstance(config, dict) and config.get("kind") == "ssl":
                raise CheckpointError(f"{where} is a semi-supervised GAN's: use it with {_command(prog, 'ssl')}")
            check_fields(config, fields, where)
            limit = max(model_params(config).values()) if fields in (GAN_FIELDS, SSL_FIELDS) else MAX_PARAMS
            for name, h in headers.items():
                if name not in arrays:
                    _check_member(h, limit, where)
            arrays.update({name: npz_read(zf, h) for name, h in headers.items() if name not in arrays})
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({type(e).__name__}: {e}); "
                              "it is not a tinygan checkpoint or it is damaged") from None
    for k, v in arrays.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise CheckpointError(f"checkpoint {path!r}: field {k!r} holds NaN or inf; the saved state is broken, "
                                  "use an earlier checkpoint")
    return arrays, config


def _command(prog, name):
    """How the user runs command `name`, judged from how they ran this one (default: the example script)."""
    from ..run.cli import command
    return command(prog or "", name)


def _read_small(zf, headers, where):
    """({config, iteration, rng_state, ...}: the small members, read after their headers are checked; config)."""
    arrays = {}
    for key in ("config", "iteration", "rng_state"):
        if key not in headers:
            raise CheckpointError(f"{where}: field {key!r} is missing; it is not a tinygan checkpoint")
    for key in TEXT:
        h = headers.get(key)
        if h is None:
            continue
        if h.shape != () or h.dtype.kind != "U" or h.dtype.itemsize > 4 * MAX_TEXT:
            raise CheckpointError(f"{where}: field {key!r} must be one JSON string (of at most {MAX_TEXT:,} characters)")
        arrays[key] = npz_read(zf, h)
    it = headers["iteration"]
    if it.shape != () or it.dtype.kind not in "iu":
        raise CheckpointError(f"{where}: field 'iteration' must be one integer >= 0, "
                              f"got an array of shape {it.shape} and type {it.dtype}")
    arrays["iteration"] = npz_read(zf, it)
    if int(arrays["iteration"]) < 0:
        raise CheckpointError(f"{where}: field 'iteration' must be one integer >= 0, got {int(arrays['iteration'])}")
    try:
        config = json.loads(str(arrays["config"]))
    except ValueError as e:
        raise CheckpointError(f"{where}: field 'config' is not valid JSON ({e})") from None
    return arrays, config


def _check_member(h, limit, where):
    """CheckpointError unless a weight or optimizer member's header fits the model (limit: its largest part)."""
    scalar = h.shape == ()
    if h.dtype.kind != "f" and not (scalar and h.dtype.kind in "iu"):
        raise CheckpointError(f"{where}: field {h.name!r} holds {h.dtype} numbers; weights and optimizer state are "
                              "floats (float32): the file was not written by tinygan")
    if h.count > limit:
        raise CheckpointError(f"{where}: field {h.name!r} claims {h.count:,} numbers (shape {h.shape}), more than "
                              f"the {limit:,} parameters of the model its config describes; the file is damaged")


def load_checkpoint(path, gan, fields=None, prog=None):
    """Restore a model (GAN, SSLGAN) built from the checkpoint's config to the exact saved state."""
    arrays, _ = read_checkpoint(path, fields, prog)
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


def load_gan(path, backend="numpy", seed=None, prog=None):
    """A GAN rebuilt from a checkpoint file, in its saved state; seed (if given) reseeds its random stream."""
    from ..engine.backend import Backend
    from .gan import GAN
    _, config = read_checkpoint(path, GAN_FIELDS, prog)
    try:
        gan = GAN(config, Backend(backend, "float32", seed=config["seed"]))
    except ValueError as e:  # a combination no GAN can be built from, e.g. an AC-GAN head on a sigmoid D
        raise CheckpointError(f"checkpoint {path!r}: field 'config' describes no valid GAN ({e})") from None
    load_checkpoint(path, gan, GAN_FIELDS, prog)
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
