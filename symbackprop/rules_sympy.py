"""SymPy conversion rules, one entry per operator of the rule table (rules.RULES).

`SYMPY[op](node, args)` maps a node and its arguments, already converted, to a SymPy (matrix)
expression; `SCALAR[op](node, args)` does the same for scalar algebra (scalar.py), where every
symbol is real. In SCALAR only the arithmetic and the elementwise functions marked `canonical`
have entries.

The matrix view uses SymPy's own vocabulary wherever it has a word (MatMul, HadamardProduct,
HadamardPower, Trace, Inverse, Determinant, DiagMatrix, DiagonalOf, OneMatrix, an
ElementwiseApplyFunction of a SymPy function), so SymPy's printers, `.diff` and `.as_explicit()`
read it, and sympy_bridge.numeric evaluates it with SymPy's own semantics. Conventions:

- a vector is an n×1 column (MatrixSymbol(x, n, 1)); `.T` of a vector is the vector itself;
- a scalar made from arrays is the Trace of a 1×1 matrix expression, `Trace(x.T*y)` for xᵀy and
  `Trace(1*X*1)` (𝟙ᵀX𝟙) for sum(X): a commutative scalar that stays a matrix product (an entry
  `(x.T*y)[0, 0]` would expand into an index Sum as soon as it meets a matrix);
- softmax and logsumexp are written out: softmax(z) = exp.(z)/(𝟙ᵀexp.(z)), logsumexp(z) =
  log(𝟙ᵀexp.(z)), row-wise with DiagMatrix;
- elementwise functions without a SymPy name (relu, step, sigmoid, softplus) are SymPy Functions
  of that name (ELEMENTWISE_FUNCTIONS) that evaluate at numbers and differentiate by the rule
  table; a derivative macro (relu', tanh', …) is written as its expansion (step, 1 − tanh², …);
- an abstract function is an undefined SymPy Function, its derivatives Subs(Derivative(…)) as
  sympy.diff writes them;
- what SymPy has no matrix expression for (max, min and their subgradients, pinv) is a small
  class here that evaluates on an explicit matrix (MaxEntry, MinEntry, MaxMask, MinMask, Pinv).
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
    return isinstance(e, (M.MatrixExpr, M.MatrixBase))


def _explicit(e) -> bool:
    return isinstance(e, M.MatrixBase)


# ----- what SymPy has no matrix expression for: small classes that evaluate on explicit matrices -----

class _EntryScalar(sympy.Function):
    """A real scalar function of a matrix (its largest or smallest entry); a number once the matrix is explicit."""
    is_commutative = True
    is_real = True
    _pick = None

    @classmethod
    def eval(cls, m):
        if _explicit(m):
            return cls._pick(*m)


class MaxEntry(_EntryScalar):
    """max(X): the largest entry of X."""
    _pick = sympy.Max


class MinEntry(_EntryScalar):
    """min(X): the smallest entry of X."""
    _pick = sympy.Min


class _Unary(M.MatrixExpr):
    """A matrix function of one matrix that SymPy lacks; `_value(explicit)` gives its entries."""

    def __new__(cls, arg):
        return super().__new__(cls, sympy.sympify(arg))

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return self.arg.shape

    def doit(self, **hints):
        arg = self.arg.doit(**hints) if hints.get("deep", True) else self.arg
        if isinstance(arg, M.MatrixExpr) and not _explicit(arg):
            try:
                arg = arg.as_explicit()
            except (ValueError, TypeError):     # symbolic sizes: nothing to evaluate yet
                return type(self)(arg)
        return self._value(sympy.ImmutableMatrix(arg)) if _explicit(arg) else type(self)(arg)

    def as_explicit(self):
        out = self.doit()
        if not _explicit(out):
            raise ValueError(f"{self} has no explicit form while its argument's size is symbolic")
        return out

    def _entry(self, i, j, **kwargs):
        return self.as_explicit()[i, j]


class _Mask(_Unary):
    """The subgradient of max (min) of a matrix: 1/t at the t entries equal to the max (min), 0 elsewhere."""
    _pick = None

    def _value(self, m):
        best = self._pick(*m)
        hits = m.applyfunc(lambda e: sympy.S.One if e == best else sympy.S.Zero)
        return sympy.ImmutableMatrix(hits / sum(hits))

    def _eval_transpose(self):
        return type(self)(self.arg.T)


class MaxMask(_Mask):
    """∇max(X): 1/t where X attains its max (t entries), 0 elsewhere."""
    _pick = sympy.Max


class MinMask(_Mask):
    """∇min(X): 1/t where X attains its min (t entries), 0 elsewhere."""
    _pick = sympy.Min


class Pinv(_Unary):
    """pinv(A): the Moore–Penrose pseudo-inverse, n×m for an m×n A."""

    @property
    def shape(self):
        return self.arg.shape[::-1]

    def _value(self, m):
        return sympy.ImmutableMatrix(m.pinv())

    def _eval_transpose(self):
        return Pinv(self.arg.T)


class DiagonalOf(M.DiagonalOf):
    """diag(X) of a square X as a k×1 column: SymPy's DiagonalOf, whose shape also works once X is an
    explicit matrix (SymPy 1.14's DiagonalOf.shape fails on an ImmutableMatrix's int sizes)."""

    @property
    def shape(self):
        r, c = (sympy.sympify(d) for d in self.arg.shape)
        if r.is_Integer and c.is_Integer:
            return min(r, c), sympy.S.One
        return (c if c.is_Integer else r), sympy.S.One          # diag() takes square matrices: r == c


# ----- elementwise functions -----

def _named_function(name: str, definition):
    """A SymPy Function `name` (relu, sigmoid, …): `definition(t)` at numbers and under
    `.rewrite(Piecewise)`, and the rule table's derivative in `fdiff` (so sympy.diff(relu(t), t) is step(t))."""

    def eval(cls, x):
        if x.is_Number:
            return definition(x)

    def fdiff(self, argindex=1):
        from . import expr as E
        from .sympy_bridge import to_sympy
        t = E.var("t", ())
        d = ELEMENTWISE[name].d(t, Node(name, (t,)))
        return to_sympy(d).xreplace({sympy.Symbol("t"): self.args[0]})

    def _eval_rewrite_as_Piecewise(self, x, **kwargs):
        return definition(x)

    return type(name, (sympy.Function,), {"eval": classmethod(eval), "fdiff": fdiff, "is_real": True,
                                          "_eval_rewrite_as_Piecewise": _eval_rewrite_as_Piecewise,
                                          "__doc__": f"{name}, entry by entry: {definition(sympy.Symbol('t'))}"})


#: The SymPy function of each elementwise built-in: SymPy's own where it has one (sin, tanh, sign, Abs, erf,
#: sqrt as a power, …), else a named Function (relu, step, sigmoid, softplus).
ELEMENTWISE_FUNCTIONS = {
    name: (spec.sympy if isinstance(spec.sympy, sympy.FunctionClass) or spec.canonical
           else _named_function(name, spec.sympy))
    for name, spec in ELEMENTWISE.items()}


def _apply(f, arg):
    """f of a scalar, or f entry by entry (ElementwiseApplyFunction) of a matrix."""
    if not _is_matrix(arg):
        return f(arg)
    fn = f if isinstance(f, (sympy.FunctionClass, sympy.Lambda)) else sympy.Lambda(_t, f(_t))
    return ElementwiseApplyFunction(fn, arg)


def _elementwise(name: str):
    f = ELEMENTWISE_FUNCTIONS[name]
    return lambda node, a: _apply(f, a[0])


# ----- helpers -----

def scalar_of(e):
    """A 1×1 matrix expression as a scalar: its trace (a commutative scalar that keeps the matrix product)."""
    return M.Trace(e) if _is_matrix(e) else e


def _shape_of(node: Node):
    return (node.shape + (1,))[:2] if node.shape else None


def _sum_all(e):
    """𝟙ᵀ E 𝟙 as a scalar (𝟙ᵀ e for a column)."""
    r, c = e.shape
    return scalar_of(M.OneMatrix(1, r) * e if c == 1 else M.OneMatrix(1, r) * e * M.OneMatrix(c, 1))


def _full(x, node: Node):
    """A scalar broadcast to `node`'s shape: x·𝟙 (NumPy broadcasting)."""
    return x if _is_matrix(x) else x * M.OneMatrix(*_shape_of(node))


def _pair(node, a):
    """Both operands as matrices when either is one (a scalar broadcasts), else both scalars."""
    if node.shape and not (_is_matrix(a[0]) and _is_matrix(a[1])):
        return [_full(x, node) for x in a]
    return list(a)


def _mul(node, a):
    if _is_matrix(a[0]) and _is_matrix(a[1]):
        return M.HadamardProduct(a[0], a[1])
    return a[0] * a[1]


def _div(node, a):
    x, y = a
    if not _is_matrix(y):
        return x / y
    recip = M.HadamardPower(y, -1)
    return M.HadamardProduct(x, recip) if _is_matrix(x) else x * recip


def _pow(node, a):
    x, p = a
    return M.HadamardPower(x, p) if _is_matrix(x) or _is_matrix(p) else x ** p


def _extreme(scalar_fn, sign):
    def convert(node, a):
        if not _is_matrix(a[0]) and not _is_matrix(a[1]):
            return scalar_fn(a[0], a[1])
        x, y = _pair(node, a)                           # max(a, b) = (a + b + |a − b|)/2, entrywise
        return (x + y + sign * _apply(sympy.Abs, x - y)) / 2
    return convert


def _sq(node, a):
    return scalar_of(a[0].T * a[0]) if node.args[0].ndim == 1 else M.Trace(a[0].T * a[0])


def _transpose(node, a):
    return a[0].T if node.ndim == 2 else a[0]           # .T of a vector does nothing, as in NumPy


def _diag(node, a):
    return M.DiagMatrix(a[0]) if node.ndim == 2 else DiagonalOf(a[0])


def _mean(node, a):
    r, c = a[0].shape
    return _sum_all(a[0]) / (r * c)


def _exp(e):
    return _apply(sympy.exp, e)


def _softmax(node, a):
    e = _exp(a[0])
    return e / _sum_all(e)


def _logsumexp(node, a):
    return sympy.log(_sum_all(_exp(a[0])))


def _row_sums(e):
    return e * M.OneMatrix(e.shape[1], 1)


def _softmax_rows(node, a):
    e = _exp(a[0])
    return M.DiagMatrix(M.HadamardPower(_row_sums(e), -1)) * e


def _logsumexp_rows(node, a):
    return _apply(sympy.log, _row_sums(_exp(a[0])))


def _phi(node, a):
    """Phi and its derivatives, entry by entry: Phi'(x) is Subs(Derivative(Phi(s), s), s, x), as sympy.diff
    writes it (so replacing Phi by a concrete Lambda and calling doit() gives numbers)."""
    name, order = node.attrs
    f = sympy.Function(name)
    s = sympy.Dummy("s")
    body = f(_t) if order == 0 else sympy.Subs(sympy.Derivative(f(s), (s, order)), s, _t)
    return _apply(sympy.Lambda(_t, body), a[0])


def _fn(node, a):
    """f(a, b) and its partials ∂1f(a, b) as SymPy writes them: Subs(Derivative(f(_1, _2), _1), …)."""
    name, partials = node.attrs
    f = sympy.Function(name)
    if not partials:
        return f(*a)
    xs = sympy.symbols(f"x1:{len(a) + 1}", cls=sympy.Dummy)
    d = sympy.Derivative(f(*xs), *[xs[i] for i in partials])
    return sympy.Subs(d, xs, a)


SYMPY = {
    # ----- leaves -----
    "var": lambda node, a: symbol_for(node),
    "const": lambda node, a: node.attrs[0],
    "zeros": lambda node, a: M.ZeroMatrix(*_shape_of(node)) if node.shape else sympy.S.Zero,
    "ones": lambda node, a: M.OneMatrix(*_shape_of(node)) if node.shape else sympy.S.One,
    "eye": lambda node, a: M.Identity(node.shape[0]),
    # ----- arithmetic -----
    "add": lambda node, a: (lambda x, y: x + y)(*_pair(node, a)),
    "sub": lambda node, a: (lambda x, y: x - y)(*_pair(node, a)),
    "neg": lambda node, a: -a[0],
    "mul": _mul,
    "div": _div,
    "pow": _pow,
    "maximum": _extreme(sympy.Max, 1),
    "minimum": _extreme(sympy.Min, -1),
    "rows": lambda node, a: M.OneMatrix(node.shape[0], 1) * a[0].T,          # 𝟙 vᵀ
    # ----- linear algebra -----
    "matmul": lambda node, a: a[0] * a[1],
    "outer": lambda node, a: a[0] * a[1].T,
    "dot": lambda node, a: scalar_of(a[0].T * a[1]),
    "T": _transpose,
    "inv": lambda node, a: M.Inverse(a[0]),
    "det": lambda node, a: M.Determinant(a[0]),
    "logdet": lambda node, a: sympy.log(sympy.Abs(M.Determinant(a[0]))),
    "trace": lambda node, a: M.Trace(a[0]),
    "matrix_power": lambda node, a: M.MatPow(a[0], node.attrs[0]),
    "diag": _diag,
    "pinv": lambda node, a: Pinv(a[0]),
    # ----- reductions -----
    "sqnorm": _sq,
    "norm": lambda node, a: sympy.sqrt(_sq(node, a)),
    "sum": lambda node, a: _sum_all(a[0]),
    "mean": _mean,
    "softmax": _softmax,
    "logsumexp": _logsumexp,
    "softmax_rows": _softmax_rows,
    "logsumexp_rows": _logsumexp_rows,
    "max": lambda node, a: MaxEntry(a[0]),
    "min": lambda node, a: MinEntry(a[0]),
    "maxmask": lambda node, a: MaxMask(a[0]),
    "minmask": lambda node, a: MinMask(a[0]),
    # ----- elementwise functions SymPy writes its own way -----
    **{name: _elementwise(name) for name in ELEMENTWISE},
    "sqrt": lambda node, a: M.HadamardPower(a[0], sympy.S.Half) if _is_matrix(a[0]) else sympy.sqrt(a[0]),
    # ----- abstract functions -----
    "phi": _phi,
    "fn": _fn,
}


def _macro(op: str):
    """A derivative macro (relu', tanh', …) converts as its expansion (step, 1 − tanh², …)."""
    expand = RULES[op].expand

    def convert(node, a):
        from .sympy_bridge import to_sympy
        return to_sympy(expand(node), known={node.args[0]: a[0]})
    return convert


def sympy_rule(op: str):
    """The SymPy conversion of `op` (a derivative macro: that of its expansion)."""
    if op not in SYMPY and op in RULES and RULES[op].expand is not None:
        return _macro(op)
    return behaviour(SYMPY, op, "SymPy conversion")


def is_macro(op: str) -> bool:
    """Whether `op` is written as its expansion (the bridge expands it over the output's names)."""
    return op not in SYMPY and RULES[op].expand is not None


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
