"""Digits written as scans would look: dark ink on light paper, scaled up and placed with margins, one PNG each."""
import os

import numpy as np
from PIL import Image


def write_scans(x, y, folder, size, rng):
    """Write each uint8 digit x[i] (28, 28) as folder/<y[i]>/NNNNN.png, size x size; a label "" writes it flat."""
    for i, (img, label) in enumerate(zip(x, y)):
        rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
        ink = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) / 255  # cropped to the ink
        h, w = ink.shape
        side = rng.integers(36, 45)                          # the longer side, 36..44 px
        nh, nw = max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w)))
        big = np.clip(np.asarray(Image.fromarray(ink, mode="F").resize((nw, nh), Image.BILINEAR)), 0, 1)
        page = np.zeros((size, size), np.float32)
        top, left = rng.integers(4, size - nh - 3), rng.integers(4, size - nw - 3)  # margin >= 4 px
        page[top:top + nh, left:left + nw] = big
        scan = 240 - 220 * page + rng.normal(0, 2, page.shape)  # paper 240, darkest ink 20, a little noise
        Image.fromarray(np.clip(np.rint(scan), 0, 255).astype(np.uint8), mode="L").save(
            os.path.join(folder, str(label), f"{i:05d}.png"))
