"""symbackprop: formulas to closed-form matrix gradients, with the chain-rule steps,
graphs, generated NumPy code and a checker for worked solutions."""
from . import rules as _rules  # noqa: F401  (fills the rule table)
from . import rules_const as _rules_const  # noqa: F401  (f(s·𝟙) = f(s)·𝟙 as it is built)
from .derivation import Derivation, derive
from .errors import FormulaError, InternalError, LimitError, ShapeError, SymbackpropError
from .parse import parse_formula

__all__ = ["derive", "Derivation", "parse_formula", "SymbackpropError", "FormulaError", "ShapeError",
           "LimitError", "InternalError"]
__version__ = "0.1.0"
from .check import Verdict, check  # noqa: E402  (the worked-solution checker)
__all__ += ["check", "Verdict"]
