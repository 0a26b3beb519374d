"""The array-API printers (a codegen stage, `codegen --target array-api`): subclasses of the NumPy
printers that print the same planned bodies in the array API standard, through the per-operator
forms of rules_array_api. `ArrayApiPrinter` prints for unbatched inputs; `BatchedArrayApiPrinter`
overrides what differs with a leading batch axis. The namespace is the local `xp` of each function
(`xp = _namespace(...)`, read off the inputs); an operator without an array-API form raises an
InternalError (never a NumPy form printed into an array-API module).
"""
from __future__ import annotations

import sympy

from .errors import FormulaError, InternalError
from .expr import RULES, Node
from .plan import constant
from .printer_numpy import NumpyPrinter
from . import expr as E
from .expr import walk
from .rules import ADD, ATOM, MUL, NEG, number_np
from .rules_array_api import (BATCH_SUM, BATCHED, CAST, FORMS, MASK, SCALED, fill, helpers, product, template,
                              transpose)


def _py(v) -> str:
    """A SymPy expression of the dims as Python source (no math functions: the module imports no math)."""
    src = sympy.pycode(v)
    if "math." in src or "numpy." in src:
        raise FormulaError(f"the array-API target cannot print the size expression {v}",
                           hint="generate the NumPy module (--target numpy) for this formula")
    return src


class ArrayApiPrinter(NumpyPrinter):
    """Plans and prints the body of `forward`, `value_and_grad`, `hvp` or `hessian` in the array API standard."""

    FORMS = (FORMS,)
    SCALED = SCALED
    TEMPLATE = "module_array_api.py.j2"
    TAKEN = frozenset({"xp", "array_api_compat"})
    CAST = CAST
    CAST_ARGS = ("xp",)

    #: The namespace's local name in the generated functions.
    xp = "xp"
    #: The input whose dtype and device new arrays (zeros, ones, eye) take; set by emit_module.
    like_input = None

    def like(self) -> str:
        """The dtype and device arguments of a new array: those of the inputs."""
        if self.like_input is None:
            raise InternalError("the array-API printer needs an array input to take dtype and device from")
        return f"dtype={self.like_input}.dtype, device=array_api_compat.device({self.like_input})"

    def dim_src(self, s) -> str:
        if isinstance(s, int):
            return str(s)
        if isinstance(s, sympy.Symbol):
            return self.dimnames[s]
        return "(" + _py(s.subs({k: sympy.Symbol(v) for k, v in self.dimnames.items()})) + ")"

    def const_src(self, v) -> str:
        if getattr(v, "free_symbols", None):
            return "(" + _py(v.subs({k: sympy.Symbol(nm) for k, nm in self.dimnames.items()})) + ")"
        if isinstance(v, (int, sympy.Integer)) or v.is_number:
            return number_np(v)
        return "(" + _py(v) + ")"

    def dt(self):
        return f", {self.like()}"

    def typed(self, src: str) -> str:
        """A constant scalar result in the module's dtype (float64: a Python float, which takes the arrays' dtype)."""
        return src if self.dtype == "float64" else f"{self.xp}.asarray({src}, dtype={self.xp}.{self.dtype})"

    def convert(self, scalars: list[str], like: str | None) -> list[str]:
        """Scalar inputs (Python numbers or 0-d arrays) as 0-d arrays of the inputs' namespace, dtype and device."""
        lines = []
        for name in scalars:
            if name == like:                         # every input is a scalar: the first sets dtype and device
                lines.append(f"{name} = {self.xp}.asarray({name})")
            else:
                lines.append(f"{name} = {self.xp}.asarray({name}, {self.like()})")
        return lines

    def constant(self, n: Node) -> bool:
        """n depends on no input (the seed of a batched sweep is a Python number too): returned, it is wrapped."""
        inputs = self.d.program.variables
        return not any(m.op == "var" and m.attrs[0] in inputs for m in walk(n))

    def result(self, src: str) -> str:
        """A constant scalar the module returns: a 0-d array like the inputs (never a Python float)."""
        return f"{self.xp}.asarray({src}, {self.like()})"

    def copy(self, src: str) -> str:
        return f"{self.xp}.asarray({src}, copy=True)"

    @staticmethod
    def helpers() -> dict[str, str]:
        return helpers()

    def template(self, n: Node):
        fmt = template(n.op, n)
        parts = [self.arg(x, fmt, i) for i, x in enumerate(n.args)]
        return fill(self, fmt, parts), fmt.prec

    def arg(self, x: Node, fmt, i: int) -> str:
        """Argument i of a printed form: a constant scalar handed to a function (not an operator) is a 0-d
        array like the inputs, since the standard's functions take arrays (exp(0.5) is folded by nobody)."""
        if "(" in fmt.template and not x.ndim and constant(x):
            return f"{self.xp}.asarray({self.ref(x)[0]}, {self.like()})"
        return self.paren(x, fmt.arg_need(i))

    def transpose(self, x: Node):
        return transpose(self, x)

    def product(self, n: Node, consts: list[str]):
        return product(self, n, consts)

    def mask(self, f: Node) -> str:
        return MASK[f.op](self, f)

    def zero_grad(self, name: str, var: Node) -> str:
        # every input is an array by now (scalars are converted on entry): a zero gradient is shaped like it
        own = self.d.program.variables.get(name)
        if own is not None and own.shape == var.shape:
            return f"{self.xp}.zeros_like({name})"
        return f"{self.xp}.zeros({self.shape_src(var.shape)}, {self.like()})"


class BatchedArrayApiPrinter(ArrayApiPrinter):
    """The array-API printer for inputs with a leading batch axis: only what differs is overridden."""

    FORMS = (BATCHED, FORMS)

    def template(self, n: Node):
        rule = RULES[n.op]
        if self.batched[n] and n.args and not rule.batch_safe:
            raise InternalError(f"Batching rule for `{n.op}` not implemented in the array-API printer: register a "
                                f"form in rules_array_api.BATCHED, or declare batch_safe=True. This is a bug in "
                                f"symbackprop; please report it.")
        return super().template(n)

    def value_src(self, objective: Node) -> str:
        if not self.batched[objective]:
            return super().value_src(objective)
        s, p = self.bsum(objective, [])
        return f"{s if p >= MUL else '(' + s + ')'} / {self.B}"

    def batch_grad(self, name, g, var, c, x):
        if name not in self.batch:
            # an unbatched input: its gradient is the sum over the batch, whatever the factor
            if c == -1:
                s, p = self.bsum(x, [])
                return "-" + (s if p > NEG else f"({s})")
            return self.bsum(x, [] if c == 1 else [self.const_src(c)])[0]
        if not self.batched[g]:                      # the same for every example: a fresh array shaped like the input
            return f"{self.xp}.zeros_like({name}) + {self.paren(g, ADD + 1)}"
        return None

    def bsum(self, n: Node, consts: list[str]):
        """Source of (Π consts) · Σ_b n_b, with products pushed inside so no per-example tensor is built."""
        if not self.batched[n]:
            return self.product(E.mul(E.const(1), n), consts + [self.B]) if consts else self.product(n, [self.B])
        scale = " * ".join(consts)
        form = BATCH_SUM.get(n.op)
        if form is not None and n not in self.name:
            out = form(self, n, consts, scale)
            if out is not None:
                return out
        core = f"{self.xp}.sum({self.ref(n)[0]}, axis=0)" if n.ndim else f"{self.xp}.sum({self.ref(n)[0]})"
        return (f"{scale} * {core}" if scale else core), MUL if scale else ATOM

