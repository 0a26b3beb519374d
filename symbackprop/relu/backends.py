"""Which library runs the training loop (`relu --backend`): NumPy here, JAX and PyTorch in their own
modules (backend_jax, backend_torch), imported only when asked for.

Every backend trains with the generated gradient module of the mode (for JAX the same formula printed
by `codegen --target array-api`, for PyTorch by `codegen --target torch`), on the notebook's seeded
minibatches in the same order, with the same optimizer formulas (train._Optimizer), so in float64 a
trajectory follows the NumPy run. A backend module has one entry point:

    run_blocks(mode, names, optimizer, lr, init, blocks, x, y, progress) -> Trained

`init` maps w, b, v, c to NumPy arrays (a leading seed axis when seeds are stacked); `blocks` yields
the minibatch indices one snapshot block at a time, (n, B) or (n, S, B) for S stacked seeds.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..errors import SymbackpropError, require_extra

BACKENDS = ("numpy", "jax", "torch")
#: backend -> (module under symbackprop.relu, the optional extra, the packages it imports)
_EXTRAS = {"jax": ("backend_jax", "jax", ["jax", "array_api_compat"]),
           "torch": ("backend_torch", "torch", ["torch"])}


@dataclass
class Trained:
    """What a backend returns: the parameters after each block (NumPy arrays, keyed w, b, v, c), and the
    seconds spent compiling (jax.jit, torch.compile), included in the run's time and stated apart."""

    snapshots: list = field(default_factory=list)
    compile_seconds: float = 0.0


def load(backend: str):
    """The backend's module; a clean error (exit 2) naming the extra when its library is missing."""
    if backend not in BACKENDS:
        raise SymbackpropError(f"unknown backend {backend!r}", hint="one of " + ", ".join(BACKENDS))
    module, extra, packages = _EXTRAS[backend]
    require_extra(extra, packages, f"--backend {backend}")
    return importlib.import_module(f"{__package__}.{module}")
