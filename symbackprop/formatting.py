"""Names and numbers as plain text, LaTeX and NumPy source: the helpers the rule table's printed forms share."""
from __future__ import annotations

import sympy

# Printing precedences (higher binds tighter).
ADD, MUL, MATMUL, NEG, POW, POSTFIX, ATOM = 10, 20, 22, 25, 30, 40, 100

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
          "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Delta",
          "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}


def latex_escape(s: str) -> str:
    return s.replace("{", "{{").replace("}", "}}")


def latex_name(name: str) -> str:
    """W1 -> W_{1}, x_hat -> x_{hat}, Phi -> \\Phi."""
    base, _, rest = name.partition("_")
    digits = ""
    while base and base[-1].isdigit() and len(base) > 1:
        digits = base[-1] + digits
        base = base[:-1]
    if base in _GREEK:
        base = "\\" + base
    elif len(base) > 1:
        base = f"\\mathrm{{{base}}}"
    sub = ",".join(s for s in (digits, rest) if s)
    return f"{base}_{{{sub}}}" if sub else base


def number_text(v) -> str:
    """A constant as plain-text math: 0.5, 1/3, −2, 1/(m·n), 1/n²; never Python syntax (no ** or *)."""
    return number_fmt(v)[0]


def number_fmt(v) -> tuple[str, int]:
    """A constant as plain-text math with the precedence of that text (1/3 is a quotient, −2 a negation),
    so that the printers parenthesise it wherever it would otherwise read differently: (2/3)^x, x^(1/3)."""
    v = sympy.sympify(v)
    if v.is_Add:                                     # 1/m − 1/n, 1/2 + √3: a positive term first where there is one
        terms = sorted(v.as_ordered_terms(), key=lambda t: t.could_extract_minus_sign())
        out = _grouped(number_fmt(terms[0]), ADD)
        for t in terms[1:]:
            neg = t.could_extract_minus_sign()
            out += (" − " if neg else " + ") + _grouped(number_fmt(-t if neg else t), ADD + 1)
        return out, ADD
    if v.is_number and v.is_real and v < 0 or not v.is_number and v.could_extract_minus_sign():
        s, p = number_fmt(-v)
        return "−" + (f"({s})" if p < MUL else s), NEG
    if isinstance(v, sympy.Float):
        return _float_text(float(v))
    if isinstance(v, sympy.Rational) and not isinstance(v, sympy.Integer):
        q = int(v.q)
        while q % 2 == 0:
            q //= 2
        while q % 5 == 0:
            q //= 5
        if q == 1 and sympy.Rational(repr(float(v))) == v:      # a terminating decimal: print as typed
            return _decimal(float(v)), ATOM
        return f"{v.p}/{v.q}", MUL
    if v.is_Number or v.is_Symbol:
        return str(v), ATOM
    if v.is_Pow and not (v.exp.is_Rational and v.exp < 0):
        base = _grouped(number_fmt(v.base), POW + 1)
        if v.exp.is_Integer and v.exp > 1:
            return base + superscript(int(v.exp)), POW
        return base + "^" + _grouped(number_fmt(v.exp), POW + 1), POW
    num, den = sympy.fraction(v)
    if den != 1:
        return _grouped(number_fmt(num), MUL) + "/" + _grouped(number_fmt(den), MUL + 1), MUL
    if v.is_Mul:
        return "·".join(_grouped(number_fmt(f), MUL + 1) for f in v.as_ordered_factors()), MUL
    return str(v).replace("**", "^").replace("*", "·"), ATOM    # not reached for products and powers of dims


def _grouped(fmt: tuple[str, int], need: int) -> str:
    s, p = fmt
    return f"({s})" if p < need else s


def _float_text(f: float) -> tuple[str, int]:
    from fractions import Fraction
    r = Fraction(f).limit_denominator(1000)
    if float(r) == f and r.denominator < 1000 and (r != Fraction(f) or r.denominator == 1):   # 1/3, 0.1, 3
        return number_fmt(sympy.Rational(r.numerator, r.denominator))
    return _decimal(f), ATOM


def _decimal(f: float) -> str:
    """The shortest decimal that reads back as `f`; 1e-08 as 1e-8 (no Python padding)."""
    s = repr(f)
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def superscript(k: int) -> str:
    """An integer exponent in superscript digits: 2 -> ², -1 -> ⁻¹."""
    return str(k).translate(_SUPERSCRIPT)


_SUBSCRIPT = str.maketrans("aeoxhklmnpstijruv0123456789", "ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ₀₁₂₃₄₅₆₇₈₉")
_SUBSCRIPTABLE = set("aeoxhklmnpstijruv0123456789")


def size_subscript(shape: tuple, style: str = "text") -> str:
    """The size of 𝟙 or I, as the subscript that follows the symbol: in text 𝟙ₙ (a one-letter size that
    Unicode has a subscript for, or digits), else 𝟙_d, 𝟙_hidden; 𝟙_(m×n) (a matrix); in LaTeX \\mathbf{1}_{n},
    \\mathbf{1}_{m \\times n}, I_{n}.

    >>> size_subscript(("n",)), size_subscript(("d",)), size_subscript(("m", "n")), size_subscript((4,), "latex")
    ('ₙ', '_d', '_(m×n)', '_{4}')
    """
    parts = [str(d) for d in shape]
    if style == "latex":
        return "_{" + " \\times ".join(p if p.isdigit() else latex_name(p) for p in parts) + "}"
    if len(parts) == 1 and (len(parts[0]) == 1 or parts[0].isdigit()) and set(parts[0]) <= _SUBSCRIPTABLE:
        return parts[0].translate(_SUBSCRIPT)
    if len(parts) == 1 and parts[0].isidentifier():
        return "_" + parts[0]
    return "_(" + "×".join(parts) + ")"


def number_np(v) -> str:
    """A constant as NumPy source: exact integers stay ints, others become floats (repr round-trips)."""
    if isinstance(v, sympy.Integer) or (isinstance(v, int)):
        return repr(float(int(v)))
    if v.is_number:
        return repr(float(v))
    return "(" + sympy_np(v) + ")"                   # symbolic dims: printed over the size names


def sympy_np(v) -> str:
    """A SymPy expression of the dims as NumPy source: functions of them (log n, √n) go through NumPy,
    the one module a generated file imports."""
    return sympy.pycode(v).replace("math.", "np.")
