"""Expressions as SymPy matrix expressions, for users who want to keep working in SymPy.

Vectors become n×1 MatrixSymbols, ⊙ a HadamardProduct, an elementwise function an
ElementwiseApplyFunction of a named SymPy function (relu, relu', Phi', …). This is a
view for display and further algebra: symbackprop never differentiates through it.
"""
from __future__ import annotations

import sympy
from sympy import matrices as M
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from .expr import Node, walk

_t = sympy.Dummy("t")


def _symbol_for(node: Node):
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


def to_sympy(root: Node, names: dict[Node, str] | None = None):
    """`root` as a SymPy (matrix) expression; nodes in `names` become symbols of that name."""
    names = names or {}
    done: dict[Node, object] = {}
    for node in walk(root, stop=names):
        if node in names and node is not root:
            done[node] = _symbol_for(Node("var", (), (names[node],), node.shape))
            continue
        a = [done[x] for x in node.args]
        op = node.op
        if op == "var":
            e = _symbol_for(node)
        elif op == "const":
            e = node.attrs[0]
        elif op in ("zeros", "ones"):
            r, c = _shape_of(node)
            e = M.ZeroMatrix(r, c) if op == "zeros" else M.OneMatrix(r, c)
        elif op == "eye":
            e = M.Identity(node.shape[0])
        elif op == "add":
            x, y = _broadcast_scalar(a, node)
            e = x + y
        elif op == "sub":
            x, y = _broadcast_scalar(a, node)
            e = x - y
        elif op == "neg":
            e = -a[0]
        elif op == "mul":
            e = _mul(a[0], a[1])
        elif op == "div":
            e = a[0] / a[1] if not _is_matrix(a[1]) else M.HadamardProduct(a[0], M.HadamardPower(a[1], -1))
        elif op == "pow":
            e = M.HadamardPower(a[0], a[1]) if _is_matrix(a[0]) else a[0] ** a[1]
        elif op in ("matmul", "outer"):
            e = a[0] * (a[1].T if op == "outer" else a[1])
        elif op == "dot":
            e = _scalar_of(a[0].T * a[1])
        elif op == "T":
            e = a[0].T
        elif op == "inv":
            e = M.Inverse(a[0])
        elif op == "det":
            e = M.Determinant(a[0])
        elif op == "logdet":
            e = sympy.log(M.Determinant(a[0]))
        elif op == "trace":
            e = M.Trace(a[0])
        elif op == "sqnorm":
            e = _scalar_of(a[0].T * a[0]) if node.args[0].ndim == 1 else M.Trace(a[0].T * a[0])
        elif op == "norm":
            e = sympy.sqrt(_scalar_of(a[0].T * a[0]) if node.args[0].ndim == 1 else M.Trace(a[0].T * a[0]))
        elif op == "rows":                              # 𝟙 vᵀ
            e = M.OneMatrix(node.shape[0], 1) * a[0].T
        elif op == "matrix_power":
            e = M.MatPow(a[0], node.attrs[0])
        elif op in ("maximum", "minimum"):
            if not _is_matrix(a[0]) and not _is_matrix(a[1]):
                e = (sympy.Max if op == "maximum" else sympy.Min)(a[0], a[1])
            else:                                       # max(a, b) = (a + b + |a − b|)/2, entrywise
                r, c = _shape_of(node)
                full = [x if _is_matrix(x) else x * M.OneMatrix(r, c) for x in a]
                gap = ElementwiseApplyFunction(sympy.Lambda(_t, sympy.Abs(_t)), full[0] - full[1])
                e = (full[0] + full[1] + (gap if op == "maximum" else -gap)) / 2
        elif op == "logsumexp_rows":                    # a named column: logsumexp of each row
            e = M.MatrixSymbol(f"logsumexp_rows({sympy.sstr(a[0])})", node.shape[0], 1)
        elif op == "phi":
            e = _ew(node.attrs[0] + "'" * node.attrs[1], a[0])
        elif op == "fn":
            name, partials = node.attrs
            label = name if not partials else f"D{''.join(str(i + 1) for i in partials)}{name}"
            e = sympy.Function(label)(*a)
        elif node.ndim and len(a) == 1 and node.shape == node.args[0].shape:
            e = _ew(op, a[0])                          # elementwise functions and their derivatives
        else:
            e = sympy.Function(op)(*a)                 # sum, mean, softmax, logsumexp, diag: named functions
        done[node] = e
    return done[root]
