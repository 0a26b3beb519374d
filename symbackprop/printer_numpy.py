"""The NumPy printers (a codegen stage): one class per target, in the style of SymPy's printers.

`NumpyPrinter` prints a planned body for unbatched inputs; `BatchedNumpyPrinter` overrides only
what differs when some inputs carry a leading batch axis (batch forms, sums over the batch, the
value as a mean). Both dispatch generically: the per-operator forms are registered with the
operators (rules_forms, written once for both targets, and rules_numpy), and an operator without a
special form prints with its rule's `np` template. The shared forms spell nothing themselves: they
ask the printer (`xp`, `spell(word, …)` from the SPELLING table, `fmt`/`arg`/`fill` of a template,
`mask`), which is all a subclass for another target (printer_array_api) changes. `BatchedPrinting`
holds what every batched printer does (the value as a mean, sums over the batch, the check below);
the batched printer raises "Batching rule for X not implemented" for an operator that has neither a
batch form nor `batch_safe` (never the unbatched form onto batched arrays).
"""
from __future__ import annotations

import sympy

from . import expr as E
from .errors import FormulaError, InternalError
from .expr import RULES, Node
from .plan import StatementPlanner, constant
from .rules import ATOM, MUL, NEG, POSTFIX, Fmt, number_np, sympy_np
from .rules_forms import BATCH_SUM, INLINE, MEAN, REFS, SCALED, UNSEEDED, product, transpose
from .rules_numpy import BATCHED, CAST, MASK, NUMPY, SPELLING, helpers as numpy_helpers


class NumpyPrinter(StatementPlanner):
    """Plans and prints the body of `forward`, `value_and_grad`, `hvp` or `hessian` as NumPy source."""

    #: Tables of per-operator forms, tried in order before the rule's `np` template.
    FORMS = (NUMPY,)
    #: Operators printed as a product with extra scalar factors (a gradient's coefficient folded in).
    SCALED = SCALED
    #: The module template this printer's bodies go into, and names the module itself defines.
    TEMPLATE = "module.py.j2"
    TAKEN = frozenset({"np"})
    #: The namespace's name in the printed source, and how it spells the words of rules_forms (p.spell).
    xp = "np"
    SPELLING = SPELLING
    #: 0/1 masks of a float product (relu'): how one prints, and whether masks become a `where`
    #: (False: NumPy multiplies a boolean mask into a float product).
    MASK = MASK
    WHERE_MASKS = False
    #: Whether a boolean mask needs an array factor beside it to become a float of the module's dtype
    #: (False: NumPy's Python number × bool array is a float64 array).
    MASK_NEEDS_TENSOR = False
    BATCH_SUM = BATCH_SUM
    #: The float32 conversion helper `_cast`, and the arguments its calls pass before the inputs.
    CAST = CAST
    CAST_ARGS = ()

    # ----- what the planner asks -----

    def refs(self, n: Node) -> list:
        form = REFS.get(n.op)
        return form(self, n) if form is not None else list(n.args)

    def always_inline(self, n: Node) -> bool:
        form = INLINE.get(n.op)
        return form is not None and form(n)

    def shape_comment(self, n: Node) -> str:
        batched = self.batched[n]
        dims = ([self.B] if batched else []) + [self.dim_src(s) for s in n.shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    # ----- pieces of source -----

    def code(self, e) -> str:
        """A SymPy expression of the dims as source."""
        return sympy_np(e)

    def dim_src(self, s) -> str:
        if isinstance(s, int):
            return str(s)
        if isinstance(s, sympy.Symbol):
            return self.dimnames[s]
        return "(" + self.code(s.subs({k: sympy.Symbol(v) for k, v in self.dimnames.items()})) + ")"

    def shape_src(self, shape, batched=False) -> str:
        dims = ([self.B] if batched else []) + [self.dim_src(s) for s in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def ref(self, n: Node):
        """(source, precedence) of a reference to n's value."""
        if n in self.name:
            return self.name[n], ATOM
        return self.src(n)

    def paren(self, n: Node, need: int) -> str:
        s, p = self.ref(n)
        return f"({s})" if p < need else s

    def const_src(self, v) -> str:
        if getattr(v, "free_symbols", None):
            return "(" + self.code(v.subs({k: sympy.Symbol(nm) for k, nm in self.dimnames.items()})) + ")"
        return number_np(v)

    def lift(self, n: Node, ndim: int) -> str:
        """A batched per-example scalar broadcast against per-example arrays of rank `ndim`."""
        if self.batched[n] and n.ndim < ndim:
            return self.paren(n, POSTFIX) + "[:" + ", None" * (ndim - n.ndim) + "]"
        return None

    def dt(self):
        """The dtype argument of np.zeros/ones/eye: spelled out, never the module's DTYPE (a user's
        variable or dim may be named DTYPE and would shadow it)."""
        return f", dtype=np.{self.dtype}" if self.dtype != "float64" else ""

    def typed(self, src: str) -> str:
        """A constant scalar result in the module's dtype (a Python float is a float64)."""
        return src if self.dtype == "float64" else f"np.{self.dtype}({src})"

    def constant(self, n: Node) -> bool:
        """n depends on no input (a scalar result is then printed with `result`)."""
        return constant(n)

    def result(self, src: str) -> str:
        """A constant scalar the module returns (a value, a gradient, a Hessian): typed like the others."""
        return self.typed(src)

    # ----- one node -----

    def src(self, n: Node):
        for table in self.FORMS:
            form = table.get(n.op)
            if form is not None:
                out = form(self, n)
                if out is not None:
                    return out
        return self.template(n)

    def template(self, n: Node):
        """n printed with its template."""
        fmt = self.fmt(n)
        parts = [self.arg(x, fmt, i) for i, x in enumerate(n.args)]
        return self.fill(fmt, parts), fmt.prec

    def fmt(self, n: Node) -> Fmt:
        """n's template: its rule's `np` form."""
        fmt = RULES[n.op].np
        fmt = fmt(n) if callable(fmt) and not isinstance(fmt, Fmt) else fmt
        if fmt is None:
            raise FormulaError(f"codegen has no NumPy form for `{n.op}`")
        return fmt

    def arg(self, x: Node, fmt: Fmt, i: int) -> str:
        """Argument i of a template."""
        return self.paren(x, fmt.arg_need(i))

    def fill(self, fmt: Fmt, parts: list) -> str:
        return fmt.template.format(*parts, xp=self.xp)

    def spell(self, word: str, *args, **fields):
        """(source, precedence) of a word of rules_forms in this target's SPELLING, filled with `args`: Nodes
        and (source, precedence) pairs are bracketed as the spelling needs, strings go in as they are."""
        form = self.SPELLING.get(word)
        if form is None:
            raise InternalError(f"{type(self).__name__} has no spelling of `{word}`: add it to its SPELLING "
                                f"table. This is a bug in symbackprop; please report it.")
        if not isinstance(form, Fmt):
            return form(self, *args, **fields)
        parts = []
        for i, a in enumerate(args):
            need = form.arg_need(i)
            if isinstance(a, Node):
                a = self.paren(a, need)
            elif isinstance(a, tuple):
                a = a[0] if a[1] >= need else f"({a[0]})"
            parts.append(a)
        return form.template.format(*parts, xp=self.xp, **fields), form.prec

    def transpose(self, x: Node):
        return transpose(self, x)

    def product(self, n: Node, consts: list[str]):
        return product(self, n, consts)

    def is_mask(self, f: Node) -> bool:
        return f.op in self.MASK and f not in self.name

    def mask(self, f: Node) -> str:
        return self.MASK[f.op](self, f)

    def product_of(self, factors, ndim) -> str:
        parts = []
        for f in factors:
            lifted = self.lift(f, ndim)
            parts.append(lifted if lifted is not None else self.paren(f, MUL + 1))
        return " * ".join(parts)

    # ----- outputs -----

    def value_src(self, objective: Node) -> str:
        return self.ref(objective)[0]

    def grad_src(self, name: str, g: Node, var: Node) -> str:
        c, x = E.split_coeff(g) if g.args else (sympy.Integer(1), g)
        if E.is_zero(g):
            return self.zero_grad(name, var)
        out = self.batch_grad(name, g, var, c, x)
        if out is not None:
            return out
        if c == -1:
            return "-" + self.paren(x, NEG)
        cs = [] if c == 1 else [self.const_src(c)]
        if x.op in self.SCALED and x not in self.name:
            return self.SCALED[x.op](self, x, cs)[0]
        return (" * ".join(cs + [self.paren(x, MUL + 1)])) if cs else self.ref(x)[0]

    def copy(self, src: str) -> str:
        """A copy of a value the caller must not share (an input returned as a gradient)."""
        return src + ".copy()"

    def enter(self, args: str) -> list[str]:
        """The first lines of each generated function after the shape check (NumPy: none, `np` is imported)."""
        return []

    def convert(self, scalars: list[str], like: str | None) -> list[str]:
        """Lines converting scalar inputs on entry to a function (NumPy: none, Python numbers are fine)."""
        return []

    @staticmethod
    def helpers() -> dict[str, str]:
        """Helper name -> source of the helper functions a printed body may call."""
        return numpy_helpers()

    def zero_grad(self, name: str, var: Node) -> str:
        return f"np.zeros({self.shape_src(var.shape)}{self.dt()})" if var.ndim else self.typed("0.0")

    def batch_grad(self, name, g, var, c, x):
        """The gradient's source where the batch changes it (None: as printed for one example)."""
        return None


class BatchedPrinting:
    """What a printer for inputs with a leading batch axis does on any target (mixed into a printer class):
    the value is the mean over the batch, an unbatched input's gradient the sum over the batch, with
    products pushed inside the sum (BATCH_SUM) so no per-example tensor is built. A printer it is mixed
    into gives `same_grad`: a batched input's gradient that is the same for every example."""

    #: The error for an operator with neither a batch form nor batch_safe, {op} its name.
    UNBATCHED = ("Batching rule for `{op}` not implemented: its NumPy form is not known to be right with a "
                 "batch axis (register a form in rules_numpy.BATCHED, or declare batch_safe=True). This is a "
                 "bug in symbackprop; please report it.")

    def template(self, n: Node):
        rule = RULES[n.op]
        if self.batched[n] and n.args and not rule.batch_safe:
            raise InternalError(self.UNBATCHED.format(op=n.op))
        return super().template(n)

    def value_src(self, objective: Node) -> str:
        return self.bmean(objective)[0]

    def bmean(self, n: Node):
        """(source, precedence) of the mean over the batch of n: what every example shares is itself, a sum
        is the sum of the means (rules_forms.MEAN), anything else Σ_b n_b / B."""
        if not self.batched[n]:
            return self.ref(n)
        form = MEAN.get(n.op)
        if form is not None and n not in self.name:
            out = form(self, n)
            if out is not None:
                return out
        s, p = self.bsum(n, [])
        return f"{s if p >= MUL else '(' + s + ')'} / {self.B}", MUL

    def without_seed(self, n: Node):
        """n = seed · x, printed in place (a product with the sweep's seed as one factor, or a sum or negation
        of such: rules_forms.UNSEEDED): x, else None."""
        form = UNSEEDED.get(n.op)
        return None if form is None or n in self.name else form(self, n)

    def batch_grad(self, name, g, var, c, x):
        if name not in self.batch:
            # an unbatched input: its gradient is the sum over the batch, whatever the factor
            if c == -1:
                s, p = self.bsum(x, [])
                return "-" + (s if p > NEG else f"({s})")
            return self.bsum(x, [] if c == 1 else [self.const_src(c)])[0]
        if not self.batched[g]:
            return self.same_grad(name, g, var)
        return None

    #: The seed of a batched reverse sweep (emit sets it: `_seed` = seed_total / B) and the source of seed_total.
    seed_name = "_seed"
    seed_total = "1.0"

    def bsum(self, n: Node, consts: list[str]):
        """Source of (Π consts) · Σ_b n_b, with products pushed inside so no per-example tensor is built."""
        if not self.batched[n]:
            unseeded = self.without_seed(n)
            if unseeded is not None:                 # Σ_b seed·x = B·seed·x = seed_total·x
                cs = consts + ([self.seed_total] if self.seed_total != "1.0" else [])
                return self.product(E.mul(E.const(1), unseeded), cs) if cs else self.ref(unseeded)
            return self.product(E.mul(E.const(1), n), consts + [self.B]) if consts else self.product(n, [self.B])
        scale = " * ".join(consts)
        form = self.BATCH_SUM.get(n.op)
        if form is not None and n not in self.name:
            out = form(self, n, consts, scale)
            if out is not None:
                return out
        core, prec = self.spell("sum0" if n.ndim else "sum_all", n)
        return (f"{scale} * {core}" if scale else core), (MUL if scale else prec)


class BatchedNumpyPrinter(BatchedPrinting, NumpyPrinter):
    """The NumPy printer for inputs with a leading batch axis: only what differs is overridden."""

    FORMS = (BATCHED, NUMPY)

    def zero_grad(self, name: str, var: Node) -> str:
        if name not in self.batch:
            return super().zero_grad(name, var)
        return f"np.zeros({self.shape_src(var.shape, True)}{self.dt()})"

    def same_grad(self, name: str, g: Node, var: Node) -> str:
        """A batched input's gradient that is the same for every example: a fresh array of the batch's shape."""
        s = self.ref(g)[0]
        return f"np.broadcast_to({self.typed(s) if constant(g) else s}, {self.shape_src(var.shape, True)}).copy()"
