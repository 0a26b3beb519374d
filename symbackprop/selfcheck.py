"""The self-check of a generated module (codegen's last stage): import it and compare its gradients
with central finite differences of its own forward, as `gradcheck` would, before anything is written."""
from __future__ import annotations


from .derivation import Derivation
from .errors import InternalError
from .files import load_source
from .parse import Program


# ----- the self-check of a generated module (what `gradcheck` would do, before anything is written) -----

#: Examples per batched input in the self-check's point; points tried before the check is skipped.
CHECK_BATCH = 3
CHECK_POINTS = 2
#: Points where the objective or a gradient is larger than this are not used: central differences of
#: values near the float64 limit (x * 1e308) overflow, and say nothing about the module.
MAX_MAGNITUDE = 1e250


def check_module(source: str, d: Derivation, seed: int = 0) -> str | None:
    """Import the module `source`, and compare its value_and_grad with central finite differences of
    its forward, and its hvp/hessian (if any) with differences of its value_and_grad (check_grads and
    check_second_order of symbackprop.testing, as `gradcheck` does) at a random point where the
    formula is finite. A gradient that disagrees at every point tried, or a module that raises,
    is an InternalError (exit 3): `codegen` never writes a module that `gradcheck` would reject.
    Returns a note when no usable point was found (nothing checked), else None. Cost: one import
    and a few forward calls per input."""
    import numpy as np
    from .testing import check_grads, check_second_order, on_numpy
    module = on_numpy(load_source(source, "symbackprop_selfcheck", keep=False))
    rng = np.random.default_rng(seed)
    failing = None
    for _ in range(CHECK_POINTS):
        inputs = _check_point(d.program, module, rng, list(d.grads.values()))
        if inputs is None:
            break
        try:
            with np.errstate(all="ignore"):
                if not np.isfinite(module.forward(**inputs)):
                    continue                         # e.g. inv of a nearly singular mix: not a usable point
                results = check_grads(module, inputs=inputs, seed=int(rng.integers(2**31)))
                second = check_second_order(module, inputs=inputs, seed=int(rng.integers(2**31)))
        except np.linalg.LinAlgError:
            continue
        except Exception as e:                       # the module itself is broken
            raise InternalError(f"self-check of the generated module failed: calling it raised "
                                f"{type(e).__name__}: {e}; it was not written. This is a bug in symbackprop; "
                                f"please report it with the formula, shapes and options.") from None
        bad = {f"gradient with respect to `{name}`" for name, r in results.items() if not r.ok}
        bad |= {f"{fn}() with respect to `{name}`" for fn, rs in second.items() for name, r in rs.items() if not r.ok}
        failing = bad if failing is None else failing & bad
        if not failing:
            return None
    if failing is None:
        return "the module was not checked numerically: no random point was found where the formula and its gradients are finite"
    what = sorted(failing)[0]
    against = "its own value_and_grad()" if "()" in what else "its own forward()"
    raise InternalError(f"self-check of the generated module failed: its {what} disagrees with central "
                        f"finite differences of {against}, so it was not written. This is a bug in "
                        f"symbackprop; please report it with the formula, shapes and options.")


def _check_point(program: Program, module, rng, grads=()):
    """Inputs for the module where the formula and the derivation's gradients `grads` are finite: one
    random point, drawn as derive's self-check draws them (so `x * 1e308` is not checked where its
    gradient overflows); batched inputs get CHECK_BATCH examples that differ, each finite together with
    the shared inputs (a repeat of the first example where none is found)."""
    import numpy as np
    from .evaluate import Point, evaluate, find_point, finite, random_point
    for _ in range(3):                               # values near overflow: differences of them overflow
        first, vals = find_point(program, rng, [program.objective] + list(grads))
        if first is None:
            return None
        if all(np.max(np.abs(np.asarray(v, dtype=float)), initial=0.0) < MAX_MAGNITUDE for v in vals):
            break
    else:
        return None
    examples = [first]
    for _ in range(CHECK_BATCH - 1 if module.BATCHED else 0):
        for scheme in range(3):
            other = random_point(program, rng, scheme=scheme, dims=first.dims)
            mix = Point(first.dims, {**first.values, **{n: other.values[n] for n in module.BATCHED}},
                        first.functions)
            if finite(evaluate([program.objective], mix)[0]):
                examples.append(mix)
                break
        else:
            examples.append(first)
    inputs = {}
    for name in module.INPUTS:
        values = [np.asarray(p.values[name], dtype=float) for p in examples]
        v = np.stack(values) if name in module.BATCHED else values[0]
        inputs[name] = float(v) if v.ndim == 0 else v
    return inputs

