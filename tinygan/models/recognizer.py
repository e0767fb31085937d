"""A digit recognizer as plain arrays: export a semi-supervised GAN's averaged D, load it back, read digits."""
import json
import zipfile
from pathlib import Path

import numpy as np

from ..engine.backend import get_backend
from .classifier import predict
from ..run.fileio import atomic_write
from ..engine.layers import Dense, ReLU, Sequential
from ..engine.norm import WeightNormDense


class RecognizerError(Exception):
    """A recognizer file cannot be read; the message names the file and what to do."""


def export_recognizer(path, gan, info=None):
    """Write the averaged D as Dense layers (W = g V / ||V|| folded in) to an .npz without pickle."""
    # Evaluation needs no noise layers, so the file is a plain MLP: 784 -> ... -> 10, ReLU between.
    be, arrays, sizes, i = gan.be, {}, [], 0
    gan.use_average(True)
    try:
        for layer in gan.D.layers:
            if isinstance(layer, WeightNormDense):
                arrays[f"{i}.W"] = be.to_host(layer.weight(layer.V))  # (in, out)
                arrays[f"{i}.b"] = be.to_host(layer.b)
                sizes += [layer.n_in] if not sizes else []
                sizes.append(layer.n_out)
                i += 2  # Dense, then ReLU, in the rebuilt Sequential
    finally:
        gan.use_average(False)
    arrays["info"] = np.array(json.dumps({"sizes": sizes, **(info or {})}))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_recognizer(path, be=None):
    """(model, info): the exported MLP on backend be, in evaluation mode, and the JSON info saved with it."""
    path = Path(path)
    if not path.is_file():
        raise RecognizerError(f"{path}: no such recognizer file; train_ssl.py writes OUT/recognizer.npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        info = json.loads(str(arrays.pop("info")))
        sizes = [int(n) for n in info["sizes"]]
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
        raise RecognizerError(f"{path}: not a tinygan recognizer ({type(e).__name__}: {e}); "
                              "export one with train_ssl.py") from None
    be = be or get_backend()
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(a, b, be=be), ReLU()]
    model = Sequential(*layers[:-1], be=be)  # no ReLU after the logits
    try:
        model.load_state_dict(arrays)
    except ValueError as e:
        raise RecognizerError(f"{path}: {e}") from None
    return model.eval(), info


def read_digits(model, images):
    """The digit (N,) the recognizer reads in each image, float (N, 28, 28) or (N, 784) in [0, 1]."""
    return predict(model, images)[0].argmax(axis=1)
