"""SymPy conversion rules, one entry per operator of the rule table (rules.RULES).

`SYMPY[op](node, args)` maps a node and its arguments, already converted, to a SymPy (matrix)
expression; `SCALAR[op](node, args)` does the same for scalar algebra (scalar.py), where every
symbol is real. Elementwise rules (kind="elementwise") need no entry in SYMPY: they become an
ElementwiseApplyFunction of a named function (relu, relu', …). In SCALAR only the arithmetic
and the elementwise functions marked `canonical` have entries.
"""
from __future__ import annotations

import sympy
from sympy import matrices as M
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from .expr import Node
from .rules import ELEMENTWISE, RULES, behaviour

_t = sympy.Dummy("t")


def symbol_for(node: Node):
    name = node.attrs[0]
    if node.shape == ():
        return sympy.Symbol(name)
    rows, cols = (node.shape + (1,))[:2]
    return M.MatrixSymbol(name, rows, cols)


def _is_matrix(e) -> bool:
    return isinstance(e, M.MatrixExpr)


def _ew(name: str, arg):
    f = sympy.Function(name)
    return ElementwiseApplyFunction(sympy.Lambda(_t, f(_t)), arg) if _is_matrix(arg) else f(arg)


def _scalar_of(e):
    """A 1×1 matrix expression as a scalar."""
    return e[0, 0] if _is_matrix(e) else e


def _shape_of(node: Node):
    return (node.shape + (1,))[:2] if node.shape else None


def _mul(a, b):
    if _is_matrix(a) and _is_matrix(b):
        return M.HadamardProduct(a, b)
    return a * b


def _broadcast_scalar(a, node: Node):
    """A scalar added to a matrix stands for the scalar times the all-ones matrix (NumPy broadcasting)."""
    if _is_matrix(a[0]) == _is_matrix(a[1]) or not node.shape:
        return a
    r, c = _shape_of(node)
    return [x if _is_matrix(x) else x * M.OneMatrix(r, c) for x in a]


def _add(node, a):
    x, y = _broadcast_scalar(a, node)
    return x + y


def _sub(node, a):
    x, y = _broadcast_scalar(a, node)
    return x - y


def _extreme(scalar_fn, sign):
    def convert(node, a):
        if not _is_matrix(a[0]) and not _is_matrix(a[1]):
            return scalar_fn(a[0], a[1])
        r, c = _shape_of(node)                          # max(a, b) = (a + b + |a − b|)/2, entrywise
        full = [x if _is_matrix(x) else x * M.OneMatrix(r, c) for x in a]
        gap = ElementwiseApplyFunction(sympy.Lambda(_t, sympy.Abs(_t)), full[0] - full[1])
        return (full[0] + full[1] + sign * gap) / 2
    return convert


def _sq(node, a):
    return _scalar_of(a[0].T * a[0]) if node.args[0].ndim == 1 else M.Trace(a[0].T * a[0])


def named_function(node, a):
    """A same-shaped one-argument op as an elementwise-looking function, anything else as a named
    function of its arguments (sum, mean, softmax, logsumexp, diag, …)."""
    if node.ndim and len(a) == 1 and node.shape == node.args[0].shape:
        return _ew(node.op, a[0])
    return sympy.Function(node.op)(*a)


def _fn(node, a):
    name, partials = node.attrs
    label = name if not partials else f"D{''.join(str(i + 1) for i in partials)}{name}"
    return sympy.Function(label)(*a)


SYMPY = {
    # ----- leaves -----
    "var": lambda node, a: symbol_for(node),
    "const": lambda node, a: node.attrs[0],
    "zeros": lambda node, a: M.ZeroMatrix(*_shape_of(node)),
    "ones": lambda node, a: M.OneMatrix(*_shape_of(node)),
    "eye": lambda node, a: M.Identity(node.shape[0]),
    # ----- arithmetic -----
    "add": _add,
    "sub": _sub,
    "neg": lambda node, a: -a[0],
    "mul": lambda node, a: _mul(a[0], a[1]),
    "div": lambda node, a: (a[0] / a[1] if not _is_matrix(a[1]) else
                            M.HadamardProduct(a[0], M.HadamardPower(a[1], -1))),
    "pow": lambda node, a: M.HadamardPower(a[0], a[1]) if _is_matrix(a[0]) else a[0] ** a[1],
    "maximum": _extreme(sympy.Max, 1),
    "minimum": _extreme(sympy.Min, -1),
    "rows": lambda node, a: M.OneMatrix(node.shape[0], 1) * a[0].T,          # 𝟙 vᵀ
    # ----- linear algebra -----
    "matmul": lambda node, a: a[0] * a[1],
    "outer": lambda node, a: a[0] * a[1].T,
    "dot": lambda node, a: _scalar_of(a[0].T * a[1]),
    "T": lambda node, a: a[0].T,
    "inv": lambda node, a: M.Inverse(a[0]),
    "det": lambda node, a: M.Determinant(a[0]),
    "logdet": lambda node, a: sympy.log(M.Determinant(a[0])),
    "trace": lambda node, a: M.Trace(a[0]),
    "matrix_power": lambda node, a: M.MatPow(a[0], node.attrs[0]),
    "diag": named_function,
    "pinv": lambda node, a: sympy.Function("pinv")(a[0]),
    # ----- reductions -----
    "sqnorm": _sq,
    "norm": lambda node, a: sympy.sqrt(_sq(node, a)),
    "logsumexp_rows": lambda node, a: M.MatrixSymbol(f"logsumexp_rows({sympy.sstr(a[0])})", node.shape[0], 1),
    **{op: named_function for op in ("sum", "mean", "softmax", "logsumexp", "softmax_rows", "max", "min",
                                     "maxmask", "minmask")},
    # ----- abstract functions -----
    "phi": lambda node, a: _ew(node.attrs[0] + "'" * node.attrs[1], a[0]),
    "fn": _fn,
}


def sympy_rule(op: str):
    """The SymPy conversion of `op` (elementwise rules: a named elementwise function)."""
    if RULES[op].kind == "elementwise" and op not in SYMPY:
        return lambda node, a: _ew(op, a[0])
    return behaviour(SYMPY, op, "SymPy conversion")


# ----- scalar algebra (scalar.py): real symbols, arithmetic and the canonical elementwise functions -----

SCALAR = {
    "var": lambda node, a: sympy.Symbol(node.attrs[0], real=True),
    "const": lambda node, a: node.attrs[0],
    "add": lambda node, a: a[0] + a[1],
    "sub": lambda node, a: a[0] - a[1],
    "mul": lambda node, a: a[0] * a[1],
    "div": lambda node, a: a[0] / a[1],
    "pow": lambda node, a: a[0] ** a[1],
    "neg": lambda node, a: -a[0],
    **{name: (lambda f: lambda node, a: f(a[0]))(spec.sympy) for name, spec in ELEMENTWISE.items() if spec.canonical},
}
#: SymPy function class -> elementwise op, for the way back (sqrt comes back as a power: see scalar.py).
SCALAR_BACK = {spec.sympy: name for name, spec in ELEMENTWISE.items()
               if spec.canonical and isinstance(spec.sympy, sympy.FunctionClass)}
SQRT = next(name for name, spec in ELEMENTWISE.items() if spec.sympy is sympy.sqrt)
