"""The array-API printers (a codegen stage, `codegen --target array-api`): subclasses of the NumPy
printers that print the same planned bodies in the array API standard, through the per-operator
forms of rules_array_api. `ArrayApiPrinter` prints for unbatched inputs; `BatchedArrayApiPrinter`
overrides what differs with a leading batch axis. The namespace is the local `xp` of each function
(`xp = _namespace(...)`, read off the inputs); an operator without an array-API form raises an
InternalError (never a NumPy form printed into an array-API module). The printed forms are the
NumPy printers' own (rules_forms, written once): these classes change only the spelling (SPELLING,
`xp`, templates from rules_array_api.TEMPLATES, masks as a `where`) and what the standard does
differently (scalars as 0-d arrays, copies, zeros like an input).
"""
from __future__ import annotations

import sympy
from sympy.printing.pycode import PythonCodePrinter

from .errors import FormulaError, InternalError
from .expr import Node
from .plan import constant
from .printer_numpy import BatchedPrinting, NumpyPrinter
from .expr import walk
from .rules import ADD, Fmt
from .rules_array_api import BATCHED, CAST, FORMS, MASK, SPELLING, helpers, template, transpose


class DimPrinter(PythonCodePrinter):
    """A SymPy expression of the dims (Python ints read off the shapes) as Python source. Arithmetic is
    Python's; a function of sizes (log(m) from logsumexp of a constant, √m from the norm of a ones
    vector) is the namespace's function of a 0-d array in the module's dtype and device, and an
    irrational number (2/√π from erf′) its float literal, so the module imports no `math` and the value
    traces under jax.jit like any other constant."""

    FUNCTIONS = ("log", "exp", "sqrt")

    def __init__(self, xp: str, like: str):
        super().__init__()
        self.xp, self.like = xp, like

    def _call(self, name: str, arg) -> str:
        return f"{self.xp}.{name}({self.xp}.asarray({self._print(arg)}, {self.like}))"

    @staticmethod
    def _number(e):
        """An irrational number (π, √π, log 2) as the float literal that reads back to it, or None."""
        return repr(float(e)) if e.is_number and not e.is_Rational else None

    def _print_Function(self, e):
        if (number := self._number(e)) is not None:
            return number
        if e.func.__name__ in self.FUNCTIONS:
            return self._call(e.func.__name__, e.args[0])
        return super()._print_Function(e)

    _print_log = _print_exp = _print_Function

    def _print_NumberSymbol(self, e):
        return repr(float(e))

    _print_Pi = _print_Exp1 = _print_NumberSymbol

    def _print_Pow(self, e, rational=False):
        if (number := self._number(e)) is not None:
            return number
        if e.exp == sympy.S.Half:
            return self._call("sqrt", e.base)
        if e.exp == -sympy.S.Half:
            return f"(1 / {self._call('sqrt', e.base)})"
        return super()._print_Pow(e, rational)


def _unbracket(src: str) -> str:
    """src without brackets around the whole of it: `(xp.log(m))` is `xp.log(m)`, `(a) * (b)` stays."""
    while src.startswith("(") and src.endswith(")"):
        depth = 0
        for i, ch in enumerate(src):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0 and i < len(src) - 1:
                return src
        src = src[1:-1]
    return src


def dims_source(v, xp: str, like: str, target: str = "array-API") -> str:
    src = DimPrinter(xp, like).doprint(v)
    if "math." in src or "numpy." in src:
        raise FormulaError(f"the {target} target cannot print the size expression {v}",
                           hint="generate the NumPy module (--target numpy) for this formula")
    return src


class ArrayApiPrinter(NumpyPrinter):
    """Plans and prints the body of `forward`, `value_and_grad`, `hvp` or `hessian` in the array API standard."""

    FORMS = (FORMS,)
    #: The target's name in messages, and its per-operator templates (rules_array_api.template).
    TARGET = "array-API"
    TEMPLATE = "module_array_api.py.j2"
    TAKEN = frozenset({"xp", "array_api_compat"})
    CAST = CAST
    CAST_ARGS = ("xp",)

    #: The namespace's local name in the generated functions.
    xp = "xp"
    SPELLING = SPELLING
    MASK = MASK
    WHERE_MASKS = True                               # bool × float is not in the standard: masks are a `where`
    #: The input whose dtype and device new arrays (zeros, ones, eye) take; set by emit_module.
    like_input = None

    #: The device of array `{0}`.
    DEVICE = "array_api_compat.device({0})"

    def like(self) -> str:
        """The dtype and device arguments of a new array: those of the inputs."""
        if self.like_input is None:
            raise InternalError(f"the {self.TARGET} printer needs an array input to take dtype and device from")
        return f"dtype={self.like_input}.dtype, device={self.DEVICE.format(self.like_input)}"

    def enter(self, args: str) -> list[str]:
        """The first lines of each generated function after the shape check: the namespace off the inputs."""
        return [f"{self.xp} = _namespace({args})"]

    def code(self, e) -> str:
        return dims_source(e, self.xp, self.like(), self.TARGET)

    def const_src(self, v) -> str:
        if getattr(v, "free_symbols", None) or isinstance(v, (int, sympy.Integer)) or v.is_number:
            return super().const_src(v)
        return "(" + self.code(v) + ")"

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
        """A constant scalar the module returns: a 0-d array like the inputs (never a Python float). A size
        expression with a function of the sizes (log m) is one already: its function is of a 0-d array
        like the inputs (DimPrinter), so it is returned as it is."""
        if f"{self.xp}." in src:
            return _unbracket(src)
        return f"{self.xp}.asarray({src}, {self.like()})"

    def copy(self, src: str) -> str:
        return f"{self.xp}.asarray({src}, copy=True)"

    @staticmethod
    def helpers() -> dict[str, str]:
        return helpers()

    def fmt(self, n: Node) -> Fmt:
        """n's template: rules_array_api.TEMPLATES (an InternalError where it has none)."""
        return template(n.op, n)

    def arg(self, x: Node, fmt, i: int) -> str:
        """Argument i of a printed form: a constant scalar handed to a function (not an operator) is a 0-d
        array like the inputs, since the standard's functions take arrays (exp(0.5) is folded by nobody)."""
        if "(" in fmt.template and not x.ndim and constant(x):
            return f"{self.xp}.asarray({self.ref(x)[0]}, {self.like()})"
        return self.paren(x, fmt.arg_need(i))

    def transpose(self, x: Node):
        return transpose(self, x)

    def zero_grad(self, name: str, var: Node) -> str:
        # every input is an array by now (scalars are converted on entry): a zero gradient is shaped like it
        own = self.d.program.variables.get(name)
        if own is not None and own.shape == var.shape:
            return f"{self.xp}.zeros_like({name})"
        return f"{self.xp}.zeros({self.shape_src(var.shape)}, {self.like()})"


class BatchedArrayApiPrinter(BatchedPrinting, ArrayApiPrinter):
    """The array-API printer for inputs with a leading batch axis: only what differs is overridden."""

    FORMS = (BATCHED, FORMS)
    UNBATCHED = ("Batching rule for `{op}` not implemented in the array-API printer: register a form in "
                 "rules_array_api.BATCHED, or declare batch_safe=True. This is a bug in symbackprop; please report it.")

    def same_grad(self, name: str, g: Node, var: Node) -> str:
        """The same for every example: a fresh array shaped like the input."""
        return f"{self.xp}.zeros_like({name}) + {self.paren(g, ADD + 1)}"
