"""Training on PyTorch (`relu --backend torch`): the generated module's grad (`codegen --target torch`, in
PyTorch's own functions) on float64 CPU tensors, one step per Python iteration (eager).

Stacked seeds (--seeds N) use the stacked module (relu_net_seeds: every input batched, as
the NumPy backend does) rather than torch.func.vmap of the one-net step: vmap gave the same numbers
but took about 50 ms a step at 3 seeds, width 20 (its batched float64 matmul), against well under
1 ms stacked (SEEDS = "vmap" switches it on; bench/relu_backends.py measures both).
The step is not wrapped in torch.compile (COMPILE = True does): compiling took about a minute and
the compiled step was slower than eager here (6.7 ms against 0.2–0.3 ms, width 40, a loaded machine).

The update formulas are train._Optimizer's, written functionally (a new tensor per parameter and
step, as vmap needs); Adam's bias corrections are Python floats computed as NumPy's loop computes
them.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from . import gradients
from .backends import Trained
from .train import ADAM_BETAS, ADAM_EPS, MOMENTUM, PARAMS

#: Wrap the step in torch.compile (off: see above).
COMPILE = False
#: How stacked seeds are trained: "stack" (the stacked module) or "vmap" (torch.func.vmap of one net's step).
SEEDS = "stack"


def stacked_grad(module):
    """grad(w, b, v, c, x, y) over S stacked nets (w: (S, h), x: (S, B)) from the stacked module (every
    input batched, o = ones): the batch mean over nets is undone (× S), as gradients.SeedStack does."""
    def grad(w, b, v, c, x, y):
        S = x.shape[0]
        g = module.grad(w=w, b=b, v=v, c=c, x=x, y=y, o=torch.ones_like(x))
        return {n: a * S for n, a in g.items()}
    return grad


def make_step(grad, names, optimizer: str, lr: float):
    """step(p, m, s, x, y, size, root) -> (p, m, s): one optimizer step of one net on the minibatch
    (x, y); `size` and `root` are Adam's bias-corrected step size and √(1 − β₂ᵗ)."""
    b1, b2 = ADAM_BETAS

    def step(p, m, s, x, y, size, root):
        g = grad(w=p["w"], b=p["b"], v=p["v"], c=p["c"], x=x, y=y)
        p = dict(p)
        if optimizer == "sgd":
            for n in names:
                p[n] = p[n] - lr * g[n]
        elif optimizer == "momentum":
            m = {n: m[n] * MOMENTUM + g[n] for n in names}
            for n in names:
                p[n] = p[n] - lr * m[n]
        else:
            m = {n: m[n] * b1 + (1 - b1) * g[n] for n in names}
            s = {n: s[n] * b2 + (1 - b2) * (g[n] * g[n]) for n in names}
            for n in names:
                p[n] = p[n] - size * (m[n] / (torch.sqrt(s[n]) / root + ADAM_EPS))
        return p, m, s
    return step


def run_blocks(mode, names, optimizer, lr, init, blocks, x, y, progress=None, compile: bool | None = None,
               seeds_with: str | None = None) -> Trained:
    module, _ = gradients.MODES[mode]
    seeds = np.ndim(init["w"]) == 2
    compile = COMPILE if compile is None else compile
    vmap = seeds and (seeds_with or SEEDS) == "vmap"
    if seeds and not vmap:
        grad = stacked_grad(gradients.target_module(module + "_seeds", "torch"))
    else:
        grad = gradients.target_module(module, "torch").grad
    p = {n: torch.tensor(np.asarray(init[n], dtype=np.float64)) for n in PARAMS}
    m = {n: torch.zeros_like(p[n]) for n in names}
    s = {n: torch.zeros_like(p[n]) for n in names}
    step = make_step(grad, names, optimizer, lr)
    if vmap:
        step = torch.func.vmap(step, in_dims=(0, 0, 0, 0, 0, None, None))
    out = Trained()
    if compile:
        step = torch.compile(step, dynamic=False)
    xt, yt = torch.from_numpy(np.asarray(x, dtype=np.float64)), torch.from_numpy(np.asarray(y, dtype=np.float64))
    b1, b2 = ADAM_BETAS
    t = 0
    first = True
    for idx in blocks:
        idx = torch.from_numpy(np.asarray(idx))
        X, Y = xt[idx], yt[idx]                              # (n, B) or (n, S, B)
        for i in range(len(X)):
            t += 1
            size, root = lr / (1 - b1 ** t), float(np.sqrt(1 - b2 ** t))
            if first and compile:
                t0 = time.perf_counter()
                p, m, s = step(p, m, s, X[i], Y[i], size, root)      # compiles
                out.compile_seconds = time.perf_counter() - t0
            else:
                p, m, s = step(p, m, s, X[i], Y[i], size, root)
            first = False
        out.snapshots.append({n: p[n].numpy().copy() for n in PARAMS})
        if progress is not None:
            progress.update(len(X) * (X.shape[1] if seeds else 1))
    return out
