"""The math notation's table: what its function names, LaTeX commands and symbols stand for.

The math notation (parse_math.py, grammar/math.lark) builds the same nodes as the NumPy notation.
A function written in maths (`tr`, `\\det`, `\\sigma`, `log det`, `∇max`, `‖x‖`, `|x|`, `√x`) is read
here as the formula language's built-in of that meaning, which then builds through the rule table
exactly as a NumPy-notation call does. The few operators the formula language does not let users
call (the printed `∇max(X)`, `softmax(Z, axis=1)` spelled `\\operatorname{softmax}_{\\text{rows}}`)
are built here too, so the notation can read back everything symbackprop prints.
"""
from __future__ import annotations

import sympy

from . import expr as E
from .expr import Node

#: Function names of the notation (as written, after `\\operatorname{…}`, `\\mathrm{…}` or a LaTeX
#: command lost its wrapper) -> the formula language's built-in.
FUNCTION_ALIASES = {
    "tr": "trace", "Tr": "trace", "trace": "trace", "ln": "log", "sigma": "sigmoid", "σ": "sigmoid",
    "logdet": "logdet", "diag": "diag", "Diag": "diag", "ReLU": "relu", "Relu": "relu", "erf": "erf",
    "sum": "sum", "inv": "inv",
}

#: Functions whose two-argument form is another built-in: the printed max(a, b) is NumPy's maximum.
TWO_ARGUMENTS = {"max": "maximum", "min": "minimum"}

#: Functions whose argument a 𝟙 of unknown size may be, sized by the result: name -> {the argument's kind:
#: (the result's kind, its dims from the argument's, the argument's dims from the result's)}. diag(s·𝟙) is s·I,
#: diag(𝟙 𝟙ᵀ/s) the vector 𝟙/s.
SIZED_BY_RESULT = {"diag": {
    "column": ("matrix", lambda a: (a[0], a[0]), lambda r: (r[0] if r[0] is not None else r[1],)),
    "matrix": ("column", lambda a: (a[0] if a[0] is not None else a[1],), lambda r: (r[0], r[0])),
}}

#: Functions of a square matrix: a 𝟙 in their argument whose size only one side fixes takes the other
#: (diag(w 𝟙ᵀ) is diag of an n×n matrix).
SQUARE_ARGUMENT = frozenset({"diag", "trace", "det", "logdet", "inv", "matrix_power", "pinv"})

#: Constructs of the notation -> the built-in they call.
NORM, ABS, SQRT, SUM, LOGDET, INVERSE, DIAG = "norm", "abs", "sqrt", "sum", "logdet", "inv", "diag"

#: LaTeX commands that stand for functions (\\log x, \\det(A), \\operatorname{tr} ...); the key is the
#: command without its backslash.
LATEX_FUNCTIONS = {"log": "log", "ln": "log", "exp": "exp", "tanh": "tanh", "sin": "sin", "cos": "cos",
                   "tan": "tan", "det": "det", "max": "max", "min": "min", "tr": "trace", "Tr": "trace",
                   "diag": "diag", "sum": "sum", "sqrt": "sqrt", "erf": "erf"}

#: LaTeX commands that are numbers.
LATEX_CONSTANTS = {"pi": sympy.pi}

#: Greek letters, as LaTeX commands and as Unicode letters, and the names they read as.
GREEK_LETTERS = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ϵ": "epsilon", "ζ": "zeta",
    "η": "eta", "θ": "theta", "ϑ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu",
    "ξ": "xi", "π": "pi", "ρ": "rho", "σ": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "ϕ": "phi",
    "χ": "chi", "ψ": "psi", "ω": "omega", "Γ": "Gamma", "Δ": "Delta", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi",
    "Π": "Pi", "Σ": "Sigma", "Υ": "Upsilon", "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega",
}
VARIANT_GREEK = {"varphi": "phi", "vartheta": "theta", "varepsilon": "epsilon"}
GREEK_COMMANDS = frozenset(GREEK_LETTERS.values()) | frozenset(VARIANT_GREEK)


def _softmax_rows(x: Node) -> Node:
    return E.RULES["softmax"].build(x, axis=1)


def _logsumexp_rows(x: Node) -> Node:
    return E.RULES["logsumexp"].build(x, axis=1)


def _maxmask(x: Node) -> Node:
    return Node("maxmask", (x,))


def _minmask(x: Node) -> Node:
    return Node("minmask", (x,))


#: Printed functions the formula language has no name for: name as read -> (arity, builder).
PRINTED_FUNCTIONS = {
    "∇max": (1, _maxmask), "∇min": (1, _minmask),
    "softmax_rows": (1, _softmax_rows), "logsumexp_rows": (1, _logsumexp_rows),
}


def inverse(x: Node) -> Node:
    """X⁻¹ of a square matrix."""
    return E.apply("inv", x)


def matrix_power(x: Node, k: int) -> Node:
    """Xᵏ of a square matrix, k an integer (negative k: a power of X⁻¹): S³ and S^{3} in math notation."""
    return E.RULES["matrix_power"].build(x, E.const(k))


def integer_constant(node: Node):
    """The value of an integer constant node (2, −1, 3.0), else None."""
    if node.op == "const" and node.attrs[0].is_integer:
        return int(node.attrs[0])
    return None


def partial(name: str, indices: tuple, args: tuple) -> Node:
    """∂ᵢⱼf(a, b): the partial derivative of an unspecified scalar function (declared with --function)."""
    return Node("fn", tuple(args), (name, tuple(sorted(indices))))


def abstract(name: str, order: int, x: Node) -> Node:
    """Φ⁽ᵏ⁾(x) of an unspecified elementwise function (declared with --elementwise)."""
    return Node("phi", (x,), (name, order))


def is_elementwise(name: str) -> bool:
    """Whether the built-in `name` applies entry by entry (so it keeps a 𝟙 of unknown size pending)."""
    rule = E.RULES.get(name)
    return rule is not None and rule.kind == "elementwise"
