"""Training on JAX (`relu --backend jax`): the array-API generated module's grad in a jax.jit-compiled step,
the loop a lax.scan over the steps of a block inside a lax.scan over blocks, stacked seeds with jax.vmap.

Float64 throughout (jax_enable_x64 is switched on when this module is imported), so a trajectory
follows the NumPy run. The minibatch indices are drawn on the host exactly as for NumPy and gathered
on the device; one compiled call trains many snapshot blocks at once (up to GROUP_INDICES indices).
"""
from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from . import gradients  # noqa: E402
from .backends import Trained  # noqa: E402
from .train import ADAM_BETAS, ADAM_EPS, MOMENTUM, PARAMS  # noqa: E402

#: Minibatch indices handed to one compiled call at most (int32: 32 MiB), so stacked seeds over
#: long runs never hold every index at once.
GROUP_INDICES = 1 << 23


def make_step(grad, names, optimizer: str, lr: float, x, y):
    """step((params, state), idx) -> ((params, state), None): one optimizer step of one net on the
    minibatch x[idx], y[idx], with the generated module's grad; the update formulas are
    train._Optimizer's (PyTorch's)."""
    b1, b2 = ADAM_BETAS

    def step(carry, idx):
        p, (m, s, t) = carry
        g = grad(w=p["w"], b=p["b"], v=p["v"], c=p["c"], x=x[idx], y=y[idx])
        p = dict(p)
        if optimizer == "sgd":
            for n in names:
                p[n] = p[n] - lr * g[n]
        elif optimizer == "momentum":
            m = {n: m[n] * MOMENTUM + g[n] for n in names}
            for n in names:
                p[n] = p[n] - lr * m[n]
        else:
            t = t + 1
            m = {n: m[n] * b1 + (1 - b1) * g[n] for n in names}
            s = {n: s[n] * b2 + (1 - b2) * (g[n] * g[n]) for n in names}
            size = lr / (1 - b1 ** t)
            root = jnp.sqrt(1 - b2 ** t)
            for n in names:
                p[n] = p[n] - size * (m[n] / (jnp.sqrt(s[n]) / root + ADAM_EPS))
        return (p, (m, s, t)), None
    return step


def make_group(step, seeds: bool):
    """group(carry, idx) -> (carry, params after each block): idx is (blocks, steps, B), or
    (blocks, steps, S, B) with the step vmapped over S stacked nets."""
    one = jax.vmap(step) if seeds else step

    def block(carry, idx):
        carry, _ = lax.scan(lambda c, i: (one(c, i)[0], None), carry, idx)
        return carry, carry[0]

    def group(carry, idx):
        return lax.scan(block, carry, idx)
    return jax.jit(group)


def run_blocks(mode, names, optimizer, lr, init, blocks, x, y, progress=None) -> Trained:
    module, _ = gradients.MODES[mode]
    grad = gradients.target_module(module).grad
    seeds = np.ndim(init["w"]) == 2
    p = {n: jnp.asarray(np.asarray(init[n], dtype=np.float64)) for n in PARAMS}
    zeros = {n: jnp.zeros_like(p[n]) for n in names}
    t = jnp.zeros(np.shape(init["c"]), dtype=jnp.int64)
    carry = (p, (zeros, zeros, t))
    group = make_group(make_step(grad, names, optimizer, lr, jnp.asarray(x), jnp.asarray(y)), seeds)
    out = Trained()
    compiled = {}
    for idx in _groups(blocks):
        shape = idx.shape
        if shape not in compiled:
            t0 = time.perf_counter()
            compiled[shape] = group.lower(carry, idx).compile()
            out.compile_seconds += time.perf_counter() - t0
        carry, stacked = compiled[shape](carry, idx)
        stacked = jax.device_get(stacked)
        for k in range(shape[0]):
            out.snapshots.append({n: np.asarray(stacked[n][k]) for n in PARAMS})
        if progress is not None:
            progress.update(int(np.prod(shape[:2])) * (shape[2] if seeds else 1))
    return out


def _groups(blocks):
    """Consecutive blocks of one shape stacked, at most GROUP_INDICES indices a group (int32)."""
    pending = []
    for idx in blocks:
        idx = np.asarray(idx, dtype=np.int32)
        if pending and (idx.shape != pending[0].shape or (len(pending) + 1) * idx.size > GROUP_INDICES):
            yield jnp.asarray(np.stack(pending))
            pending = []
        pending.append(idx)
    if pending:
        yield jnp.asarray(np.stack(pending))
