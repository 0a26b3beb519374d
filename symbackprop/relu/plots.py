"""Pictures of ReLU-net training: fits with each unit's contribution, elbows, slopes, MSE, GIF, comparisons."""
from __future__ import annotations


import numpy as np

from ..files import atomic_output
from .problem import contributions, elbows, predict


def _plt():
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg")
        except Exception:                                   # noqa: BLE001 (an interactive backend is fine too)
            pass
    import matplotlib.pyplot as plt
    return plt


def _grid(params, n=801):
    """x in [0, 1] including every elbow inside, so each kink is drawn exactly where it is."""
    e = elbows(params)
    e = e[np.isfinite(e) & (e > 0) & (e < 1)]
    return np.unique(np.concatenate([np.linspace(0.0, 1.0, n), e]))


def draw_fit(ax, run, k=-1, seed_index=0, units=True, legend=True):
    """The fit at snapshot k: training points, truth, the net, each unit's v_i·relu(w_i x + b_i) and its elbow."""
    pr = run.problem
    params = run.params(k, seed_index if run.n_seeds else None)
    xs = _grid(params)
    ax.scatter(pr.x_train, pr.y_train, s=6, color="0.6", label="training points", zorder=1)
    ax.plot(xs, pr.f(xs), color="k", lw=1.2, ls="--", label="target", zorder=2)
    if units:
        contrib = contributions(params, xs)
        colors = _plt().cm.viridis(np.linspace(0, 0.9, contrib.shape[1]))
        for i in range(contrib.shape[1]):
            ax.plot(xs, contrib[:, i], lw=0.8, color=colors[i], alpha=0.8, zorder=3)
        e = elbows(params)
        inside = np.isfinite(e) & (e >= 0) & (e <= 1)
        ax.plot(e[inside], np.full(inside.sum(), 0.0), "|", ms=10, mew=1.5, color="crimson",
                transform=ax.get_xaxis_transform(), clip_on=False, label="elbows", zorder=5)
    ax.plot(xs, predict(params, xs), color="tab:blue", lw=2.2, label="network", zorder=4)
    mse = run.test_mse[k] if run.n_seeds is None else run.test_mse[k][seed_index]
    ax.set_title(f"{run.label}: step {run.steps[k]:,}, test MSE {mse:.4f}", fontsize=9)
    ax.set_xlim(0, 1)
    ylo, yhi = pr.y_train.min(), pr.y_train.max()
    ax.set_ylim(ylo - 0.3 * (yhi - ylo), yhi + 0.3 * (yhi - ylo))
    ax.set_xlabel("x")
    if legend:
        ax.legend(fontsize=7, loc="upper right")


def plot_fit(run, k=-1, seed_index=0):
    """Figure: the fit at snapshot k (the last by default)."""
    fig, ax = _plt().subplots(figsize=(8, 4.5))
    draw_fit(ax, run, k, seed_index)
    fig.tight_layout()
    return fig


def plot_elbows(run, seed_index=0):
    """Figure: each unit's elbow -b_i/w_i over training; the target's kinks as dotted guides."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    e = -run.history["b"] / run.history["w"] if run.n_seeds is None else \
        -run.history["b"][:, seed_index] / run.history["w"][:, seed_index]
    colors = plt.cm.viridis(np.linspace(0, 0.9, e.shape[1]))
    for i in range(e.shape[1]):
        ax.plot(run.steps, e[:, i], color=colors[i], lw=1)
    for kx in run.problem.kinks:
        ax.axhline(kx, color="0.5", ls=":", lw=0.8)
    ax.axhspan(0, 1, color="0.95", zorder=0)
    ax.set_ylim(-0.25, 1.25)
    ax.set_xlabel("step")
    ax.set_ylabel("elbow  −b/w")
    ax.set_title(f"{run.label}: elbows over training (dotted: the target's kinks; shaded: the data's range)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_slopes(run, seed_index=0):
    """Figure: each unit's slope v_i·w_i (the change of the fit's slope at its elbow) over training."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    h = run.history
    s = h["v"] * h["w"] if run.n_seeds is None else h["v"][:, seed_index] * h["w"][:, seed_index]
    colors = plt.cm.viridis(np.linspace(0, 0.9, s.shape[1]))
    for i in range(s.shape[1]):
        ax.plot(run.steps, s[:, i], color=colors[i], lw=1)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("slope  v·w")
    ax.set_title(f"{run.label}: each unit's slope (the kink it adds at its elbow)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_mse(runs):
    """Figure: train (thin) and test (thick) MSE against steps, log scale; ridge as a horizontal line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.cm.tab10(np.arange(len(runs)) % 10)
    for run, col in zip(runs, colors):
        tr, te = run.train_mse, run.test_mse
        if run.n_seeds is not None:
            tr, te = np.median(tr, axis=1), np.median(te, axis=1)
        if run.mode == "ridge":
            ax.axhline(te[-1], color=col, lw=1.5, ls="--", label=f"{run.label} (test)")
            continue
        ax.plot(run.steps, tr, color=col, lw=0.8, alpha=0.6)
        ax.plot(run.steps, te, color=col, lw=1.8, label=f"{run.label} (test)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE (thin: train, noisy labels; thick: test, noiseless)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_comparison(runs):
    """Figure: final fits, one row per width, one column per mode/optimizer (ridge and output-only
    start from the same hidden features as the other modes of the same width)."""
    plt = _plt()
    widths = sorted({r.width for r in runs})
    cols = list(dict.fromkeys((r.mode, r.optimizer if r.mode != "ridge" else "") for r in runs))
    fig, axes = plt.subplots(len(widths), len(cols), figsize=(3.6 * len(cols), 2.8 * len(widths)),
                             squeeze=False, sharex=True, sharey=True)
    for r in runs:
        ax = axes[widths.index(r.width)][cols.index((r.mode, r.optimizer if r.mode != "ridge" else ""))]
        draw_fit(ax, r, legend=False)
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_seed_study(runs):
    """Figure: final test MSE across seeds: median with the interquartile range as (asymmetric) error bars,
    per width, one series per optimizer/mode."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
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
    ax.set_xlabel("width")
    ax.set_ylabel("final test MSE")
    ax.set_title(f"{n} seeds: median, bars from the 25th to the 75th percentile", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_gif(run, path, frames=60, fps=8, seed_index=0, dpi=60):
    """Animated GIF of the fit over the snapshots (elbows moving), written atomically with Pillow."""
    plt = _plt()
    from matplotlib.animation import FuncAnimation, PillowWriter

    ks = np.unique(np.linspace(0, len(run.steps) - 1, min(frames, len(run.steps))).round().astype(int))
    fig, ax = plt.subplots(figsize=(7, 4))

    def frame(i):
        ax.clear()
        draw_fit(ax, run, ks[i], seed_index)

    anim = FuncAnimation(fig, frame, frames=len(ks))
    atomic_output(path, lambda tmp: anim.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi))
    plt.close(fig)


def save(fig, path, dpi=110):
    """Write a figure atomically (temp file + os.replace) and close it."""
    atomic_output(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    _plt().close(fig)


