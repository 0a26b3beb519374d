"""Expressions as SymPy matrix expressions, for users who want to keep working in SymPy.

Vectors become n×1 MatrixSymbols, ⊙ a HadamardProduct, a scalar made from arrays the Trace of a
1×1 product (xᵀy is Trace(x.T*y)), an elementwise function an ElementwiseApplyFunction; the
conventions are listed in rules_sympy. Named nodes (the user's intermediates, the step names x1,
x2, … and shared t1, …) become symbols; `bindings` defines them in SymPy terms, and `inline`
substitutes them, so that an expression can be evaluated from the inputs alone. symbackprop
never differentiates through this view.
"""
from __future__ import annotations

from . import expr as E
from .expr import Node, walk
from .rules_sympy import is_macro, symbol_for, sympy_rule


def to_sympy(root: Node, names: dict[Node, str] | None = None, known: dict | None = None, define: bool = True):
    """`root` as a SymPy (matrix) expression; nodes in `names` become symbols of that name (`root` too
    unless `define`), nodes in `known` the SymPy expressions given there."""
    names = names or {}
    done: dict[Node, object] = dict(known or {})
    _convert(root, names, done, define=root if define else None)
    return done[root]


def _convert(root: Node, names: dict[Node, str], done: dict, define: Node | None = None) -> None:
    for node in walk(root, stop={**names, **done} if done else names):
        if node in done:
            continue
        if node in names and node is not define:
            done[node] = symbol_for(E.var(names[node], node.shape))
        elif is_macro(node.op):                  # relu'(z), tanh'(z): their expansion, over the same names
            expansion = E.RULES[node.op].expand(node)
            _convert(expansion, names, done)
            done[node] = done[expansion]
        else:
            done[node] = sympy_rule(node.op)(node, [done[x] for x in node.args])


def bindings(d, roots=None, names=None) -> dict:
    """{symbol: SymPy definition} of the names that the SymPy forms of `roots` (default: a Derivation's
    gradients) use, in forward order: each definition refers to the inputs and to symbols defined before it."""
    roots = list(d.grads.values()) if roots is None else roots
    names = d.result_names(roots) if names is None else names
    return {symbol_for(E.var(name, node.shape)): to_sympy(node, names) for name, node in d.defined_nodes(names, roots)}


def inline(expr, bindings: dict):
    """`expr` with every symbol of `bindings` replaced by its definition, recursively: an expression of
    the inputs alone. (Its size can grow with each level of sharing the names saved.)"""
    for symbol, definition in reversed(list(bindings.items())):
        expr = expr.xreplace({symbol: definition})
    return expr


def numeric(expr, values: dict, bindings: dict | None = None, shapes: dict | None = None):
    """The value of a SymPy view `expr` at `values` ({name: number or array}, vectors 1-D as in formulas),
    after the names of `bindings` (evaluated in order): a float, or a NumPy array shaped as in formulas.

    SymPy's own semantics of each node decide (its doit/as_explicit, evaluated bottom up, since SymPy
    1.14's doit alone leaves products with 𝟙 and Hadamard powers of explicit matrices unevaluated). The
    symbolic dims are read off the arrays' shapes, those of `shapes` ({name: dims}) included."""
    import numpy as np
    import sympy
    from sympy import matrices as M
    env: dict = {}
    for name, shape in (shapes or {}).items():
        if name in values:
            env.update({d: sympy.Integer(n) for d, n in zip(shape, np.shape(values[name])) if isinstance(d, sympy.Symbol)})
    symbols = {s.name: s for e in [expr, *(bindings or {}).values()]
               for s in sympy.preorder_traversal(e) if isinstance(s, (M.MatrixSymbol, sympy.Symbol))
               and not isinstance(s, sympy.Dummy)}
    for name, value in values.items():
        s = symbols.get(name)
        if s is None:
            continue
        v = np.asarray(value, dtype=float)
        if isinstance(s, M.MatrixSymbol):
            v = v.reshape(v.shape[0], -1) if v.ndim else v.reshape(1, 1)
            for dim, size in zip(s.shape, v.shape):
                if isinstance(dim, sympy.Symbol):
                    env[dim] = sympy.Integer(size)
            env[s] = sympy.ImmutableMatrix(v.tolist()).applyfunc(sympy.Float)
        else:
            env[s] = sympy.Float(float(v))
    for symbol, definition in (bindings or {}).items():
        env[symbol] = explicit(definition.xreplace(env))
    out = explicit(expr.xreplace(env))
    if isinstance(out, M.MatrixBase):
        arr = np.array(out.tolist(), dtype=float)
        return arr[:, 0] if arr.shape[1] == 1 else arr          # a column is a vector (the view's only columns)
    return float(out)


def explicit(expr):
    """`expr`, its symbols already replaced by numbers and explicit matrices, as a number or an explicit
    ImmutableMatrix: bottom up, each matrix node through SymPy's doit and as_explicit, each scalar through doit."""
    import sympy
    from sympy import matrices as M
    memo: dict = {}

    def go(e):
        if e in memo:
            return memo[e]
        if isinstance(e, sympy.Lambda):
            r = sympy.Lambda(e.signature, e.expr.doit())
        elif isinstance(e, M.MatrixBase) or not e.args:
            r = e
        else:
            args = [go(a) for a in e.args]
            r = e.func(*args) if any(x is not y for x, y in zip(args, e.args)) else e
            if isinstance(r, M.MatrixExpr):
                r = r.doit()
                if not isinstance(r, M.MatrixBase):
                    r = r.as_explicit()
                r = sympy.ImmutableMatrix(r).applyfunc(lambda v: v.doit())
            elif isinstance(r, sympy.Basic) and not r.is_Atom:
                r = r.doit()
        memo[e] = r
        return r
    return go(expr)
