"""The fields of a GAN's and a semi-supervised GAN's config, each with its range: what a file or a caller may ask for."""
import math

from ..run.limits import (MAX_BATCH, MAX_LABELS, MAX_LATENT, MAX_LAYERS, MAX_LR, MAX_PARAMS, MAX_SEED, MAX_STEPS,
                          MAX_UNITS, dense_params, layer_problem)

N_CLASSES, IMAGE = 10, 784


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

# The semi-supervised GAN's config (tinygan/models/ssl.py), checked the same way.
SSL_FIELDS = {
    "kind": (lambda v: v == "ssl", "'ssl'"),
    "labels": (lambda v: type(v) is int and 0 < v <= MAX_LABELS and v % 10 == 0,
               f"a positive multiple of 10, at most {MAX_LABELS}"),
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
}


def model_params(config):
    """{'G': parameters, 'D': parameters} (an upper bound) of the model a checked config describes."""
    latent = config["latent_dim"] + N_CLASSES
    return {"G": dense_params([latent, *config["g_hidden"], IMAGE]),
            "D": dense_params([IMAGE + N_CLASSES, *config["d_hidden"], N_CLASSES + 1])}


def config_problem(config, fields):
    """(key, 'is X, it must be Y') for the first field of a config dict out of range (key None: the whole model), or None."""
    for key, (ok, what) in fields.items():
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
