"""The fields of a GAN's and a semi-supervised GAN's config, each with its range: what a file or a caller may ask for."""
import math

from ..run.limits import (MAX_BATCH, MAX_LATENT, MAX_LAYERS, MAX_LR, MAX_PARAMS, MAX_SAMPLES, MAX_SEED, MAX_STEPS,
                          MAX_UNITS, dense_params, layer_problem)

N_CLASSES, IMAGE = 10, 784  # MNIST's: a config's "image" and "classes" (set from the data) override them


def _sizes(v):
    return layer_problem(v) is None


def _number(v):
    return type(v) in (int, float) and math.isfinite(v)


def _count(hi):
    return lambda v: type(v) is int and 0 < v <= hi


SIZES = f"a list of positive layer sizes (at most {MAX_LAYERS} layers of at most {MAX_UNITS} units)"

# Each config field of a GAN: (test, what it must be). A hand-edited or foreign file fails here, by name, before
# any model is built from it: every size has an upper bound (tinygan/run/limits.py).
GAN_FIELDS = {
    "preset": (lambda v: isinstance(v, str) and len(v) < 100, "a preset name"),
    "conditional": (lambda v: type(v) is bool, "true or false"),
    "seed": (lambda v: type(v) is int and 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED}"),
    "g_hidden": (_sizes, SIZES),
    "d_hidden": (_sizes, SIZES),
    "act": (lambda v: v in ("relu", "leaky"), "'relu' or 'leaky'"),
    "g_out": (lambda v: v in ("sigmoid", "tanh"), "'sigmoid' or 'tanh'"),
    "d_logits": (lambda v: type(v) is bool, "true or false"),
    "data_range": (lambda v: v in ("unit", "signed"), "'unit' or 'signed'"),
    "lr": (lambda v: _number(v) and 0 < v <= MAX_LR, f"a number in (0, {MAX_LR:g}]"),
    "beta1": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "batch_size": (_count(MAX_BATCH), f"a positive integer (at most {MAX_BATCH:,})"),
    "iterations": (_count(MAX_STEPS), f"a positive integer (at most {MAX_STEPS:,})"),
    "latent_dim": (_count(MAX_LATENT), f"a positive integer (at most {MAX_LATENT:,})"),
    "d_dropout": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "smooth": (lambda v: _number(v) and 0.5 < v <= 1, "a number in (0.5, 1]"),
    "ema": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "aux": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]"),
}
SIZED = {  # set from the data; optional (OPTIONAL): checkpoints written before they existed are MNIST's
    "image": (lambda v: _sizes(v) and len(v) == 2, f"[height, width] (each at most {MAX_UNITS})"),
    "classes": (lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(c, str) for c in v)
                and len(set(v)) == len(v), "a list of at least 2 different class names"),
    "data": (lambda v: v is None or isinstance(v, dict), "a record of the training data"),
}
GAN_FIELDS.update(SIZED)
OPTIONAL = {"image", "classes", "data"}  # absent from checkpoints written before they existed: MNIST's then

# The semi-supervised GAN's config (tinygan/models/ssl.py), checked the same way.
SSL_FIELDS = {
    "kind": (lambda v: v == "ssl", "'ssl'"),
    "labels": (_count(MAX_SAMPLES), f"a positive integer (at most {MAX_SAMPLES:,})"),
    "seed": (lambda v: type(v) is int and 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED}"),
    "d_hidden": (_sizes, SIZES),
    "g_hidden": (_sizes, SIZES),
    "input_noise": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]"),
    "hidden_noise": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]"),
    "latent_dim": (_count(MAX_LATENT), f"a positive integer (at most {MAX_LATENT:,})"),
    "lr": (lambda v: _number(v) and 0 < v <= MAX_LR, f"a number in (0, {MAX_LR:g}]"),
    "beta1": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "adam_eps": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "batch_size": (_count(MAX_BATCH), f"a positive integer (at most {MAX_BATCH:,})"),
    "unlabelled_weight": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]"),
    "ema": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "epochs": (_count(MAX_STEPS), f"a positive integer (at most {MAX_STEPS:,})"),
    "steps_per_epoch": (_count(MAX_STEPS), f"a positive integer (at most {MAX_STEPS:,})"),
    # added later: an older checkpoint without them reads as their default (the third entry), today's recipe
    "validation": (lambda v: type(v) is int and 0 <= v <= MAX_SAMPLES, f"an integer from 0 to {MAX_SAMPLES:,}", 0),
    "exclude_labelled": (lambda v: type(v) is bool, "true or false", False),
    "adam_eps_inside": (lambda v: type(v) is bool, "true or false", False),
    "g_lr": (lambda v: v is None or (_number(v) and 0 < v <= MAX_LR), f"null or a number in (0, {MAX_LR:g}]", None),
    "decay_fraction": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]", 0.0),
    "warmup_epochs": (lambda v: type(v) is int and 0 <= v <= MAX_STEPS, f"an integer from 0 to {MAX_STEPS:,}", 0),
    "entropy_weight": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]", 0.0),
    "balance_weight": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]", 0.0),
    "consistency_weight": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]", 0.0),
    "pull_away_weight": (lambda v: _number(v) and 0 <= v <= 100, "a number in [0, 100]", 0.0),
    "pseudo_threshold": (lambda v: v is None or (_number(v) and 0 < v <= 1), "null or a number in (0, 1]", None),
    **SIZED,
}


def sizes_of(config):
    """(pixels, classes) of a config: its data's image size and class count (MNIST's 784 and 10 when absent)."""
    if "image" not in config:
        return IMAGE, len(config.get("classes", range(N_CLASSES)))
    h, w = config["image"]
    return h * w, len(config.get("classes", range(N_CLASSES)))


def model_params(config):
    """{'G': parameters, 'D': parameters} (an upper bound) of the model a checked config describes."""
    pixels, classes = sizes_of(config)
    return {"G": dense_params([config["latent_dim"] + classes, *config["g_hidden"], pixels]),
            "D": dense_params([pixels + classes, *config["d_hidden"], classes + 1])}


def config_problem(config, fields):
    """(key, 'is X, it must be Y') for the first field of a config out of range (key None: the whole model), or None.

    A field missing from the config is a problem unless it is OPTIONAL; check_fields fills the defaults first."""
    for key, (ok, what, *_) in fields.items():
        if key not in config and key in OPTIONAL:  # set from the data; older files are MNIST's
            continue
        if key not in config:
            return key, "is missing"
        if not ok(config[key]):
            shown = repr(config[key])
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            return key, f"is {shown}, it must be {what}"
    if {"g_hidden", "d_hidden", "latent_dim"} <= set(fields):
        for part, n in model_params(config).items():
            if n > MAX_PARAMS:
                return None, f"describes a {part} of {n:,} parameters, more than the {MAX_PARAMS:,} tinygan builds"
    return None
