"""Image files to grayscale arrays (Pillow), and MNIST's own preprocessing, shared by training and reading."""
import numpy as np

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
SIDE, BOX = 28, 20     # MNIST: the ink's longer side scaled to 20 px, placed in 28 x 28 by its centre of mass
INK = 0.1              # a pixel is ink when it is this far above the paper, on a 0..1 scale


class ImageError(ValueError):
    """An image cannot be decoded or used; the message names the file."""


def is_image(path):
    """Whether the file name has an image extension this module reads."""
    return str(path).lower().endswith(EXTENSIONS)


def decode(path):
    """Grayscale float32 (H, W) in [0, 1] of an image file: 16-bit, palette, RGB(A) and LA converted."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()  # reads every byte: a truncated file fails here, not later
            return to_gray(ImageOps.exif_transpose(im))  # a phone's photo the way up it was taken
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: cannot read this image ({type(e).__name__}: {e}); replace or remove it") from None


def to_gray(im):
    """A Pillow image as float32 (H, W) in [0, 1]; transparency laid on paper of the opposite shade to the ink."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        g = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or g.max() > 255 else 255.0
        return np.clip(g / top, 0, 1).astype(np.float32)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255  # (H, W, 4)
        gray = rgba[..., :3] @ np.float32([0.299, 0.587, 0.114])
        alpha = rgba[..., 3]
        if alpha.min() < 1:
            solid = alpha > 0.5
            ink_dark = gray[solid].mean() < 0.5 if solid.any() else True
            paper = 1.0 if ink_dark else 0.0
            gray = alpha * gray + (1 - alpha) * paper
        return gray.astype(np.float32)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255


def dark_on_light(g):
    """Whether an image (H, W) in [0, 1] has a light border (paper), i.e. dark ink on light paper."""
    h, w = g.shape
    r = max(1, min(h, w) // 14)
    border = np.concatenate([g[:r].ravel(), g[-r:].ravel(), g[:, :r].ravel(), g[:, -r:].ravel()])
    return float(np.median(border)) > 0.5


def normalize(g, side=SIDE, box=BOX):
    """MNIST's preprocessing of one image (H, W) in [0, 1]: ink bright on black, cropped to the ink,
    the longer side scaled to `box` px, placed in side x side by centre of mass; uint8 (side, side)."""
    from PIL import Image
    g = np.asarray(g, dtype=np.float32)
    if dark_on_light(g):
        g = 1 - g
    h, w = g.shape
    r = max(1, min(h, w) // 14)
    paper = float(np.median(np.concatenate([g[:r].ravel(), g[-r:].ravel(), g[:, :r].ravel(), g[:, -r:].ravel()])))
    top = float(g.max())
    out = np.zeros((side, side), np.float32)
    if top - paper < INK:  # no ink at all: a blank image stays blank
        return out.astype(np.uint8)
    g = np.clip((g - paper) / (top - paper), 0, 1)  # paper 0, the darkest ink 1
    rows, cols = np.flatnonzero((g > INK).any(axis=1)), np.flatnonzero((g > INK).any(axis=0))
    g = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # crop to the ink's bounding box
    h, w = g.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    patch = np.asarray(Image.fromarray(g, mode="F").resize((nw, nh), Image.LANCZOS if scale < 1 else Image.BILINEAR))
    patch = np.clip(patch, 0, 1)
    mass = patch.sum()
    cy = (patch.sum(axis=1) @ np.arange(nh)) / mass if mass > 0 else (nh - 1) / 2
    cx = (patch.sum(axis=0) @ np.arange(nw)) / mass if mass > 0 else (nw - 1) / 2
    top_row = int(np.clip(round(side / 2 - cy), 0, side - nh))  # centre of mass to the middle, inside the frame
    left = int(np.clip(round(side / 2 - cx), 0, side - nw))
    out[top_row:top_row + nh, left:left + nw] = patch
    return np.rint(out * 255).astype(np.uint8)


def as_uint8(g):
    """A grayscale float image in [0, 1] as uint8 pixels, kept as given (--no-normalize)."""
    return np.rint(np.clip(g, 0, 1) * 255).astype(np.uint8)


def prepare(g, normalize_images=True):
    """One decoded image as training and reading use it: normalised to 28 x 28, or kept as given."""
    return normalize(g) if normalize_images else as_uint8(g)


def to_grayscale_batch(x):
    """(N, H, W, 3 or 4) colour pixels -> (N, H, W) grayscale, same scale as given (alpha dropped)."""
    return x[..., :3].astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
