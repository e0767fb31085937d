"""Host-side pictures: image grids and training curves, written atomically as PNG."""
import os

import numpy as np
from matplotlib.figure import Figure  # a bare Figure draws headless (Agg) without touching pyplot's state
from matplotlib.ticker import FuncFormatter

from .fileio import atomic_write

GAP = 2  # pixels between tiles


def _as_images(images):
    """Bring images to (N, H, W) float in [0, 1]; accepts (N, H, W), (N, 1, H, W) or square (N, H*W)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"flat images of size {x.shape[1]} are not square")
        x = x.reshape(len(x), side, side)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"expected a non-empty (N, H, W) stack, got shape {np.shape(images)}")
    return np.clip(x, 0.0, 1.0)


def image_grid(images, nrow, gap=GAP, pad_value=1.0):
    """Tile images into one 2-D array, nrow images per row, gap pixels between tiles."""
    # images: (N, H, W) -> (rows*H + (rows-1)*gap, cols*W + (cols-1)*gap), cols = min(nrow, N)
    x = _as_images(images)
    n, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap), pad_value)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = x[i]
    return grid


def _save_atomic(fig, path, **kwargs):
    """Save a figure as PNG to path atomically, creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", **kwargs))


def save_grid(images, path, nrow=10, row_labels=None, title=None, scale=3):
    """Write images as a grayscale PNG grid, optional row labels on the left and a title."""
    # images: (N, H, W) in [0, 1]; scale = screen pixels per image pixel
    grid = image_grid(images, nrow)
    h, w = grid.shape
    dpi = 100
    fig = Figure(figsize=(w * scale / dpi, h * scale / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if row_labels is not None:
        tile_h = _as_images(images).shape[1]
        for r, label in enumerate(row_labels):
            y = r * (tile_h + GAP) + tile_h / 2
            ax.text(-GAP, y, str(label), ha="right", va="center", fontsize=10)
    if title:
        ax.set_title(title, fontsize=11)
    # tight bbox grows the canvas to fit labels/title outside the axes
    _save_atomic(fig, path, dpi=dpi, bbox_inches="tight", pad_inches=0.02)


def plot_curves(records, path, title=None):
    """Plot losses and D(x), D(G(z)) against iteration, and the Frechet distance if records hold evaluations."""
    _save_atomic(curves_figure(records, title), path, dpi=100)


def curves_figure(records, title=None):
    """The Figure plot_curves draws: two panels (three with evaluations), legends outside, a title."""
    # records: log lines; those with "eval" (from --eval) feed a third panel; missing keys become NaN gaps.
    # Legends sit to the right of the panels, where they cover no line.
    evals = [r for r in records if "eval" in r]
    records = [r for r in records if "eval" not in r]

    def col(key):
        return np.array([r.get(key, np.nan) for r in records], dtype=np.float64)

    it = col("iter")
    fig = Figure(figsize=(9.5, 8.5 if evals else 6))
    axes = fig.subplots(3 if evals else 2, 1, sharex=True)
    ax1, ax2 = axes[:2]
    ax1.plot(it, col("d_loss"), label="D loss")
    ax1.plot(it, col("g_loss"), label="G loss")
    ax1.set_ylabel("loss")
    ax1.set_title("losses", fontsize=10)
    ax2.plot(it, col("d_real"), label="D(x): real")
    ax2.plot(it, col("d_fake"), label="D(G(z)): fake")
    ax2.axhline(0.5, color="gray", ls=":", lw=1)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("mean D output")
    ax2.set_title("discriminator: probability it gives real and generated images", fontsize=10)
    if evals:
        ax3 = axes[2]
        ax3.plot([r["iter"] for r in evals], [r["eval"]["fd"] for r in evals], "o-", color="C2",
                 label="Frechet distance")
        floor = evals[-1]["eval"].get("fd_floor")
        if floor:
            ax3.axhline(floor, color="gray", ls="--", label=f"real train vs test\n({floor:.2f})")
        ax3.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")  # 180, not 1.8 x 10^2
        ax3.yaxis.set_major_formatter(plain)
        ax3.yaxis.set_minor_formatter(plain)
        ax3.set_ylabel("FD (log scale)")
        ax3.set_title("Frechet distance to the MNIST test set, in classifier features (lower is better)", fontsize=10)
    axes[-1].set_xlabel("iteration")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    fig.suptitle(title or "training curves", fontsize=12)
    fig.tight_layout()
    return fig


def plot_ssl_curves(records, path, anchor=0.93):
    """Test error (log scale) and losses of a semi-supervised run against epoch; the published error as a line."""
    # records: log lines of train_ssl.py, one per epoch
    ep = np.array([r["epoch"] for r in records], dtype=np.float64)
    fig = Figure(figsize=(8, 7.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.plot(ep, [100 * r["test_err"] for r in records], "o-", ms=3, label="averaged D")
    ax1.plot(ep, [100 * r["test_err_live"] for r in records], "-", alpha=0.6, label="live D")
    ax1.axhline(anchor, color="gray", ls="--", label=f"published, 100 labels ({anchor}%)")
    ax1.set_yscale("log")
    ax1.set_ylabel("test error (%)")
    ax1.set_title(f"semi-supervised GAN: test error {100 * records[-1]['test_err']:.2f}% after "
                  f"{records[-1]['epoch']} epochs ({records[-1]['seconds'] / 60:.0f} min)", fontsize=10)
    ax1.legend(loc="upper right", fontsize=8)
    for key, label in (("loss_lab", "labelled (cross-entropy)"), ("loss_unl", "unlabelled"),
                       ("loss_gen", "G (feature matching)")):
        ax2.plot(ep, [r[key] for r in records], label=label)
    ax2.set_yscale("log")
    ax2.set_ylabel("loss (epoch mean)")
    ax2.set_xlabel("epoch")
    ax2.legend(loc="upper right", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save_atomic(fig, path, dpi=100)
