"""The ReLU-net trainer (issue 6): data, generated gradients, training loops, optimizers, pictures, CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402

from symbackprop.cli import main  # noqa: E402
from symbackprop.relu import experiment, gradients, plots  # noqa: E402
from symbackprop.relu.problem import (HEIGHTS, contributions, init_params, make_problem,  # noqa: E402
                                      minibatch_indices, predict, target_function)
from symbackprop.relu.train import ADAM_BETAS, ADAM_EPS, MOMENTUM, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAJ_TOL = 1e-10
FD_EPS, FD_RTOL = 1e-6, 1e-6


def _loss(w, b, v, c, x, y):
    """Independent oracle: the notebook's minibatch MSE, written for autograd."""
    return anp.mean((anp.dot(anp.maximum(anp.outer(x, w) + b, 0.0), v) + c - y) ** 2)


_ORACLE = {n: autograd.grad(_loss, i) for i, n in enumerate("wbvc")}


@pytest.fixture(scope="module")
def generated():
    try:
        return {name: gradients.load_module(name) for name in ("relu_net", "relu_net_output")
                if gradients.checked_in(name) or pytest.fail(f"generated/{name}.py missing")}
    except Exception as e:                                   # noqa: BLE001
        pytest.skip(f"generated modules missing: {e}")


# ----- data and initial nets -----

def test_target_goes_through_the_knots():
    f = target_function("notebook")
    k = np.arange(11)
    assert np.allclose(f(k / 10), np.sin(12345.0 * k))
    mid = (k[:-1] + 0.5) / 10                                # linear between knots
    assert np.allclose(f(mid), 0.5 * (HEIGHTS[:-1] + HEIGHTS[1:]))


def test_problem_matches_the_notebook():
    p = make_problem(seed=3)
    assert p.x_train.shape == p.y_train.shape == (200,)
    assert np.all((p.x_train >= 0) & (p.x_train <= 1))
    assert np.array_equal(p.x_test[:200], p.x_train) and np.allclose(p.x_test[200:], np.linspace(0, 1, 1000))
    assert np.allclose(p.y_test, target_function("notebook")(p.x_test))             # noiseless
    resid = p.y_train - p.f(p.x_train)
    assert 0.07 < resid.std() < 0.13                                               # N(0, 0.1²)
    assert np.array_equal(make_problem(seed=3).y_train, p.y_train)
    assert not np.array_equal(make_problem(seed=4).x_train, p.x_train)


def test_init_matches_the_notebook():
    for width in (10, 40):
        p = init_params(width, seed=5)
        e = -p["b"] / p["w"]
        assert np.all(np.diff(e) >= 0) and np.all((e >= 0) & (e <= 1))
        assert np.all(np.abs(p["w"]) <= 1)
        bound = 1 / np.sqrt(width)
        assert np.all(np.abs(p["v"]) <= bound) and abs(p["c"]) <= bound
    assert not np.array_equal(init_params(10, 1)["w"], init_params(10, 2)["w"])


def test_target_expressions_and_errors():
    assert np.allclose(target_function("abs(x - 0.5)")(np.array([0.0, 0.75])), [0.5, 0.25])
    assert np.allclose(target_function("step")(np.array([0.2, 0.8])), [0, 1])
    with pytest.raises(Exception, match="only the variable x"):
        target_function("x + y")


# ----- the generated gradients -----

def _point(rng, h=6, B=9):
    w, b, v = rng.uniform(-1, 1, (3, h))
    return dict(w=w, b=b, v=v, c=rng.uniform(-1, 1), x=rng.uniform(0, 1, B), y=rng.normal(size=B))


def test_generated_gradient_matches_finite_differences_and_autograd(generated):
    rng = np.random.default_rng(0)
    for name in generated:
        wrt = gradients.MODULES[name][3]
        for _ in range(5):
            pt = _point(rng)
            value, grads = generated[name].value_and_grad(**pt)
            assert np.isclose(value, _loss(**pt), rtol=1e-12)
            assert set(grads) == set(wrt)
            for n in wrt:
                assert np.shape(grads[n]) == np.shape(pt[n])
                assert np.allclose(grads[n], _ORACLE[n](*(pt[k] for k in "wbvcxy")), rtol=1e-10, atol=1e-12)
                d = rng.normal(size=np.shape(pt[n]))          # central difference along a random direction
                hi, lo = dict(pt), dict(pt)
                hi[n], lo[n] = pt[n] + FD_EPS / 2 * d, pt[n] - FD_EPS / 2 * d
                fd = (_loss(**hi) - _loss(**lo)) / FD_EPS
                assert np.isclose(np.vdot(grads[n], d), fd, rtol=FD_RTOL, atol=1e-8)


@pytest.mark.parametrize("name", sorted(gradients.MODULES))
def test_in_memory_emission_equals_the_checked_in_module(name):
    """The wheel's fallback (emit in memory) runs exactly the code checked into generated/."""
    path = gradients.checked_in(name)
    if path is None:
        pytest.skip(f"generated/{name}.py not checked in; emitted in memory: {gradients.regenerate_command(name)}")
    assert gradients.emit_source(name) == path.read_text()


@pytest.mark.parametrize("mode", ["all", "hidden", "output"])
def test_seed_stack_equals_one_call_per_net(generated, mode):
    rng = np.random.default_rng(4)
    S, h, B = 3, 5, 7
    p = {n: rng.uniform(-1, 1, (S, h)) for n in "wbv"}
    p["c"], x, y = rng.uniform(-1, 1, S), rng.uniform(0, 1, (S, B)), rng.normal(size=(S, B))
    stacked, names = gradients.value_and_grad_for(mode, seeds=True)
    single, _ = gradients.value_and_grad_for(mode)
    value, g = stacked(**p, x=x, y=y)
    assert np.isclose(value, sum(single(**{n: a[s] for n, a in p.items()}, x=x[s], y=y[s])[0] for s in range(S)))
    for s in range(S):
        gs = single(**{n: a[s] for n, a in p.items()}, x=x[s], y=y[s])[1]
        oracle = {n: _ORACLE[n](*(p[k][s] for k in "wbvc"), x[s], y[s]) for n in names}
        for n in names:
            assert np.allclose(g[n][s], gs[n], rtol=1e-12, atol=1e-14)
            assert np.allclose(g[n][s], oracle[n], rtol=1e-10, atol=1e-12)


def test_predict_agrees_with_generated_value(generated):
    rng = np.random.default_rng(1)
    pt = _point(rng, B=50)
    value = generated["relu_net"].value_and_grad(**pt)[0]
    assert np.isclose(np.mean((predict(pt, pt["x"]) - pt["y"]) ** 2), value, rtol=1e-12)


# ----- training loops -----

def _reference(problem, width, names, lr, steps, seed, optimizer="sgd", batch=40):
    """An independent loop: autograd gradients, the same minibatch indices, PyTorch's update formulas."""
    p = {k: np.array(a, dtype=float) for k, a in init_params(width, seed).items()}
    idx = np.concatenate(list(minibatch_indices(seed, width, steps, batch, len(problem.x_train), 1000)))
    m = {n: np.zeros_like(p[n]) for n in names}
    s = {n: np.zeros_like(p[n]) for n in names}
    for t, rows in enumerate(idx, 1):
        x, y = problem.x_train[rows], problem.y_train[rows]
        g = {n: _ORACLE[n](p["w"], p["b"], p["v"], p["c"], x, y) for n in names}
        for n in names:
            if optimizer == "sgd":
                p[n] = p[n] - lr * g[n]
            elif optimizer == "momentum":
                m[n] = MOMENTUM * m[n] + g[n]
                p[n] = p[n] - lr * m[n]
            else:
                b1, b2 = ADAM_BETAS
                m[n] = b1 * m[n] + (1 - b1) * g[n]
                s[n] = b2 * s[n] + (1 - b2) * g[n] ** 2
                p[n] = p[n] - lr * (m[n] / (1 - b1 ** t)) / (np.sqrt(s[n] / (1 - b2 ** t)) + ADAM_EPS)
    return p


@pytest.mark.parametrize("mode,optimizer,names", [
    ("all", "sgd", "wbvc"), ("output", "sgd", "vc"), ("hidden", "sgd", "wb"),
    ("all", "momentum", "wbvc"), ("all", "adam", "wbvc")])
def test_training_follows_the_reference_loop(generated, mode, optimizer, names):
    problem = make_problem(seed=2)
    run = train(problem, 8, mode, optimizer=optimizer, steps=300, every=100, seed=2)
    ref = _reference(problem, 8, names, run.lr, 300, seed=2, optimizer=optimizer)
    for n in "wbvc":
        assert np.allclose(run.final[n], ref[n], rtol=0, atol=TRAJ_TOL), n
    init = init_params(8, 2)
    for n in set("wbvc") - set(names):                          # frozen layers stay put
        assert np.array_equal(run.final[n], init[n])
    assert run.steps.tolist() == [0, 100, 200, 300]
    assert np.isclose(run.test_mse[-1], np.mean((predict(run.final, problem.x_test) - problem.y_test) ** 2))


def test_trajectory_equals_pytorch_loop(generated):
    """Same init, data, minibatch indices and lr: 1,000 SGD steps agree with a float64 PyTorch loop."""
    torch = pytest.importorskip("torch")
    problem = make_problem(seed=0)
    width, lr, steps = 20, 0.02, 1000
    run = train(problem, width, "all", steps=steps, seed=0)
    init = init_params(width, 0)
    params = [torch.tensor(np.asarray(init[n], dtype=np.float64), requires_grad=True) for n in "wbvc"]
    opt = torch.optim.SGD(params, lr=lr)
    xs, ys = torch.tensor(problem.x_train), torch.tensor(problem.y_train)
    idx = np.concatenate(list(minibatch_indices(0, width, steps, 40, len(problem.x_train), 1000)))
    for rows in torch.tensor(idx):
        w, b, v, c = params
        x, y = xs[rows], ys[rows]
        loss = ((torch.relu(x[:, None] * w + b) @ v + c - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in zip("wbvc", params):
        assert np.max(np.abs(run.final[n] - p.detach().numpy())) <= TRAJ_TOL, n


def test_stacked_seeds_equal_separate_runs(generated):
    problem = make_problem(seed=1)
    for optimizer in ("sgd", "adam"):
        stacked = train(problem, 6, "all", optimizer=optimizer, steps=200, every=100, seed=1, seeds=3)
        assert stacked.history["w"].shape == (3, 3, 6) and stacked.test_mse.shape == (3, 3)
        for s in range(3):
            single = train(problem, 6, "all", optimizer=optimizer, steps=200, every=100, seed=1 + s)
            for n in "wbvc":
                assert np.allclose(stacked.final[n][s], single.final[n], rtol=0, atol=1e-12)
            assert np.allclose(stacked.test_mse[:, s], single.test_mse, rtol=1e-12)


def test_ridge_is_the_penalised_least_squares_solution():
    problem = make_problem(seed=4)
    lam = 1e-3
    run = train(problem, 12, "ridge", ridge_lambda=lam, seed=4)
    p, init = run.final, init_params(12, 4)
    assert np.array_equal(p["w"], init["w"]) and np.array_equal(p["b"], init["b"])     # same initial features
    x, y = problem.x_train, problem.y_train

    def objective(v, c):
        return _loss(p["w"], p["b"], v, c, x, y) + lam * anp.dot(v, v)
    assert np.max(np.abs(autograd.grad(objective, 0)(p["v"], p["c"]))) < 1e-10        # stationary
    assert abs(autograd.grad(objective, 1)(p["v"], p["c"])) < 1e-10
    assert objective(p["v"], p["c"]) < objective(init["v"], init["c"])


def test_runs_are_reproducible_from_the_seed(generated):
    problem = make_problem(seed=7)
    a = train(problem, 5, "all", steps=150, every=50, seed=7)
    b = train(problem, 5, "all", steps=150, every=50, seed=7)
    c = train(problem, 5, "all", steps=150, every=50, seed=8)
    assert np.array_equal(a.history["w"], b.history["w"])
    assert not np.allclose(a.final["w"], c.final["w"])


# ----- pictures -----

def test_unit_contributions_add_up_to_the_fit():
    rng = np.random.default_rng(3)
    p = init_params(9, 3)
    p["v"] = rng.normal(size=9)
    xs = plots._grid(p)
    assert np.allclose(contributions(p, xs).sum(1) + p["c"], predict(p, xs))
    e = -p["b"] / p["w"]
    assert np.all(np.isin(e[(e > 0) & (e < 1)], xs))                # every kink lies on the drawn grid


def test_experiment_figures_and_files(generated, tmp_path):
    ex = experiment([4, 6], ["all", "output", "ridge"], steps=200, every=100, progress=False)
    figs = ex.figures()
    assert {"fit", "mse", "elbows", "slopes", "comparison"} <= set(figs)
    paths = ex.save(tmp_path, frames=3)
    for name in ("fit", "mse", "elbows", "slopes", "comparison"):
        assert (tmp_path / f"relu_{name}.png").stat().st_size > 1000
    assert (tmp_path / "relu_fit.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert len(paths) == 6 and not list(tmp_path.glob(".tmp-*"))
    out = ex.summary()
    assert out.count("\n") < 25 and "all" in out and "ridge" in out
    # output-only and ridge share the initial hidden layer of their width
    assert np.array_equal(ex.get("output", 6).final["w"], ex.get("ridge", 6).final["w"])


def _extents(fig):
    """Draw with Agg (as saving does) and return the renderer, for artists' window extents in pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(110)
    canvas.draw()
    return canvas.get_renderer()


def _overlap(a, b, gap=0.0):
    """Whether two pixel boxes overlap, or come closer than `gap` pixels."""
    return a.x0 < b.x1 + gap and b.x0 < a.x1 + gap and a.y0 < b.y1 + gap and b.y0 < a.y1 + gap


@pytest.fixture(scope="module")
def default_like(generated):
    """The default command's nine runs (3 widths x all, output, ridge), short, with step numbers as long
    as the full run's (150,000) so titles have their real length."""
    ex = experiment([10, 20, 40], ["all", "output", "ridge"], steps=200, every=100, progress=False)
    for r in ex.runs:
        r.steps = r.steps * 750
    return ex


def test_figures_are_not_left_open_in_pyplot(default_like):
    import matplotlib.pyplot as plt
    plt.close("all")
    figs = default_like.figures()
    assert plt.get_fignums() == []                                   # a notebook cell shows only its own
    for fig in figs.values():
        png = fig._repr_png_()                                       # how Jupyter shows them
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_titles_and_legends_fit_inside_their_figures(default_like):
    for name, fig in default_like.figures().items():
        renderer = _extents(fig)
        texts = [ax.title for ax in fig.axes if ax.get_visible()] + list(fig.legends) + \
            [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        for t in texts:
            box = t.get_window_extent(renderer)
            assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1), (name, t)


@pytest.mark.parametrize("optimizers", [["sgd"], ["sgd", "adam"]])
def test_narrow_comparison_keeps_its_layout(generated, optimizers):
    import warnings
    ex = experiment([4, 6], ["all"], optimizers, steps=100, every=50, progress=False)
    fig = plots.plot_comparison(ex.runs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                               # e.g. "constrained_layout not applied"
        renderer = _extents(fig)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
    for ax in fig.axes:
        assert not _overlap(box, ax.get_window_extent(renderer))


def test_comparison_titles_do_not_overlap(default_like):
    fig = plots.plot_comparison(default_like.runs)
    renderer = _extents(fig)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    assert len(axes) == 9
    titles = [ax.title.get_window_extent(renderer) for ax in axes]
    frames = [ax.get_window_extent(renderer) for ax in axes]
    for i, t in enumerate(titles):
        assert t.width > 50
        for j in range(i + 1, len(titles)):
            assert not _overlap(t, titles[j], gap=0.1 * fig.dpi), (axes[i].get_title(), axes[j].get_title())
        for j, f in enumerate(frames):
            assert not _overlap(t, f), (axes[i].get_title(), "runs into the plot", j)
        assert fig.bbox.contains(t.x0, t.y0) and fig.bbox.contains(t.x1, t.y1)


def test_mse_legend_stands_outside_the_plot(default_like):
    fig = plots.plot_mse(default_like.runs)
    renderer = _extents(fig)
    (ax,) = fig.axes
    legends = list(fig.legends) + ([ax.get_legend()] if ax.get_legend() else [])
    assert len(legends) == 1
    box = legends[0].get_window_extent(renderer)
    assert not _overlap(box, ax.get_window_extent(renderer))
    for line in ax.get_lines():
        assert not _overlap(box, line.get_window_extent(renderer)), line.get_label()
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)    # not cut off
    labels = [t.get_text() for t in legends[0].get_texts()]
    assert sum(r.label in labels for r in default_like.runs) == 9


def test_gif_is_wide_small_and_shows_the_rendered_frames(default_like, tmp_path):
    from PIL import Image
    run = default_like.get("all", 40)
    path = tmp_path / "fit.gif"
    plots.save_gif(run, path, frames=3)
    with Image.open(path) as gif:
        assert gif.size[0] >= 800 and gif.n_frames == 3
        rendered = plots.gif_frames(run, frames=3)
        assert gif.size == (rendered[0].shape[1], rendered[0].shape[0])
        for i, want in enumerate(rendered):
            gif.seek(i)
            got = np.asarray(gif.convert("RGB")).astype(int)
            far = np.abs(got - want).sum(-1) > 90                    # a palette colour far from the drawn one
            assert far.mean() < 0.005, (i, far.mean())
        crimson = np.array([220, 20, 60])                            # the elbows keep their colour
        assert np.any(np.all(got == crimson, axis=-1))
    assert path.stat().st_size < 100_000


def test_committed_pictures_are_legible_sizes():
    from PIL import Image
    img = ROOT / "docs" / "img"
    with Image.open(img / "relu_fit.gif") as gif:
        assert gif.size[0] >= 800 and gif.n_frames > 20
    assert (img / "relu_fit.gif").stat().st_size < 1_000_000
    for name in ("fit", "elbows", "slopes", "mse", "comparison"):
        with Image.open(img / f"relu_{name}.png") as png:
            assert png.size[0] >= 800, name
        assert (img / f"relu_{name}.png").stat().st_size < 200_000, name


# ----- command line -----

def test_cli_short_run(generated, tmp_path, capsys):
    rc = main(["relu", "--width", "5", "--mode", "all,ridge", "--steps", "200", "--every", "100", "--quiet",
               "--no-gif", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "test MSE" in out and "elbows in [0,1]" in out
    assert (tmp_path / "relu_fit.png").exists()


def test_cli_seeds(generated, tmp_path, capsys):
    rc = main(["relu", "--width", "4,6", "--mode", "all", "--optimizer", "sgd,adam", "--seeds", "3",
               "--steps", "100", "--every", "50", "--quiet", "--no-gif", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "median" in out
    assert (tmp_path / "relu_seeds.png").exists()


def test_seed_study_labels_only_the_widths(generated):
    ex = experiment([10, 20, 40], ["all"], steps=20, every=10, seeds=2, progress=False)
    fig = plots.plot_seed_study(ex.runs)
    _extents(fig)
    (ax,) = fig.axes
    shown = [t.get_text() for t in ax.get_xticklabels(which="both") if t.get_visible() and t.get_text()]
    assert shown == ["10", "20", "40"]


@pytest.mark.parametrize("argv,needle", [
    (["--mode", "everything"], "unknown mode"),
    (["--optimizer", "rmsprop"], "unknown optimizer"),
    (["--target", "x + zz"], "only the variable x"),
    (["--target", "frob(x)"], "unknown function"),
    (["--width", "0"], "positive"),
    (["--lr", "-1"], "--lr"),
])
def test_cli_errors_are_one_message(tmp_path, capsys, argv, needle):
    with pytest.raises(SystemExit) if needle == "positive" else _nothing():
        rc = main(["relu", "--quiet", "--steps", "10", "--out", str(tmp_path / "o")] + argv)
        assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
