"""Grid arithmetic and PNG output of tinygan.run.plots."""
import os

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from tinygan.run import plots

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_SIG


def test_image_grid_shape():
    imgs = np.random.default_rng(0).random((23, 28, 28))
    g = plots.image_grid(imgs, nrow=10)
    assert g.shape == (3 * 28 + 2 * 2, 10 * 28 + 9 * 2)
    assert plots.image_grid(imgs[:1], nrow=10).shape == (28, 28)
    assert plots.image_grid(imgs[:4], nrow=2).shape == (58, 58)


def test_image_grid_places_tiles():
    imgs = np.stack([np.full((28, 28), v) for v in (0.0, 0.25, 0.5, 0.75)])
    g = plots.image_grid(imgs, nrow=2)
    assert g[0, 0] == 0.0 and g[0, 30] == 0.25 and g[30, 0] == 0.5 and g[57, 57] == 0.75
    assert np.all(g[28:30] == 1.0)  # gap rows


def test_image_grid_accepts_flat_and_channel_layouts():
    imgs = np.random.default_rng(1).random((6, 28, 28))
    g = plots.image_grid(imgs, 3)
    np.testing.assert_array_equal(plots.image_grid(imgs.reshape(6, 784), 3), g)
    np.testing.assert_array_equal(plots.image_grid(imgs[:, None], 3), g)
    with pytest.raises(ValueError):
        plots.image_grid(np.zeros((0, 28, 28)), 3)


def test_save_grid_writes_png(tmp_path):
    imgs = np.random.default_rng(2).random((20, 28, 28))
    path = tmp_path / "grid.png"
    plots.save_grid(imgs, path, nrow=10)
    assert _is_png(path)
    h, w = mpimg.imread(path).shape[:2]
    gh, gw = plots.image_grid(imgs, 10).shape
    assert w / h == pytest.approx(gw / gh, rel=0.03)
    assert os.listdir(tmp_path) == ["grid.png"]
    assert plt.get_fignums() == []


def test_save_grid_with_labels_and_title(tmp_path):
    imgs = np.random.default_rng(3).random((100, 28, 28))
    path = tmp_path / "cond.png"
    plots.save_grid(imgs, path, nrow=10, row_labels=[str(d) for d in range(10)], title="iter 100")
    assert _is_png(path)
    assert mpimg.imread(path).ndim == 3
    plots.save_grid(imgs, path, nrow=10)  # overwrite in place
    assert os.listdir(tmp_path) == ["cond.png"]
    assert plt.get_fignums() == []


def test_plot_curves_writes_png(tmp_path):
    recs = [dict(iter=i, d_loss=1.0 / (i + 1), g_loss=2.0, d_real=0.8, d_fake=0.3, lr=1e-3) for i in range(50)]
    path = tmp_path / "curves.png"
    plots.plot_curves(recs, path)
    assert _is_png(path)
    h, w = mpimg.imread(path).shape[:2]
    assert w / h == pytest.approx(9.5 / 6, rel=0.03)
    plots.plot_curves([], tmp_path / "empty.png")
    assert _is_png(tmp_path / "empty.png")
    assert sorted(os.listdir(tmp_path)) == ["curves.png", "empty.png"]
    assert plt.get_fignums() == []


def test_curves_are_titled_and_no_legend_covers_a_panel():
    recs = [dict(iter=i, d_loss=1.0, g_loss=2.0, d_real=0.8, d_fake=0.3) for i in range(1, 11)]
    recs += [dict(iter=5, eval=dict(fd=30.0, fd_floor=0.5)), dict(iter=10, eval=dict(fd=20.0, fd_floor=0.5))]
    fig = plots.curves_figure(recs, title="training curves: run")
    fig.canvas.draw()
    assert fig._suptitle.get_text() == "training curves: run"
    axes = fig.axes
    assert len(axes) == 3 and all(ax.get_title() and ax.get_ylabel() for ax in axes)
    for ax in axes:  # each legend lies beside its panel, covering none of its lines
        legend, panel = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert not legend.overlaps(panel), ax.get_title()
    fd_line = axes[2].get_lines()[0]
    assert list(fd_line.get_xdata()) == [5, 10]  # the last evaluation is on the curve


def test_many_calls_leave_no_open_figures(tmp_path):
    imgs = np.random.default_rng(4).random((4, 28, 28))
    for i in range(5):
        plots.save_grid(imgs, tmp_path / "g.png", nrow=2)
        plots.plot_curves([dict(iter=i, d_loss=1, g_loss=1, d_real=0.5, d_fake=0.5)], tmp_path / "c.png")
    assert plt.get_fignums() == []
    assert sorted(os.listdir(tmp_path)) == ["c.png", "g.png"]


def test_failed_write_leaves_no_temp_file(tmp_path):
    (tmp_path / "taken.png").mkdir()  # os.replace onto a folder fails
    with pytest.raises(OSError):
        plots.save_grid(np.zeros((4, 28, 28)), tmp_path / "taken.png", nrow=2)
    assert os.listdir(tmp_path) == ["taken.png"]
    assert plt.get_fignums() == []
