"""Pictures of ReLU-net training: fits with each unit's contribution, elbows, slopes, MSE, GIF, comparisons.

Every function returns a `matplotlib.figure.Figure` made without pyplot, so no figure lands in pyplot's
list of open figures: nothing needs closing, and a Jupyter cell shows exactly the figure that is its value
(or that it passes to `display`), never figures that another call made earlier. They show as PNG in Jupyter
whatever the matplotlib backend. Save one with `save` or `fig.savefig`; `plt.show()` does not know them."""
from __future__ import annotations

import io

import numpy as np

from ..errors import require_extra
from ..files import atomic_output, write_atomic

require_extra("relu", ["matplotlib"], "drawing the ReLU pictures")
from matplotlib.figure import Figure  # noqa: E402  (after the check that names the extra)
from .problem import contributions, elbows, predict

#: Font sizes (points) of the pictures' titles and legends.
TITLE_SIZE, LEGEND_SIZE = 10, 8


class PictureFigure(Figure):
    """A Figure with a PNG representation of its own, so IPython shows it whatever the backend (with
    the inline backend active IPython uses that backend's PNG printer instead, which draws the same)."""

    def _repr_png_(self):
        return png_bytes(self, bbox_inches="tight")


def png_bytes(fig, dpi=None, **savefig_kw):
    """The figure as a compact PNG: drawn by Agg, then reduced to 256 colours without dithering (the
    pictures are flat colours and antialiased lines: it looks the same at a quarter of the size)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, **savefig_kw)
    rgb = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    small = rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return out.getvalue()


def _figure(figsize, **kw):
    """A new figure outside pyplot (see the module docstring)."""
    return PictureFigure(figsize=figsize, **kw)


def _colors(name, n, stop=0.9):
    from matplotlib import colormaps
    return colormaps[name](np.linspace(0, stop, n))


def _grid(params, n=801):
    """x in [0, 1] including every elbow inside, so each kink is drawn exactly where it is."""
    e = elbows(params)
    e = e[np.isfinite(e) & (e > 0) & (e < 1)]
    return np.unique(np.concatenate([np.linspace(0.0, 1.0, n), e]))


def _final_test_mse(run, k=-1, seed_index=0):
    return run.test_mse[k] if run.n_seeds is None else run.test_mse[k][seed_index]


def draw_fit(ax, run, k=-1, seed_index=0, units=True, legend=True, title=None):
    """The fit at snapshot k: training points, truth, the net, each unit's v_i·relu(w_i x + b_i) and its elbow.

    `title` replaces the default "<run>: step N, test MSE m"."""
    pr = run.problem
    params = run.params(k, seed_index if run.n_seeds else None)
    xs = _grid(params)
    ax.scatter(pr.x_train, pr.y_train, s=6, color="0.6", label="training points", zorder=1)
    ax.plot(xs, pr.f(xs), color="k", lw=1.2, ls="--", label="target", zorder=2)
    if units:
        contrib = contributions(params, xs)
        colors = _colors("viridis", contrib.shape[1])
        for i in range(contrib.shape[1]):
            ax.plot(xs, contrib[:, i], lw=0.8, color=colors[i], alpha=0.8, zorder=3,
                    label="units vᵢ·relu(wᵢx + bᵢ)" if i == 0 else None)
        e = elbows(params)
        inside = np.isfinite(e) & (e >= 0) & (e <= 1)
        ticks, = ax.plot(e[inside], np.full(inside.sum(), 0.0), "|", ms=10, mew=1.5, color="crimson",
                         transform=ax.get_xaxis_transform(), clip_on=False, label="elbows", zorder=5)
        ticks.set_in_layout(False)          # with no elbow inside, its empty box would sit at the origin
    ax.plot(xs, predict(params, xs), color="tab:blue", lw=2.2, label="network", zorder=4)
    if title is None:
        title = f"{run.label}: step {run.steps[k]:,}, test MSE {_final_test_mse(run, k, seed_index):.4f}"
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_xlim(0, 1)
    ylo, yhi = pr.y_train.min(), pr.y_train.max()
    ax.set_ylim(ylo - 0.3 * (yhi - ylo), yhi + 0.3 * (yhi - ylo))
    ax.set_xlabel("x")
    if legend:                                           # below the axes: it hides no part of the fit
        ax.legend(fontsize=LEGEND_SIZE, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=5,
                  frameon=False)


def plot_fit(run, k=-1, seed_index=0):
    """Figure: the fit at snapshot k (the last by default)."""
    fig = _figure((8, 4.5), layout="constrained")
    draw_fit(fig.add_subplot(), run, k, seed_index)
    return fig


def plot_elbows(run, seed_index=0):
    """Figure: each unit's elbow -b_i/w_i over training; the target's kinks as dotted guides."""
    fig = _figure((8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    e = -run.history["b"] / run.history["w"] if run.n_seeds is None else \
        -run.history["b"][:, seed_index] / run.history["w"][:, seed_index]
    colors = _colors("viridis", e.shape[1])
    for i in range(e.shape[1]):
        ax.plot(run.steps, e[:, i], color=colors[i], lw=1)
    for kx in run.problem.kinks:
        ax.axhline(kx, color="0.5", ls=":", lw=0.8)
    ax.axhspan(0, 1, color="0.95", zorder=0)
    ax.set_ylim(-0.25, 1.25)
    ax.set_xlabel("step")
    ax.set_ylabel("elbow  −b/w")
    ax.set_title(f"{run.label}: elbows over training (dotted: the target's kinks; shaded: the data's range)",
                 fontsize=TITLE_SIZE)
    return fig


def plot_slopes(run, seed_index=0):
    """Figure: each unit's slope v_i·w_i (the change of the fit's slope at its elbow) over training."""
    fig = _figure((8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    h = run.history
    s = h["v"] * h["w"] if run.n_seeds is None else h["v"][:, seed_index] * h["w"][:, seed_index]
    colors = _colors("viridis", s.shape[1])
    for i in range(s.shape[1]):
        ax.plot(run.steps, s[:, i], color=colors[i], lw=1)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("slope  v·w")
    ax.set_title(f"{run.label}: each unit's slope (the kink it adds at its elbow)", fontsize=TITLE_SIZE)
    return fig


def plot_mse(runs):
    """Figure: train (thin) and test (thick) MSE against steps, log scale; ridge as a dashed horizontal line.
    The legend stands outside the axes, to the right, so it covers no line."""
    from matplotlib.lines import Line2D
    fig = _figure((10, 4.8), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors("tab10", 10, stop=1.0)[np.arange(len(runs)) % 10] if len(runs) else []
    handles = []
    for run, col in zip(runs, colors):
        tr, te = run.train_mse, run.test_mse
        if run.n_seeds is not None:
            tr, te = np.median(tr, axis=1), np.median(te, axis=1)
        if run.mode == "ridge":
            handles.append(ax.axhline(te[-1], color=col, lw=1.5, ls="--", label=run.label))
            continue
        ax.plot(run.steps, tr, color=col, lw=0.8, alpha=0.6)
        handles.append(ax.plot(run.steps, te, color=col, lw=1.8, label=run.label)[0])
    keys = [Line2D([], [], color="k", lw=0.8, alpha=0.6, label="thin: train (noisy labels)"),
            Line2D([], [], color="k", lw=1.8, label="thick: test (noiseless)"),
            Line2D([], [], color="k", lw=1.5, ls="--", label="dashed: ridge, test")]
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean squared error")
    ax.set_title("Training and test error", fontsize=TITLE_SIZE)
    fig.legend(handles=handles + keys, loc="outside right upper", fontsize=LEGEND_SIZE + 1)
    return fig


def _column(run):
    return ("ridge", "") if run.mode == "ridge" else (run.mode, run.optimizer)


def plot_comparison(runs):
    """Figure: final fits, one row per width, one column per mode/optimizer (ridge and output-only
    start from the same hidden features as the other modes of the same width). Each panel's title is
    two short lines (the run; its final test MSE), so neighbouring titles stay apart."""
    widths = sorted({r.width for r in runs})
    cols = list(dict.fromkeys(_column(r) for r in runs))
    fig = _figure((3.6 * len(cols), 2.9 * len(widths) + 0.5), layout="constrained")
    axes = fig.subplots(len(widths), len(cols), squeeze=False, sharex=True, sharey=True)
    for r in runs:
        ax = axes[widths.index(r.width)][cols.index(_column(r))]
        mse = _final_test_mse(r)
        draw_fit(ax, r, legend=False, title=f"{r.label}\nstep {r.steps[-1]:,}, test MSE {mse:.4f}")
    for ax in axes.flat:
        ax.label_outer()
        if not ax.has_data():
            ax.set_visible(False)
    first = next(ax for ax in axes.flat if ax.has_data())
    handles, labels = first.get_legend_handles_labels()
    per_row = min(len(labels), 2 * len(cols) - 1)     # one row under three columns; narrower: more rows
    fig.legend(handles, labels, loc="outside lower center", ncols=max(per_row, 1), fontsize=LEGEND_SIZE)
    return fig


def plot_seed_study(runs):
    """Figure: final test MSE across seeds: median with the interquartile range as (asymmetric) error bars,
    per width, one series per optimizer/mode."""
    fig = _figure((7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    series = {}
    for r in runs:
        series.setdefault((r.mode, r.optimizer), []).append(r)
    for j, ((mode, opt), rs) in enumerate(series.items()):
        rs = sorted(rs, key=lambda r: r.width)
        q = np.array([np.percentile(np.atleast_1d(r.test_mse[-1]), [25, 50, 75]) for r in rs])
        xs = np.array([r.width for r in rs]) * (1 + 0.04 * (j - (len(series) - 1) / 2))
        ax.errorbar(xs, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt="o-", capsize=4,
                    label=f"{mode} {opt}" if mode != "ridge" else "ridge")
    n = runs[0].n_seeds or 1
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted({r.width for r in runs}), [str(w) for w in sorted({r.width for r in runs})])
    ax.set_xticks([], minor=True)                        # no "3×10¹" between the widths
    ax.set_xlabel("width")
    ax.set_ylabel("final test MSE")
    ax.set_title(f"{n} seeds: median, bars from the 25th to the 75th percentile", fontsize=TITLE_SIZE)
    ax.legend(fontsize=LEGEND_SIZE)
    return fig


#: The animated GIF: pixel size, colours in its one palette, frame time and how long the last frame stays.
GIF_SIZE, GIF_COLORS, GIF_FPS, GIF_HOLD_MS = (800, 440), 32, 8, 2000
#: Frames of the GIF (snapshots spread evenly over training).
GIF_FRAMES = 48
#: Colours the GIF keeps exactly (white, black, the training points, the elbows, the network).
GIF_KEY_COLORS = ("white", "black", "0.6", "crimson", "tab:blue")


def gif_frames(run, frames=GIF_FRAMES, seed_index=0, size=GIF_SIZE):
    """The GIF's frames as RGB arrays (height, width, 3): the fit at `frames` snapshots spread evenly
    over training, drawn at `size` pixels with one fixed layout (so the axes do not jump)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    dpi = 100
    ks = np.unique(np.linspace(0, len(run.steps) - 1, min(frames, len(run.steps))).round().astype(int))
    fig = _figure((size[0] / dpi, size[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    out = []
    for i, k in enumerate(ks):
        ax.clear()
        draw_fit(ax, run, k, seed_index)
        ax.title.set_fontsize(TITLE_SIZE + 2)
        for text in ax.get_legend().get_texts():
            text.set_fontsize(LEGEND_SIZE + 1)
        if i == 0:
            fig.tight_layout()
        canvas.draw()
        out.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return out


def _palette(frames, colors):
    """`colors` RGB rows: the key colours, then the commonest others of the first, middle and last frame."""
    from matplotlib.colors import to_rgb
    from PIL import Image

    keys = [np.round(np.array(to_rgb(c)) * 255).astype(np.uint8) for c in GIF_KEY_COLORS]
    sample = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]], axis=0)
    rest = Image.fromarray(sample).quantize(colors=colors - len(keys), method=Image.Quantize.MAXCOVERAGE)
    rest = np.array(rest.getpalette()[:3 * (colors - len(keys))], dtype=np.uint8).reshape(-1, 3)
    return np.concatenate([np.array(keys), rest])


def _nearest(frame, palette):
    """Palette index of the nearest colour for every pixel (no dithering)."""
    packed = (frame[..., 0].astype(np.int32) << 16) | (frame[..., 1].astype(np.int32) << 8) | frame[..., 2]
    uniq, inverse = np.unique(packed.ravel(), return_inverse=True)
    rgb = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], axis=1)
    d = ((rgb[:, None, :] - palette[None, :, :].astype(np.int32)) ** 2).sum(-1)
    return d.argmin(1).astype(np.uint8)[inverse].reshape(frame.shape[:2])


def save_gif(run, path, frames=GIF_FRAMES, fps=GIF_FPS, seed_index=0, size=GIF_SIZE, colors=GIF_COLORS):
    """Animated GIF of the fit over the snapshots (elbows moving), written atomically with Pillow.

    Kept small at a width where title and legend are legible: one palette of `colors` colours (the key
    colours exactly) for every frame, no dithering, and each frame after the first stores only the pixels
    that changed (the others are transparent, showing the frame before). The last frame stays GIF_HOLD_MS."""
    from PIL import Image

    rgb = gif_frames(run, frames, seed_index, size)
    palette = _palette(rgb, colors - 1)
    clear = len(palette)                                 # the transparent index: "as in the frame before"
    flat = palette.ravel().tolist() + [255, 0, 255]
    images, before = [], None
    for frame in rgb:
        index = _nearest(frame, palette)
        stored = index.copy()
        if before is not None:
            stored[index == before] = clear
        before = index
        im = Image.frombytes("P", (stored.shape[1], stored.shape[0]), stored.tobytes())
        im.putpalette(flat)
        images.append(im)
    durations = [int(1000 / fps)] * (len(images) - 1) + [GIF_HOLD_MS]
    atomic_output(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                   duration=durations, loop=0, transparency=clear, disposal=1,
                                                   optimize=False))


def save(fig, path, dpi=110):
    """Write a figure atomically (temp file + os.replace), a .png as `png_bytes`; a pyplot-managed
    figure is also closed."""
    if str(path).lower().endswith(".png"):
        write_atomic(path, png_bytes(fig, dpi))
    else:
        atomic_output(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt
        plt.close(fig)
