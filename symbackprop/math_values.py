"""Values while a math-notation expression is built: nodes with an orientation (vectors are columns,
xᵀ a row), and 𝟙 and I of a size the context has not fixed yet. Juxtaposition and the elementwise
operators combine them through the builders of expr.py, as the NumPy notation does."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import expr as E
from .errors import FormulaError, ShapeError
from .expr import Node, format_shape


class Failure(Exception):
    """A building error without a position yet (the caller knows the span)."""

    def __init__(self, message, hint=None, cls=ShapeError):
        super().__init__(message)
        self.message, self.hint, self.cls = message, hint, cls


# ----- values while building: nodes with an orientation, and 𝟙 / I of a size still to come -----

SCALAR, COL, ROW, MAT, FLEX = "scalar", "column", "row", "matrix", "column or matrix"


@dataclass(frozen=True)
class Val:
    """A built operand. `node` is the expression (a row is its vector, with kind ROW); a pending value
    (𝟙, I, and what is built from them before anything fixes their size) has node None, `dims` with
    None where the size is not known yet, and `make(dims)` that builds it once the dims are known."""

    kind: str
    node: Node | None = None
    dims: tuple = ()
    make: Callable | None = None
    what: str = ""                # for messages: 𝟙 or I
    entry: bool = False           # inside \sum_i: built from names subscripted by the index
    eye: Node | None = None       # s when this is s·I (I B = s·B needs no size)
    alts: tuple = ()              # kind FLEX: the readings still possible (𝟙 is a column or a matrix)

    @property
    def pending(self) -> bool:
        return self.node is None

    def build(self, dims=None) -> Node:
        if self.node is not None:
            return self.node
        dims = tuple(self.dims if dims is None else dims)
        return self.make(dims)


def val(node: Node, row: bool = False, entry: bool = False) -> Val:
    kind = {0: SCALAR, 1: ROW if row else COL, 2: MAT}[node.ndim]
    return Val(kind, node, tuple(node.shape), entry=entry)


def words(v: Val) -> str:
    dims = ["?" if d is None else str(d) for d in v.dims]
    if v.kind == SCALAR:
        return "a scalar"
    if v.kind == COL:
        return f"a column of length {dims[0]}"
    if v.kind == ROW:
        return f"a row of length {dims[0]}"
    return f"a {dims[0]}×{dims[1]} matrix"


def _unify(a, b):
    """Two dims that must be equal; None is unknown. Returns the dim, or raises Failure."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if E.shapes_equal((a,), (b,)):
        return a
    raise Failure(f"sizes {a} and {b} differ")


# ----- readings of 𝟙: a column or a matrix of ones, until the context decides -----

def either(f, *vals):
    """f over every combination of the operands' readings; the readings that fail drop out."""
    results, failure = [], None

    def combos(i, chosen):
        nonlocal failure
        if i == len(vals):
            try:
                results.append(f(*chosen))
            except Failure as e:
                failure = failure or e
            return
        for alt in (vals[i].alts or (vals[i],)):
            combos(i + 1, chosen + [alt])
    combos(0, [])
    flat, kinds = [], set()
    for r in results:
        for alt in (r.alts or (r,)):
            if alt.kind not in kinds:
                kinds.add(alt.kind)
                flat.append(alt)
    if not flat:
        raise failure
    return flat[0] if len(flat) == 1 else Val(FLEX, None, (), None, flat[0].what, alts=tuple(flat))


def _flexible(*vals) -> bool:
    return any(v.alts for v in vals)


def ones_value() -> Val:
    """𝟙: a column of ones or a matrix of ones, of a size the context gives."""
    return Val(FLEX, None, (), None, "𝟙", alts=(Val(COL, None, (None,), E.ones, "𝟙"),
                                                 Val(MAT, None, (None, None), E.ones, "𝟙")))


def choose(v: Val, shape=None) -> Val:
    """One reading of a value: the one of `shape` if given, else a column if there is one."""
    if not v.alts:
        return v
    if shape is not None:
        kind = {0: SCALAR, 1: COL, 2: MAT}.get(len(shape))
        for alt in v.alts:
            if alt.kind == kind or (kind == COL and alt.kind == ROW):
                return alt
    concrete = [a for a in v.alts if not a.pending]
    return (concrete or [a for a in v.alts if a.kind == COL] or list(v.alts))[0]


# ----- products -----

#: (left kind, right kind) -> the result's kind, for juxtaposition.
_PRODUCT_KIND = {(COL, ROW): MAT, (ROW, COL): SCALAR, (MAT, COL): COL, (ROW, MAT): ROW, (MAT, MAT): MAT}


def _outer_inner(v: Val, side: str):
    """(outer dims, inner dim or None) of an operand on the left or right of a product."""
    d = v.dims
    if v.kind == MAT:
        return ((d[0],), d[1]) if side == "left" else ((d[1],), d[0])
    if v.kind == COL:
        return ((d[0],), None) if side == "left" else ((), d[0])
    return ((), d[0]) if side == "left" else ((d[0],), None)


def _concrete_product(ka: str, kb: str, a: Node, b: Node) -> Node:
    if (ka, kb) == (COL, ROW):
        return E.outer(a, b)
    if (ka, kb) == (ROW, COL):
        return E.dot(a, b)
    if (ka, kb) == (ROW, MAT):
        return E.matmul(E.transpose(b), a)
    return E.matmul(a, b)


def product(a: Val, b: Val) -> Val:
    """a b: juxtaposition (matrix product, scalar product, outer and inner products of vectors)."""
    if _flexible(a, b):
        return either(product, a, b)
    entry = a.entry or b.entry
    if entry:
        return elementwise(E.mul, a, b, "·")
    if a.kind == SCALAR or b.kind == SCALAR:
        return elementwise(E.mul, a, b, "·")
    if a.eye is not None and b.kind in (COL, MAT):
        return elementwise(E.mul, val(a.eye), b, "·")
    if b.eye is not None and a.kind in (ROW, MAT):
        return elementwise(E.mul, val(b.eye), a, "·")
    kind = _PRODUCT_KIND.get((a.kind, b.kind))
    if kind is None:
        raise Failure(f"the product of {words(a)} and {words(b)} is not defined", hint=_product_hint(a, b))
    (oa, ia), (ob, ib) = _outer_inner(a, "left"), _outer_inner(b, "right")
    try:
        inner = _unify(ia, ib) if ia is not None or ib is not None else None
    except Failure:
        raise Failure(f"the product of {words(a)} and {words(b)} is not defined: inner sizes "
                       f"{ia} and {ib} differ", hint="check the shapes, or transpose a factor") from None
    if (a.kind, b.kind) != (COL, ROW) and inner is None:     # 𝟙ᵀ𝟙, 𝟙 𝟙ᵀ 𝟙: nothing sizes the inner 𝟙
        raise Failure(f"the size of {a.what or b.what} in this product is not fixed by anything",
                       hint="write the sum or size it takes explicitly", cls=FormulaError)

    def full(v, outer, side):
        if v.kind == MAT:
            return (outer[0], inner) if side == "left" else (inner, outer[0])
        if v.kind == COL:
            return (outer[0],) if side == "left" else (inner,)
        return (inner,) if side == "left" else (outer[0],)

    dims = oa + ob
    if a.pending or b.pending:
        ka, kb = a.kind, b.kind
        fa = tuple(a.dims) if not a.pending else None
        fb = tuple(b.dims) if not b.pending else None
        a_full = full(a, oa, "left") if a.pending else fa
        b_full = full(b, ob, "right") if b.pending else fb
        if None not in a_full and None not in b_full:
            node = _node_product(ka, kb, a.build(a_full), b.build(b_full))
            return _with_kind(node, kind)

        def make(d, a=a, b=b, na=len(oa)):
            ad = full(a, d[:na], "left") if a.pending else a.dims
            bd = full(b, d[na:], "right") if b.pending else b.dims
            return _node_product(ka, kb, a.build(ad), b.build(bd))
        return Val(kind, None, dims, make, a.what or b.what)
    return _with_kind(_node_product(a.kind, b.kind, a.node, b.node), kind)


def _node_product(ka, kb, a, b):
    try:
        return _concrete_product(ka, kb, a, b)
    except ShapeError as e:
        raise Failure(e.message, hint=e.hint) from None


def _with_kind(node: Node, kind: str) -> Val:
    return val(node, row=kind == ROW) if node.ndim == {SCALAR: 0, COL: 1, ROW: 1, MAT: 2}[kind] else val(node)


def _product_hint(a: Val, b: Val) -> str:
    pairs = {(COL, COL): "two columns: write uᵀv for their inner product (a scalar), u vᵀ for the outer product",
             (ROW, ROW): "two rows: transpose one of them (uᵀv is a scalar, u vᵀ a matrix)",
             (COL, MAT): "a column before a matrix: did you mean uᵀA (a row) or Aᵀu?",
             (MAT, ROW): "a matrix before a row: did you mean A u (a column) or A (u vᵀ)?"}
    return pairs.get((a.kind, b.kind), "check the orientation of the factors")


# ----- elementwise operations -----

def elementwise(build, a: Val, b: Val, symbol: str) -> Val:
    """a ∘ b for an elementwise operator (`build` is expr.add, mul, ...): equal shapes, a scalar on one
    side, or a row meeting every row of a matrix. 𝟙 and I take the other side's size."""
    if _flexible(a, b):
        return either(lambda x, y: elementwise(build, x, y, symbol), a, b)
    entry = a.entry or b.entry
    if entry and (a.kind not in (SCALAR, COL) or b.kind not in (SCALAR, COL) or
                  (not a.entry and a.kind != SCALAR) or (not b.entry and b.kind != SCALAR)):
        raise Failure("inside the sum, an entry xᵢ meets a whole vector or matrix",
                       hint="subscript every vector by the index (Σᵢ xᵢ yᵢ), or write the sum without an index")
    ka, kb = a.kind, b.kind
    if ka != SCALAR and kb != SCALAR and ka != kb and {ka, kb} != {MAT, ROW}:
        raise Failure(f"`{symbol}` combines {words(a)} with {words(b)}",
                       hint="a column and a row or matrix do not combine entry by entry; transpose one of them, "
                            "or write 𝟙 bᵀ for a row repeated down a matrix")
    kind = MAT if MAT in (ka, kb) else (ka if ka != SCALAR else kb)
    if a.pending or b.pending:
        if ka == kb and not a.pending:
            b_dims = tuple(a.dims)
            return val(_apply(build, a.node, b.build(merge(b.dims, b_dims)), symbol), row=kind == ROW, entry=entry)
        if ka == kb and not b.pending:
            return val(_apply(build, a.build(merge(a.dims, b.dims)), b.node, symbol), row=kind == ROW, entry=entry)
        if kind == MAT and (ka == ROW or kb == ROW):
            raise Failure(f"`{symbol}` of a row with a matrix of unknown size", cls=FormulaError,
                           hint="write the row repeated down the matrix as 𝟙 bᵀ")
        dims = merge(a.dims, b.dims) if ka == kb else (a.dims if ka != SCALAR else b.dims)
        if None not in dims:
            return val(_apply(build, a.build(dims if ka != SCALAR else ()), b.build(dims if kb != SCALAR else ()),
                               symbol), row=kind == ROW)

        def make(d):
            return _apply(build, a.build(d if ka != SCALAR else ()), b.build(d if kb != SCALAR else ()), symbol)
        eye = None
        if build is E.mul and kind == MAT:
            if a.kind == SCALAR and b.eye is not None:
                eye = E.mul(a.node, b.eye)
            elif b.kind == SCALAR and a.eye is not None:
                eye = E.mul(a.eye, b.node)
        elif build is E.div and b.kind == SCALAR and a.eye is not None:
            eye = E.div(a.eye, b.node)
        return Val(kind, None, dims, make, a.what or b.what, eye=eye)
    node = _apply(build, a.node, b.node, symbol)
    return val(node, row=kind == ROW, entry=entry)


def merge(a, b):
    return tuple(_unify(x, y) for x, y in zip(a, b))


def _apply(build, a: Node, b: Node, symbol: str) -> Node:
    try:
        return build(*E.broadcast_operands(a, b))
    except ShapeError as e:
        raise Failure(f"`{symbol}` combines {format_shape(a.shape)} with {format_shape(b.shape)}: {e.message}",
                       hint=e.hint) from None


def unary(build, v: Val) -> Val:
    """An operation entry by entry (−x, relu(x)); a pending 𝟙 stays pending."""
    if v.alts:
        return either(lambda x: unary(build, x), v)
    if v.pending:
        eye = E.neg(v.eye) if v.eye is not None and build is E.neg else None
        return Val(v.kind, None, v.dims, lambda d: build(v.build(d)), v.what, eye=eye)
    return Val(v.kind, build(v.node), v.dims, entry=v.entry)


def transpose(v: Val) -> Val:
    if v.alts:
        return either(transpose, v)
    if v.kind == SCALAR and v.node is not None and E.is_zero(v.node):     # 0ᵀ: the zero row (printed so)
        return Val(FLEX, None, (), None, "0", alts=(v, Val(ROW, None, (None,), E.zeros, "0"),
                                                    Val(MAT, None, (None, None), E.zeros, "0")))
    if v.kind == SCALAR:
        return v
    if v.kind in (COL, ROW):
        flip = ROW if v.kind == COL else COL
        return Val(flip, v.node, v.dims, v.make, v.what, v.entry)
    if v.pending:
        return Val(MAT, None, v.dims[::-1], lambda d: E.transpose(v.build(d[::-1])), v.what, eye=v.eye)
    return val(E.transpose(v.node))



def identity(d):
    if d[0] is None and d[1] is None:
        raise Failure("the size of I is not fixed by anything", cls=FormulaError,
                       hint="write I where the expression around it gives it a size (A + I, A − λ I)")
    return E.eye(d[0] if d[0] is not None else d[1])


