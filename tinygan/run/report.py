"""The internals report: one multi-panel PNG from a traced run's log (python -m tinygan.run.report RUN_DIR)."""
import json
import os
import sys
import textwrap

import numpy as np
from matplotlib.figure import Figure

from .plots import _save_atomic


def _series(traced, key):
    """{layer name: (iterations, values)} of one per-layer statistic, for the layers that record it."""
    out = {}
    for r in traced:
        for name, s in r["trace"]["layers"].items():
            if key in s:
                its, vals = out.setdefault(name, ([], []))
                its.append(r["iter"])
                vals.append(s[key])
    return out


def _style(name, i):
    """Line style of a layer: G solid, D dashed, one colour per layer."""
    return dict(color=f"C{i % 10}", ls="-" if name.startswith("G") else "--", lw=1.3)


def _edges(x):
    """Cell edges around sorted centres x, for pcolormesh over uneven trace points."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]])


def _lines(ax, series, title, log=False, guide=None):
    """One line per layer; guide: (y, label) of a dotted reference line; on log axes 0 is drawn at the bottom."""
    positive = [v for _, vals in series.values() for v in vals if v > 0]
    floor = min(positive) / 10 if positive else 1e-12
    for i, (name, (its, vals)) in enumerate(series.items()):
        vals = np.asarray(vals, dtype=np.float64)
        if log:
            vals = np.maximum(vals, floor)  # an exact 0 (a gradient that vanished) stays visible
        ax.plot(its, vals, label=name, **_style(name, i))
    if guide is not None:
        ax.axhline(guide[0], color="gray", ls=":", lw=1)
        ax.text(0.01, guide[0], guide[1], transform=ax.get_yaxis_transform(), fontsize=7, color="gray", va="bottom")
    if log and series:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    if series:
        ax.legend(fontsize=6, ncol=2, loc="best")


def _heat(fig, ax, its, rows, title, ylabel, extent=(0, 1), bar="right"):
    """A heat map of per-trace-point histograms: x = iteration, y = bins, colour = fraction (colour bar at `bar`)."""
    h = np.asarray(rows, dtype=np.float64).T  # (bins, T)
    y = np.linspace(extent[0], extent[1], h.shape[0] + 1)
    mesh = ax.pcolormesh(_edges(its), y, h, cmap="magma", vmin=0, vmax=max(h.max(), 1e-9), shading="flat")
    fig.colorbar(mesh, ax=ax, location=bar, fraction=0.046, pad=0.02 if bar == "right" else 0.2, label="fraction")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)


def _empty(ax, title, text):
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 45)), ha="center", va="center", fontsize=9,
            transform=ax.transAxes, color="dimgray")
    ax.set_xticks([])
    ax.set_yticks([])


def diagnoses(records):
    """Every diagnosis logged in the records, in order."""
    return [d for r in records if "trace" in r for d in r["trace"].get("diagnoses", [])]


def draw_internals(records, path, note=None):
    """Draw losses, D outputs, gradient norms, update ratios, unit health, D histograms and sample classes."""
    _save_atomic(internals_figure(records, note), path, dpi=80)


def internals_figure(records, note=None):
    """The 3 x 3 Figure draw_internals writes."""
    # records: log.jsonl lines; those with a "trace" key come from tinygan.measure.trace.Tracer.record
    records = [r for r in records if "eval" not in r]  # evaluation lines carry no losses
    traced = [r for r in records if "trace" in r]
    its = [r["iter"] for r in traced]
    found = diagnoses(records)
    fig = Figure(figsize=(16, 12.5))
    axes = fig.subplots(3, 3).ravel()

    ax = axes[0]  # losses
    it_all = [r["iter"] for r in records]
    ax.plot(it_all, [r.get("d_loss", np.nan) for r in records], label="D loss")
    ax.plot(it_all, [r.get("g_loss", np.nan) for r in records], label="G loss")
    ax.set_title("losses", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1]  # D outputs, with the diagnoses marked where they began
    ax.plot(it_all, [r.get("d_real", np.nan) for r in records], label="D(x)")
    ax.plot(it_all, [r.get("d_fake", np.nan) for r in records], label="D(G(z))")
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    began = {}
    for d in found:  # one line per iteration, naming everything that began there
        began.setdefault(d["began"], []).append(d["name"])
    for it, what in began.items():
        ax.axvline(it, color="red", lw=1, alpha=0.6)
        ax.text(it, 0.98, " " + ", ".join(what), rotation=90, va="top", fontsize=7, color="red")
    ax.set_ylim(0, 1)
    ax.set_title("mean D(x) and D(G(z)) (red: diagnoses, where they began)", fontsize=10)
    ax.legend(fontsize=8, loc="center right")

    if traced:
        _lines(axes[2], _series(traced, "g_norm"), "gradient norm |dW| per Dense layer (G solid, D dashed)", log=True)
        _lines(axes[3], _series(traced, "update_ratio"), "update ratio |ΔW| / |W| per step", log=True,
               guide=(1e-3, "1e-3: a common healthy size"))
        health = {f"{n} dead": v for n, v in _series(traced, "dead").items()}
        health.update({f"{n} saturated": v for n, v in _series(traced, "saturated").items()})
        _lines(axes[4], health, "dead units (ReLU) / saturated values (tanh, sigmoid)", guide=(0.9, "0.9: dead layer"))
        axes[4].set_ylim(-0.03, 1.03)
        _lines(axes[5], _series(traced, "std"), "activation std per layer (mean in the log)", log=True)
        _heat(fig, axes[6], its, [r["trace"]["d_real_hist"] for r in traced], "histogram of D(x) over time", "D(x)")
        _heat(fig, axes[7], its, [r["trace"]["d_fake_hist"] for r in traced], "histogram of D(G(z)) over time",
              "D(G(z))")
    else:
        for ax in axes[2:8]:
            _empty(ax, "", "no trace records: run train_mnist.py with --trace")

    ax = axes[8]  # what the samples are: classes if the classifier ran, else their spread
    classes = [r for r in traced if "class_hist" in r["trace"]]
    if classes:
        # the colour bar goes below, so the entropy's own axis on the right stays readable
        _heat(fig, ax, [r["iter"] for r in classes], [r["trace"]["class_hist"] for r in classes],
              "classes of fixed-noise samples, and their class entropy (cyan)", "digit", extent=(-0.5, 9.5),
              bar="bottom")
        ax.set_yticks(range(10))
        twin = ax.twinx()  # entropy on its own 0..1 scale, over the heat map
        twin.plot([r["iter"] for r in classes], [r["trace"]["entropy"] for r in classes], color="cyan", lw=1.8)
        twin.set_ylim(0, 1.02)
        twin.set_ylabel("class entropy (cyan), 0 to 1", color="darkcyan")
        twin.tick_params(axis="y", colors="darkcyan")
    elif traced:
        ax.plot(its, [r["trace"]["spread"] for r in traced], color="C0")
        ax.set_ylim(bottom=0)
        ax.set_title("spread of fixed-noise samples (RMS pixel distance)", fontsize=10)
        ax.text(0.02, 0.04, "\n".join(textwrap.wrap(note or "no class histogram in the log", 60)),
                transform=ax.transAxes, fontsize=7, color="dimgray")
    else:
        _empty(ax, "classes of samples", note or "no trace records")
    for ax in axes[:6]:
        ax.grid(alpha=0.3)
    for ax in axes[6:]:
        ax.set_xlabel("iteration")

    summary = "; ".join(f"{d['name']} from iteration {d['began']}" for d in found) or "none: nothing flagged"
    fig.suptitle("\n".join(textwrap.wrap(f"GAN internals. Diagnoses: {summary}", 150)), fontsize=12,
                 color="darkred" if found else "darkgreen")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def read_log(path):
    """The records of a log.jsonl file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":  # redraw a run's report: python -m tinygan.run.report RUN_DIR [OUT.png]
    run = sys.argv[1]
    target = sys.argv[2] if len(sys.argv) > 2 else os.path.join(run, "internals.png")
    draw_internals(read_log(os.path.join(run, "log.jsonl")), target)
    print(f"wrote {target}")
