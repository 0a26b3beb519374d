"""Expression nodes: immutable, hash-consed, shape-checked matrix expressions.

Every expression symbackprop handles (the user's formula and every adjoint the
reverse sweep builds) is a tree of `Node`s. Equal sub-expressions are the same
object, so a formula is a DAG for free and `is` is structural equality.

Internal convention: a shape is `()` (scalar), `(n,)` (a column vector) or
`(m, n)` (a matrix); dims are ints or SymPy symbols. There are no row vectors:
the parser turns `u @ A` into `Aᵀu` and `u @ v` into `dot(u, v)`, and the
printers turn `outer(u, v)` back into `u vᵀ`.

The smart constructors below do only local, obviously-correct rewrites
(constant folding, x + 0, 1·x, --x, (Aᵀ)ᵀ, collecting c₁·X + c₂·X, pushing
transposes inward) so adjoints come out in readable closed form. Every rule
they apply is exercised by the finite-difference tests.
"""
from __future__ import annotations

import math
import weakref
from fractions import Fraction
from typing import Callable

import sympy

from .errors import FormulaError, ShapeError

#: The rule table, filled in by `rules.py`: op name -> Rule.
RULES: dict[str, "object"] = {}

_INTERN: "weakref.WeakValueDictionary[tuple, Node]" = weakref.WeakValueDictionary()


class Node:
    """One operation applied to argument nodes; `attrs` holds static data (names, constants)."""

    __slots__ = ("op", "args", "attrs", "shape", "__weakref__")

    op: str
    args: tuple["Node", ...]
    attrs: tuple
    shape: tuple

    def __new__(cls, op: str, args: tuple = (), attrs: tuple = (), shape: tuple | None = None):
        key = (op, tuple(id(a) for a in args), attrs, shape if op in _LEAVES else None)
        node = _INTERN.get(key)
        if node is not None:
            return node
        if shape is None:
            shape = RULES[op].shape(*(a.shape for a in args), *attrs)
        node = object.__new__(cls)
        node.op, node.args, node.attrs, node.shape = op, tuple(args), attrs, tuple(shape)
        _INTERN[key] = node
        return node

    # Nodes are interned, so object identity (Python's default == and hash) is structural equality.

    def __reduce__(self):
        return (Node, (self.op, self.args, self.attrs, self.shape if self.op in _LEAVES else None))

    def __repr__(self):
        from .printing import to_text
        return f"<{self.op} {to_text(self)} : {format_shape(self.shape)}>"

    # Operator sugar, handy in rules and tests.
    def __add__(self, other): return add(self, lift(other))
    def __radd__(self, other): return add(lift(other), self)
    def __sub__(self, other): return sub(self, lift(other))
    def __rsub__(self, other): return sub(lift(other), self)
    def __mul__(self, other): return mul(self, lift(other))
    def __rmul__(self, other): return mul(lift(other), self)
    def __truediv__(self, other): return div(self, lift(other))
    def __rtruediv__(self, other): return div(lift(other), self)
    def __pow__(self, other): return power(self, lift(other))
    def __neg__(self): return neg(self)
    def __matmul__(self, other): return matmul(self, other)

    @property
    def T(self) -> "Node":
        return transpose(self)

    @property
    def ndim(self) -> int:
        return len(self.shape)


# Leaves carry their shape explicitly; every other op infers it from its args.
_LEAVES = frozenset({"var", "const", "zeros", "ones", "eye"})


def format_shape(shape: tuple) -> str:
    """`()` -> 'scalar', `(d,)` -> 'd', `(h, d)` -> 'h×d'."""
    return "scalar" if not shape else "×".join(str(s) for s in shape)


def shapes_equal(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(sympy.simplify(x - y) == 0 if not (isinstance(x, int) and isinstance(y, int)) else x == y
                                    for x, y in zip(a, b))


# ----- leaves -----

def var(name: str, shape: tuple = ()) -> Node:
    return Node("var", (), (name,), tuple(shape))


def const(value, shape: tuple = ()) -> Node:
    """A scalar constant; `value` becomes an exact SymPy number where possible."""
    if isinstance(value, bool) or not isinstance(value, (int, float, sympy.Basic)):
        raise TypeError(f"const() takes a number, got {type(value).__name__}")
    if isinstance(value, int):
        value = sympy.Integer(value)
    elif isinstance(value, float):                   # exact where the binary fraction is short (0.5 -> 1/2)
        value = sympy.Rational(value) if value.is_integer() or Fraction(value).denominator <= 1 << 20 \
            else sympy.Float(value)
    if shape:
        raise ValueError("const() is scalar; use zeros/ones/eye for arrays")
    if not value.free_symbols and not _finite_float(value):
        raise FormulaError(f"the constant {_short(value)} is not a finite 64-bit float",
                           hint="numbers, and the constants they fold into (1e308 * 10, 1 / 1e-320), must lie "
                                "within ±1.8e308; rescale the formula")
    return Node("const", (), (value,), ())


def _finite_float(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):  # zoo, nan, or too large for a float
        return False


def _short(value) -> str:
    try:
        return str(sympy.Float(value, 3)) if value.is_real else str(value)
    except (TypeError, ValueError):
        return str(value)


def zeros(shape: tuple) -> Node:
    return const(0) if not shape else Node("zeros", (), (), tuple(shape))


def ones(shape: tuple) -> Node:
    return const(1) if not shape else Node("ones", (), (), tuple(shape))


def eye(n) -> Node:
    return Node("eye", (), (), (n, n))


def lift(x) -> Node:
    return x if isinstance(x, Node) else const(x)


def const_value(n: Node):
    """The SymPy value of a scalar constant node, else None."""
    return n.attrs[0] if n.op == "const" else None


def is_zero(n: Node) -> bool:
    return n.op == "zeros" or (n.op == "const" and n.attrs[0] == 0)


def is_one(n: Node) -> bool:
    return n.op == "const" and n.attrs[0] == 1


def _split_coeff(n: Node):
    """n == c·X with c a constant: return (c, X); (1, n) when there is no factor."""
    if n.op == "mul" and n.args[0].op == "const" and n.args[1].shape == n.shape:
        return n.args[0].attrs[0], n.args[1]
    if n.op == "neg":
        return sympy.Integer(-1), n.args[0]
    return sympy.Integer(1), n


def _scaled(c, x: Node) -> Node:
    if c == 0:
        return zeros(x.shape)
    if c == 1:
        return x
    if c == -1:
        return Node("neg", (x,))
    return Node("mul", (const(c), x))


def _fill_value(n: Node):
    """If n is a constant-valued array s·1 (s scalar), return s, else None."""
    if n.op == "ones":
        return const(1)
    if n.op == "mul" and n.args[1].op == "ones" and n.args[0].shape == ():
        return n.args[0]
    return None


# ----- elementwise arithmetic (scalars broadcast) -----

def add(a: Node, b: Node) -> Node:
    shape = RULES["add"].shape(a.shape, b.shape)
    if is_zero(a) and b.shape == shape:
        return b
    if is_zero(b) and a.shape == shape:
        return a
    if is_zero(a) or is_zero(b):                     # s + 0 (an array of zeros): s·𝟙, shaped (not `1 + 0`)
        return mul(b if is_zero(a) else a, ones(shape))
    if a.op == "const" and b.op == "const":
        return const(a.attrs[0] + b.attrs[0])
    if b.op == "neg":
        return sub(a, b.args[0])
    if a.op == "neg":
        return sub(b, a.args[0])
    (ca, xa), (cb, xb) = _split_coeff(a), _split_coeff(b)
    if xa is xb and a.shape == b.shape:
        return _scaled(ca + cb, xa)
    return Node("add", (a, b))


def sub(a: Node, b: Node) -> Node:
    shape = RULES["sub"].shape(a.shape, b.shape)
    if is_zero(b) and a.shape == shape:
        return a
    if is_zero(a) and b.shape == shape:
        return neg(b)
    if is_zero(a) or is_zero(b):                     # 0 − s (an array of zeros): −s·𝟙, shaped (not `0 − s`)
        return mul(neg(b) if is_zero(a) else a, ones(shape))
    if a.op == "const" and b.op == "const":
        return const(a.attrs[0] - b.attrs[0])
    if b.op == "neg":
        return add(a, b.args[0])
    (ca, xa), (cb, xb) = _split_coeff(a), _split_coeff(b)
    if xa is xb and a.shape == b.shape:
        return _scaled(ca - cb, xa)
    return Node("sub", (a, b))


def neg(a: Node) -> Node:
    if a.op == "const":
        return const(-a.attrs[0])
    if a.op == "zeros":
        return a
    if a.op == "neg":
        return a.args[0]
    c, x = _split_coeff(a)
    if c != 1:
        return _scaled(-c, x)
    return Node("neg", (a,))


def mul(a: Node, b: Node) -> Node:
    shape = RULES["mul"].shape(a.shape, b.shape)
    if is_zero(a) or is_zero(b):
        return zeros(shape)
    if a.op == "const" and b.op == "const":
        return const(a.attrs[0] * b.attrs[0])
    if b.op == "const" or (b.shape == () and a.shape != ()):
        a, b = b, a                                  # scalar (constant) factors first
    if a.op == "const":
        c = a.attrs[0]
        if c == 1 and b.shape == shape:
            return b
        cb, xb = _split_coeff(b)
        if cb != 1:
            return _scaled(c * cb, xb)
        if c == -1:
            return Node("neg", (b,))
        return Node("mul", (a, b))
    # pull constant factors and signs outward: (c·A) ⊙ B = c·(A ⊙ B)
    (ca, xa), (cb, xb) = _split_coeff(a), _split_coeff(b)
    if ca != 1 or cb != 1:
        return _scaled(ca * cb, mul(xa, xb))
    # s·1 ⊙ B = s·B
    fa, fb = _fill_value(a), _fill_value(b)
    if fa is not None and b.shape == shape:
        return mul(fa, b)
    if fb is not None and a.shape == shape:
        return mul(a, fb)
    return Node("mul", (a, b))


def div(a: Node, b: Node) -> Node:
    shape = RULES["div"].shape(a.shape, b.shape)
    if is_zero(a):
        return zeros(shape)
    if b.op == "const":
        if b.attrs[0] == 0:
            raise ShapeError("division by the constant 0")
        return mul(const(1 / b.attrs[0]), a)
    ca, xa = _split_coeff(a)
    if ca != 1 and not (xa.op == "const"):
        return _scaled(ca, div(xa, b)) if xa.shape == shape else Node("div", (a, b))
    return Node("div", (a, b))


#: Bits an exact constant power may take; beyond that it folds as a float (0.999999 ** 10**9 is a rational of
#: billions of digits, which SymPy would compute exactly, uninterruptibly).
MAX_EXACT_POWER_BITS = 4096


def _const_power(base, p):
    """base ** p for constants: exact while the exact number stays small, else as a 64-bit float (which const()
    refuses cleanly if it overflows)."""
    if base.is_Rational and p.is_Integer and \
            abs(int(p)) * max(int(base.p).bit_length(), int(base.q).bit_length()) > MAX_EXACT_POWER_BITS:
        try:
            return float(base) ** float(p)            # const() keeps it exact where it is short (−1.0 -> −1)
        except (OverflowError, ZeroDivisionError):
            return sympy.oo
    return base ** p


def power(a: Node, b: Node) -> Node:
    if b.op == "const":
        p = b.attrs[0]
        if p == 1:
            return a
        if p == 0:
            return ones(a.shape)
        if a.op == "const":
            return const(_const_power(a.attrs[0], p))
        if p == 2 and a.op == "norm":
            return Node("sqnorm", (a.args[0],))      # ‖X‖² has its own, simpler rule
    fa, fb = (_fill_value(a) if a.shape != () else None), (_fill_value(b) if b.shape != () else None)
    if fa is not None and b.shape == ():             # (s·𝟙)^t = s^t·𝟙: sum((0.5·𝟙)^t) would print with no size
        return mul(power(fa, b), ones(a.shape))
    if fb is not None and a.shape == ():             # t^(s·𝟙) = t^s·𝟙
        return mul(power(a, fb), ones(b.shape))
    return Node("pow", (a, b))


# ----- linear algebra -----

def matmul(a: Node, b: Node) -> Node:
    """Matrix-matrix or matrix-vector product (internal convention: no row vectors)."""
    shape = RULES["matmul"].shape(a.shape, b.shape)
    if is_zero(a) or is_zero(b):
        return zeros(shape)
    if a.op == "eye":
        return b
    if b.op == "eye":
        return a
    (ca, xa), (cb, xb) = _split_coeff(a), _split_coeff(b)
    if ca != 1 or cb != 1:
        return _scaled(ca * cb, matmul(xa, xb))
    if a.op == "diag" and a.args[0].ndim == 1 and b.ndim == 1:
        return mul(a.args[0], b)                     # diag(v) u = v ⊙ u
    if a.op == "ones" and b.ndim == 1:
        return mul(_sum(b), ones((a.shape[0],)))     # 𝟙 𝟙ᵀ u = (Σu)·𝟙: no ones matrix of unprinted size
    return Node("matmul", (a, b))


def dot(a: Node, b: Node) -> Node:
    RULES["dot"].shape(a.shape, b.shape)
    if is_zero(a) or is_zero(b):
        return const(0)
    (ca, xa), (cb, xb) = _split_coeff(a), _split_coeff(b)
    if ca != 1 or cb != 1:
        return _scaled(ca * cb, dot(xa, xb))
    return Node("dot", (a, b))


def outer(a: Node, b: Node) -> Node:
    shape = RULES["outer"].shape(a.shape, b.shape)
    if is_zero(a) or is_zero(b):
        return zeros(shape)
    (ca, xa), (cb, xb) = _split_coeff(a), _split_coeff(b)
    if ca != 1 or cb != 1:
        return _scaled(ca * cb, outer(xa, xb))
    return Node("outer", (a, b))


_TRANSPOSED: "weakref.WeakKeyDictionary[Node, Node]" = weakref.WeakKeyDictionary()


def transpose(a: Node, _budget: int = 6) -> Node:
    """Aᵀ, pushed inward through products and sums (a bounded number of levels)."""
    if a.ndim < 2:
        return a                                     # no row vectors: vᵀ is v
    hit = _TRANSPOSED.get(a)
    if hit is not None:
        return hit
    out = _transpose(a, _budget)
    _TRANSPOSED[a] = out
    return out


def _transpose(a: Node, budget: int) -> Node:
    op = a.op
    if op == "T":
        return a.args[0]
    if op in ("zeros", "ones"):
        return Node(op, (), (), (a.shape[1], a.shape[0]))
    if op == "eye":
        return a
    if op == "outer":
        return outer(a.args[1], a.args[0])
    if op == "rows":                                 # (𝟙 vᵀ)ᵀ = v 𝟙ᵀ
        return outer(a.args[0], ones((a.shape[0],)))
    if op == "neg":
        return neg(transpose(a.args[0], budget))
    if op == "mul" and a.args[0].shape == ():
        return mul(a.args[0], transpose(a.args[1], budget))
    if budget > 0:
        if op == "matmul":
            return matmul(transpose(a.args[1], budget - 1), transpose(a.args[0], budget - 1))
        if op in ("add", "sub", "mul") and all(x.ndim == 2 for x in a.args):
            return Node(op, tuple(transpose(x, budget - 1) for x in a.args))
    return Node("T", (a,))


# ----- NumPy broadcasting, axis reductions, matrix powers -----

def rows(v: Node, m) -> Node:
    """𝟙 vᵀ: the m×n matrix whose every row is the vector v (NumPy broadcasting a (n,) against (m, n))."""
    if is_zero(v):
        return zeros((m, v.shape[0]))
    if v.op == "ones":
        return ones((m, v.shape[0]))
    c, x = _split_coeff(v)
    if c != 1:
        return _scaled(c, rows(x, m))
    return Node("rows", (v,), (m,))


def broadcast_operands(a: Node, b: Node) -> tuple[Node, Node]:
    """NumPy's rule for an elementwise op of an m×n matrix and a length-n vector: the vector is
    broadcast along the rows (every row gets it), as `X @ W + b` does. Other pairs are returned as
    they are (equal shapes and scalars need nothing; the shape rule refuses the rest)."""
    if a.ndim == 2 and b.ndim == 1 and a.shape[1] == b.shape[0]:
        return a, rows(b, a.shape[0])
    if a.ndim == 1 and b.ndim == 2 and b.shape[1] == a.shape[0]:
        return rows(a, b.shape[0]), b
    return a, b


def sum_axis(x: Node, axis: int, mean: bool = False) -> Node:
    """NumPy's sum(x, axis=…) (or mean): over a matrix's rows (axis 0: Xᵀ𝟙) or columns (axis 1: X𝟙)."""
    axis = _axis(x, axis, "mean" if mean else "sum")
    if x.ndim == 1:
        out = _sum(x)
        return div(out, const(x.shape[0])) if mean else out
    out = matmul(transpose(x), ones((x.shape[0],))) if axis == 0 else matmul(x, ones((x.shape[1],)))
    return div(out, const(x.shape[axis])) if mean else out


def _axis(x: Node, axis, what: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ShapeError(f"{what}: axis must be an integer, got {axis!r}", hint="write axis=0, axis=1 or axis=-1")
    if x.ndim == 0:
        raise ShapeError(f"{what} with axis= needs a vector or matrix, got a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{what}: axis {axis} is out of range for {format_shape(x.shape)}",
                         hint="a vector has axis 0 (or -1); a matrix has axes 0 and 1 (or -2 and -1)")
    return axis % x.ndim


def matrix_power(x: Node, k: int) -> Node:
    """Xᵏ as a matrix product (k ≥ 0; X⁰ = I)."""
    if k == 0:
        return eye(x.shape[0])
    if k == 1:
        return x
    if is_zero(x):                                   # 0ᵏ = 0, shaped (no matrix_power(0, k) of unprinted size)
        return zeros(x.shape)
    return Node("matrix_power", (x,), (k,))


# ----- generic application -----

def apply(op: str, *args: Node, attrs: tuple = ()) -> Node:
    """Build `op(*args)` through its smart constructor if it has one."""
    ctor = CONSTRUCTORS.get(op)
    if ctor is not None and not attrs:
        return ctor(*args)
    return Node(op, tuple(args), attrs)


def _sum(a: Node) -> Node:
    if a.shape == ():
        return a
    if is_zero(a):
        return const(0)
    if a.op == "eye":                                   # tr(I) = n: no size left to the reader to guess
        return const(a.shape[0])
    s = _fill_value(a)
    if s is not None:
        return mul(s, const(numel(a.shape)))
    c, x = _split_coeff(a)
    if c != 1:
        return _scaled(c, _sum(x))
    if a.op == "mul" and a.args[0].shape == () and a.args[1].shape != ():
        return mul(a.args[0], _sum(a.args[1]))       # sum(s·X) = s·sum(X): sum(s·I) = s·n, no unsized I
    if a.op == "matmul" and (a.args[1].op == "ones" or a.ndim == 2 and a.args[0].op == "ones"):
        # 𝟙ᵀ A 𝟙 = sum(A), sum(A 𝟙ₖₓₙ) = n·sum(A), sum(𝟙ₘₓₖ A) = m·sum(A): no 𝟙 whose size nothing fixes
        right = a.args[1].op == "ones"
        k = (1 if a.ndim == 1 else a.shape[1]) if right else a.shape[0]
        return mul(const(k), _sum(a.args[0] if right else a.args[1]))
    return Node("sum", (a,))


#: Public names of the helpers other modules build with (the underscored names are expr's own):
#: the sum of every entry, (c, X) with n == c·X, c·x simplified, s for an array s·1, a checked axis.
sum_all, split_coeff, scaled, fill_value, check_axis = _sum, _split_coeff, _scaled, _fill_value, _axis


def numel(shape: tuple):
    n = sympy.Integer(1)
    for s in shape:
        n = n * s
    return n


CONSTRUCTORS: dict[str, Callable[..., Node]] = {
    "add": add, "sub": sub, "mul": mul, "div": div, "pow": power, "neg": neg,
    "matmul": matmul, "dot": dot, "outer": outer, "T": transpose, "sum": _sum,
}


def walk(roots, stop=()) -> list[Node]:
    """All nodes reachable from `roots`, arguments before users (iterative: no recursion limit).

    Nodes in `stop` are listed but not entered."""
    if isinstance(roots, Node):
        roots = [roots]
    order: list[Node] = []
    seen: set[int] = set()
    for root in roots:
        if id(root) in seen:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            if node in stop and node is not root:
                continue
            for arg in reversed(node.args):
                if id(arg) not in seen:
                    stack.append((arg, False))
    return order


def substitute(root, mapping: dict[Node, Node]):
    """Replace nodes by others (e.g. a variable by an expression), rebuilding through smart constructors.

    `root` is a node or a list of nodes (then a list comes back, sharing the work)."""
    roots = root if isinstance(root, (list, tuple)) else [root]
    done: dict[Node, Node] = {}
    for node in walk(roots):
        if node in mapping:
            done[node] = mapping[node]
        elif not node.args:
            done[node] = node
        else:
            new_args = tuple(done[a] for a in node.args)
            done[node] = node if all(x is y for x, y in zip(new_args, node.args)) else apply(node.op, *new_args, attrs=node.attrs)
    out = [done[r] for r in roots]
    return out if isinstance(root, (list, tuple)) else out[0]
