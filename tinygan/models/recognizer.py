"""A recognizer as plain arrays: export a semi-supervised GAN's averaged D, load it back (checked), read images."""
import json
import math
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..engine.backend import get_backend
from .classifier import softmax
from ..run.fileio import atomic_write, npz_headers, npz_read
from ..engine.layers import Dense, ReLU, Sequential
from ..engine.norm import WeightNormDense

MAX_UNITS = 65_536             # the widest layer a recognizer file may declare
MAX_PARAMS = 50_000_000        # all weights together: 200 MB as float32
MAX_LAYERS = 64
MAX_INFO = 1 << 20             # bytes of the JSON info member
HOW = "export one with `tinygan export --checkpoint RUN/checkpoint.npz` (tinygan ssl writes RUN/recognizer.npz)"


class RecognizerError(ValueError):
    """A recognizer file, or the images given to it, cannot be used; the message names the file and what to do."""


class Reading(NamedTuple):
    """What read_digits returns: the best class and the runner-up of each image, with their probabilities."""
    labels: np.ndarray             # (N,) class index
    confidences: np.ndarray        # (N,) its probability
    names: list                    # (N,) its class name
    second: np.ndarray             # (N,) the runner-up class index
    second_confidences: np.ndarray  # (N,) its probability


def digit_names(n):
    """Default class names: '0', '1', ... (MNIST's digits when n is 10)."""
    return [str(i) for i in range(n)]


def export_recognizer(path, gan, info=None):
    """Write the averaged D as Dense layers (W = g V / ||V|| folded in) to an .npz without pickle."""
    # Evaluation needs no noise layers, so the file is a plain MLP: pixels -> ... -> classes, ReLU between.
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
    c = gan.config
    meta = {"sizes": sizes, "image": list(c.get("image", [28, 28])),
            "classes": list(c.get("classes", digit_names(sizes[-1]))), "iteration": gan.iteration}
    if c.get("data"):
        meta["data"] = c["data"]
    arrays["info"] = np.array(json.dumps({**meta, **(info or {})}))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _member(zf, name, path, shape, kinds, most):
    """The array of member name, after its header's shape and dtype and its sizes (zip bomb) are checked."""
    try:
        zi = zf.getinfo(name)
    except KeyError:
        raise RecognizerError(f"{path}: member {name!r} is missing; {HOW}") from None
    if zi.file_size > most:
        raise RecognizerError(f"{path}: member {name!r} unpacks to {zi.file_size} bytes, more than the {most} its "
                              f"sizes allow (a damaged or hostile file); {HOW}")
    try:  # the npy header alone, checked against the member's size (run/fileio.py, as checkpoints are read)
        header = npz_headers(zf, lambda member: member == name[:-4])[name[:-4]]
    except (ValueError, OSError, EOFError) as e:
        raise RecognizerError(f"{path}: {e}; the file is damaged: {HOW}") from None
    dtype, got = header.dtype, header.shape
    if dtype.kind not in kinds or (dtype.kind == "f" and dtype.itemsize not in (4, 8)):
        want = "float32 or float64" if kinds == "f" else "a text string"
        raise RecognizerError(f"{path}: member {name!r} holds {dtype}, it must be {want}; {HOW}")
    if tuple(got) != tuple(shape):
        raise RecognizerError(f"{path}: member {name!r} has shape {tuple(got)}, its sizes say {tuple(shape)}; {HOW}")
    return npz_read(zf, header)


def _check_info(info, path):
    """(sizes, image (H, W), class names) from the info, each checked and bounded."""
    def bad(what):
        return RecognizerError(f"{path}: info {what}; {HOW}")
    if not isinstance(info, dict):
        raise bad("is not a dictionary")
    sizes = info.get("sizes")
    if not (isinstance(sizes, list) and 2 <= len(sizes) <= MAX_LAYERS and all(type(n) is int for n in sizes)):
        raise bad(f"'sizes' is {sizes!r}, not a list of 2 to {MAX_LAYERS} layer sizes")
    if not all(1 <= n <= MAX_UNITS for n in sizes):
        raise bad(f"'sizes' {sizes} has a layer outside 1..{MAX_UNITS} units")
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if params > MAX_PARAMS:
        raise bad(f"'sizes' {sizes} means {params} parameters, more than the {MAX_PARAMS} a recognizer may have")
    if sizes[-1] < 2:
        raise bad(f"'sizes' {sizes} ends in {sizes[-1]} class: a recognizer tells at least 2 classes apart")
    side = math.isqrt(sizes[0])
    image = info.get("image", [side, side] if side * side == sizes[0] else [1, sizes[0]])
    if not (isinstance(image, list) and len(image) == 2 and all(type(n) is int and n > 0 for n in image)
            and image[0] * image[1] == sizes[0]):
        raise bad(f"'image' {image!r} is not [height, width] of the {sizes[0]} input pixels")
    classes = info.get("classes", digit_names(sizes[-1]))
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise bad(f"'classes' is {classes!r}, not a list of class names")
    if len(classes) != sizes[-1]:
        raise bad(f"names {len(classes)} classes but the last layer has {sizes[-1]} outputs")
    return sizes, tuple(image), classes


def load_recognizer(path, be=None):
    """(model, info): the exported MLP on backend be, in evaluation mode, and the JSON info saved with it.

    Checked like a checkpoint: only known members, every array's shape and dtype against `sizes` before it is
    read, sizes bounded, weights finite floats, as many class names as outputs. model.image and model.classes
    tell read_digits what it reads."""
    path = Path(path)
    if not path.is_file():
        raise RecognizerError(f"{path}: no such recognizer file; {HOW}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            info = json.loads(str(_member(zf, "info.npy", path, (), "U", MAX_INFO)[()]))
            sizes, image, classes = _check_info(info, path)
            known = {"info.npy"} | {f"{2 * k}.{p}.npy" for k in range(len(sizes) - 1) for p in "Wb"}
            if names - known:
                raise RecognizerError(f"{path}: unexpected members {sorted(names - known)}; {HOW}")
            state = {}
            for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                for p, shape in (("W", (a, b)), ("b", (b,))):
                    arr = _member(zf, f"{2 * k}.{p}.npy", path, shape, "f", 1024 + 8 * math.prod(shape))
                    if not np.isfinite(arr).all():
                        raise RecognizerError(f"{path}: member '{2 * k}.{p}' holds NaN or inf; the weights are "
                                              f"broken: {HOW}")
                    state[f"{2 * k}.{p}"] = arr
    except RecognizerError:
        raise
    except KeyError as e:
        raise RecognizerError(f"{path}: not a tinygan recognizer (member {e} is missing); {HOW}") from None
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, RuntimeError) as e:
        raise RecognizerError(f"{path}: not a tinygan recognizer ({type(e).__name__}: {e}); {HOW}") from None
    be = be or get_backend()
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(a, b, be=be), ReLU()]
    model = Sequential(*layers[:-1], be=be)  # no ReLU after the logits
    model.load_state_dict(state)  # shapes already checked
    model.image, model.classes = image, classes
    data = info.get("data") if isinstance(info.get("data"), dict) else {}
    model.bright_ink = data.get("normalize", True) is not False or data.get("kind") == "mnist"  # what it was trained on
    return model.eval(), {**info, "image": list(image), "classes": classes}


def check_images(model, images, normalize=False):
    """Images as float32 (N, pixels) in [0, 1] for this recognizer; one clear RecognizerError for each misuse."""
    from ..data.images import dark_on_light, normalize as mnist_normalize, to_grayscale_batch
    pixels = model.layers[0].n_in
    image = tuple(getattr(model, "image", ()) or ((math.isqrt(pixels),) * 2 if math.isqrt(pixels) ** 2 == pixels
                                                  else (1, pixels)))
    x = images.get() if hasattr(images, "get") and not isinstance(images, np.ndarray) else np.asarray(images)
    if x.dtype == bool or x.dtype.kind not in "uif":
        raise RecognizerError(f"images of type {x.dtype}: give uint8 pixels 0..255 or floats in [0, 1]")
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise RecognizerError(f"images of shape {x.shape}: give (N, {image[0]}, {image[1]}) or (N, {pixels}), N >= 1")
    if x.dtype.kind in "iu" and x.dtype != np.uint8:
        raise RecognizerError(f"images of type {x.dtype}: integer pixels must be uint8 (0..255); "
                              "convert them, or give floats in [0, 1]")
    x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise RecognizerError(f"image {int(np.argwhere(bad)[0][0])} holds NaN or inf: give finite pixels")
    if x.min() < 0 or x.max() > 1:
        hint = "; for [-1, 1] pass (x + 1) / 2" if x.min() >= -1 and x.max() <= 1 else "; for 0..255 pass x / 255"
        raise RecognizerError(f"images hold values in [{x.min():.3g}, {x.max():.3g}]: floats must lie in [0, 1]{hint}")
    if x.ndim == 4:
        if x.shape[-1] == 1:
            x = x[..., 0]
        elif x.shape[-1] in (3, 4) and normalize:
            x = to_grayscale_batch(x)
        else:
            raise RecognizerError(f"images of shape {x.shape} have {x.shape[-1]} channels: the recognizer reads "
                                  "grayscale (N, H, W); convert them, or pass normalize=True")
    if normalize:
        if image != (28, 28):
            raise RecognizerError(f"normalize=True makes 28 x 28 images, but this recognizer reads {image}")
        x = x if x.ndim == 3 else x.reshape(len(x), *image)
        return np.stack([mnist_normalize(g) for g in x]).reshape(len(x), -1).astype(np.float32) / 255
    if x.ndim == 2 and x.shape[1] != pixels or x.ndim == 3 and x.shape[1:] != image:
        raise RecognizerError(f"images of shape {x.shape}: this recognizer reads (N, {image[0]}, {image[1]}) or "
                              f"(N, {pixels}); resize them, or pass normalize=True")
    x = x.reshape(len(x), -1)
    light = np.mean([dark_on_light(g) for g in x[:200].reshape(-1, *image)])
    if light > 0.5 and getattr(model, "bright_ink", True):
        warnings.warn(f"{100 * light:.0f}% of the images look like dark ink on light paper, but the recognizer "
                      "was trained on bright ink on black: pass normalize=True (or 1 - images)", stacklevel=3)
    return x


def read_digits(model, images, normalize=False, batch=2000):
    """Reading(labels, confidences, names, second, second_confidences) for images (N, H, W) or (N, pixels), uint8
    or float in [0, 1]; normalize=True applies MNIST's preprocessing (polarity, crop, 20 px, centre) first."""
    x = check_images(model, images, normalize)
    be, probs = model.be, []
    model.eval()
    for i in range(0, len(x), batch):
        probs.append(be.to_host(softmax(model.forward(be.asarray(x[i:i + batch])))))
    p = np.concatenate(probs).astype(np.float64)                    # (N, classes)
    order = np.argsort(-p, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(p))
    classes = getattr(model, "classes", None) or digit_names(p.shape[1])
    return Reading(order[:, 0], p[rows, order[:, 0]], [classes[c] for c in order[:, 0]], order[:, 1],
                   p[rows, order[:, 1]])
