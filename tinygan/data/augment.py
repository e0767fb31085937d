"""Classic digit augmentation on the host: shifts, rotations and elastic distortion, by bilinear resampling."""
import numpy as np


def _as_batch(images):
    """(N, H, W) float64 copy of images, and a function that casts a result back to the input's dtype."""
    x = np.asarray(images)
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {x.shape}")
    dtype = x.dtype
    if np.issubdtype(dtype, np.integer):  # uint8 pixels: round back, the range stays [0, 255]
        return x.astype(np.float64), lambda y: np.clip(np.rint(y), 0, 255).astype(dtype)
    return x.astype(np.float64), lambda y: y.astype(dtype)


def _per_image(value, n):
    """A scalar or (N,) parameter as an (N, 1, 1) float array, to broadcast over (N, H, W)."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).reshape(n, 1, 1)


def bilinear(images, rows, cols):
    """Sample each image at float source coordinates, reading zero outside it."""
    # images: (N, H, W); rows, cols: (N, H, W) source coordinates for each output pixel
    n, h, w = images.shape
    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    fr, fc = rows - r0, cols - c0
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))  # a ring of zeros: neighbours just outside read 0
    # Coordinates further out than the ring land on it too (clip), so they also read 0.
    r0, c0 = np.clip(r0 + 1, 0, h + 1), np.clip(c0 + 1, 0, w + 1)
    r1, c1 = np.clip(r0 + 1, 0, h + 1), np.clip(c0 + 1, 0, w + 1)
    far = (rows < -1) | (rows > h) | (cols < -1) | (cols > w)  # both neighbours outside: exactly 0
    i = np.arange(n)[:, None, None]
    out = ((1 - fr) * (1 - fc) * padded[i, r0, c0] + (1 - fr) * fc * padded[i, r0, c1]
           + fr * (1 - fc) * padded[i, r1, c0] + fr * fc * padded[i, r1, c1])
    return np.where(far, 0.0, out)


def _grid(n, h, w):
    """Output pixel coordinates relative to the image centre: (v, u) each (1, H, W), v down, u right."""
    v, u = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    return v[None], u[None]


def _source(n, h, w, dy=0.0, dx=0.0, degrees=0.0, field=None):
    """Source coordinates of a rotation by `degrees` (counter-clockwise), then a shift, then a displacement."""
    # out(p) = in(R^-1 (p - shift) + displacement); with v pointing down, counter-clockwise R^-1 is
    # u_s = cos u - sin v, v_s = sin u + cos v (90 degrees gives out[r, c] = in[c, W-1-r], as np.rot90)
    v, u = _grid(n, h, w)
    v, u = v - _per_image(dy, n), u - _per_image(dx, n)
    t = np.deg2rad(_per_image(degrees, n))
    rows = np.sin(t) * u + np.cos(t) * v + (h - 1) / 2
    cols = np.cos(t) * u - np.sin(t) * v + (w - 1) / 2
    if field is not None:
        rows, cols = rows + field[0], cols + field[1]
    return rows, cols


def shift(images, dy, dx):
    """Move each image's content down by dy and right by dx pixels (scalars or (N,)), filling with 0."""
    x, back = _as_batch(images)
    return back(bilinear(x, *_source(*x.shape, dy=dy, dx=dx)))


def rotate(images, degrees):
    """Rotate each image counter-clockwise about its centre by degrees (scalar or (N,)), bilinear."""
    x, back = _as_batch(images)
    return back(bilinear(x, *_source(*x.shape, degrees=degrees)))


def gaussian_matrix(size, sigma):
    """(size, size) matrix K with K @ f = f convolved with a normalised Gaussian (zero padding)."""
    if sigma <= 0:
        return np.eye(size)
    radius = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    d = np.arange(size)[:, None] - np.arange(size)[None, :]  # K[i, j] = k[i - j], zero beyond the radius
    return np.where(np.abs(d) <= radius, k[np.clip(d + radius, 0, 2 * radius)], 0.0)


def elastic_field(n, h, w, alpha, sigma, rng):
    """Simard et al. (2003) displacements: uniform(-1, 1) noise, Gaussian-smoothed, scaled by alpha."""
    # returns (2, N, H, W): row and column displacement of each output pixel's source
    noise = rng.uniform(-1.0, 1.0, (2, n, h, w))
    kh, kw = gaussian_matrix(h, sigma), gaussian_matrix(w, sigma)
    return alpha * (kh @ noise @ kw.T)  # separable: smooth the columns (kh @), then the rows (@ kw.T)


def elastic(images, alpha, sigma, rng):
    """Elastic distortion with strength alpha (pixels) and smoothness sigma (pixels)."""
    x, back = _as_batch(images)
    field = elastic_field(*x.shape, alpha, sigma, rng)
    return back(bilinear(x, *_source(*x.shape, field=field)))


def random_augment(images, rng, max_shift=2.0, max_degrees=15.0, alpha=34.0, sigma=4.0):
    """A fresh random rotation, shift and elastic distortion per image, in one bilinear resampling."""
    # images: (N, H, W); angles uniform in +-max_degrees, shifts uniform in +-max_shift (sub-pixel)
    x, back = _as_batch(images)
    n, h, w = x.shape
    degrees = rng.uniform(-max_degrees, max_degrees, n)
    dy, dx = rng.uniform(-max_shift, max_shift, (2, n))
    field = elastic_field(n, h, w, alpha, sigma, rng) if alpha else None
    return back(bilinear(x, *_source(n, h, w, dy, dx, degrees, field)))


def balanced_subset(labels, n, seed, classes=10):
    """Indices of n examples of each class, drawn without replacement by a seeded generator, class by class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < n:
            raise ValueError(f"class {c} has {len(pool)} examples, fewer than the {n} asked for")
        picks.append(rng.choice(pool, n, replace=False))
    return np.concatenate(picks)  # (classes * n,), grouped by class


HOLDOUT = 5000  # offline: the bundled 10k test split is cut into 5000 digits to learn from and 5000 to test on


def experiment_split(data_dir=None, fallback=None):
    """(train images, train labels, test images, test labels, note) for the few-label experiments, uint8 host arrays."""
    from . import mnist  # host side: locating and reading MNIST
    if mnist.is_custom(data_dir):
        raise mnist.DataNotFoundError(f"--data {data_dir} holds an IDX set of its own: the few-label experiments "
                                     "need MNIST itself, with its test split")
    if mnist.find_mnist(data_dir, verbose=False) is not None:
        x, y = mnist.load_mnist("train", data_dir=data_dir, verbose=False)
        xt, yt = mnist.load_mnist("test", data_dir=data_dir, verbose=False)
        return x, y, xt, yt, "MNIST: the 60k train split to learn from; accuracy on the full 10k test split"
    # Only the bundled t10k split is here: learn from its first half and test on the other half, so no test
    # digit is ever trained on. The numbers are then NOT the standard-test-split numbers.
    x, y = mnist.load_mnist("test", verbose=False, fallback=fallback, hold_out=False)  # cut in two just below
    note = (f"OFFLINE: full MNIST not found; the bundled 10k test split was cut into {HOLDOUT} digits to learn "
            f"from and {len(x) - HOLDOUT} held-out digits to test on (not the standard protocol)")
    return x[:HOLDOUT], y[:HOLDOUT], x[HOLDOUT:], y[HOLDOUT:], note
