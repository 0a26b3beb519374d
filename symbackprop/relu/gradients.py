"""Where training gets its gradients: the generated modules in generated/ (nothing else).

The checked-in module is loaded by path from the checkout's generated/ folder. Where there is
none (an installed wheel ships no generated/), the same module is emitted in memory by
symbackprop.emit from the same formula and options: the test suite checks that the two are
byte for byte the same, so both paths run the same code.

Stacked seeds (--seeds N) use the "seeds" variants: the same loss written for one net with its
minibatch as vectors (x, y: (B,)), every input batched, so N nets are one batch of N rows."""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np

from ..catalog import BY_NAME, MODULES as CATALOG
from ..errors import SymbackpropError
from ..files import load_file

#: module name -> (formula, shapes, batched inputs, variables it differentiates): the ReLU nets of
#: symbackprop.catalog, the one list of generated modules.
MODULES = {m.name: (m.formula, m.shapes, m.batch, m.wrt) for m in CATALOG if m.name.startswith("relu_net")}
#: mode -> (module, trained variables). Order w, b, v, c, so each mode trains a contiguous slice.
MODES = {"all": ("relu_net", ("w", "b", "v", "c")),
         "hidden": ("relu_net", ("w", "b")),
         "output": ("relu_net_output", ("v", "c"))}


def regenerate_command(name: str) -> str:
    return BY_NAME[name].command


def emit_source(name: str, target: str = "numpy") -> str:
    """The module's source, emitted now by symbackprop.emit (what `regenerate_command` writes; with
    target="array-api", what `codegen --target array-api` writes for the same formula)."""
    from ..emit import emit_module
    from ..parse import parse_formula

    formula, shapes, batch, wrt = MODULES[name]
    if target == "numpy":
        return emit_module(parse_formula(formula, list(shapes)), wrt=list(wrt), batch=list(batch),
                           command=regenerate_command(name))
    return emit_module(parse_formula(formula, list(shapes)), wrt=list(wrt), batch=list(batch), target=target)


def checked_in(name: str) -> Path | None:
    """The checked-in file for module `name`: $SYMBACKPROP_GENERATED, then the checkout's generated/."""
    env = os.environ.get("SYMBACKPROP_GENERATED")
    here = Path(__file__).resolve().parent
    for folder in ([Path(env)] if env else []) + [here.parents[1] / "generated"]:
        if (folder / f"{name}.py").is_file():
            return folder / f"{name}.py"
    return None


_LOADED: dict[str, types.ModuleType] = {}


def load_module(name: str) -> types.ModuleType:
    """The generated module `name` (e.g. "relu_net"): the checked-in file, else emitted in memory."""
    if name in _LOADED:
        return _LOADED[name]
    if name not in MODULES:
        raise SymbackpropError(f"unknown generated module {name!r}", hint="one of " + ", ".join(MODULES))
    path = checked_in(name)
    modname = f"symbackprop_generated_{name}"
    if path is not None:
        module = load_file(path, modname)
    else:
        from ..emit import load_source
        module = load_source(emit_source(name), modname)
    sys.modules.setdefault(modname, module)
    _LOADED[name] = module
    return module


def target_module(name: str, target: str = "array-api") -> types.ModuleType:
    """The module of `name` (e.g. "relu_net") for another array library: the same formula and options as
    the NumPy module, printed for the array API standard (`codegen --target array-api`), so one file runs
    on JAX and PyTorch arrays; with target="torch", printed in PyTorch's own functions (`--target torch`).
    The checked-in generated/<name>_<target>.py where there is one, else emitted in memory."""
    key = name + "_" + target.replace("-", "_")
    if key in _LOADED:
        return _LOADED[key]
    if name not in MODULES:
        raise SymbackpropError(f"unknown generated module {name!r}", hint="one of " + ", ".join(MODULES))
    path = checked_in(key)
    modname = f"symbackprop_generated_{key}"
    if path is not None:
        module = load_file(path, modname)
    else:
        from ..emit import load_source
        module = load_source(emit_source(name, target), modname)
    sys.modules.setdefault(modname, module)
    _LOADED[key] = module
    return module


def value_and_grad_for(mode: str, seeds: bool = False):
    """(value_and_grad, trained variable names) for a training mode ("all", "hidden", "output");
    with `seeds`, a function taking parameters stacked on a leading seed axis."""
    name, names = MODES[mode]
    if not seeds:
        return load_module(name).value_and_grad, names
    return SeedStack(load_module(name + "_seeds").value_and_grad, names), names


def grad_for(mode: str, seeds: bool = False):
    """(grad, trained variable names): the generated module's grad(**inputs) -> {name: gradient}
    (value_and_grad without the value), what the training loops call."""
    name, names = MODES[mode]
    if not seeds:
        return load_module(name).grad, names
    return SeedStack(load_module(name + "_seeds").grad, names, with_value=False), names


class SeedStack:
    """value_and_grad over S stacked nets (w: (S, h), c: (S,), x: (S, B)), from a module whose every
    input is batched: one generated call; the batch mean over nets is undone (× S), so each net gets
    the gradient of its own minibatch MSE."""

    def __init__(self, stacked_value_and_grad, names, with_value: bool = True):
        self.vag, self.names, self.ones, self.with_value = stacked_value_and_grad, names, None, with_value

    def __call__(self, w, b, v, c, x, y):
        S = x.shape[0]
        if self.ones is None or self.ones.shape != x.shape:
            self.ones = np.ones(x.shape)
        out = self.vag(w=w, b=b, v=v, c=c, x=x, y=y, o=self.ones)
        value, g = out if self.with_value else (None, out)
        for n in self.names:
            g[n] *= S
        return (value * S, g) if self.with_value else g
