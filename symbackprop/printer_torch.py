"""The PyTorch printers (a codegen stage, `codegen --target torch`): subclasses of the array-API
printers that print the same planned bodies with PyTorch's own spelling (rules_torch), into a module
that imports torch and nothing else. What differs from the array-API target is all here: the
namespace is `torch` itself (no lookup per call), new tensors take an input's `.dtype` and `.device`,
relu' masks multiply into float products as booleans (as NumPy's do), and the helpers take no
namespace argument.
"""
from __future__ import annotations

from .printer_array_api import ArrayApiPrinter, BatchedArrayApiPrinter
from .rules_torch import BATCHED, CAST, FORMS, MASK, SPELLING, helpers, template


class TorchPrinter(ArrayApiPrinter):
    """Plans and prints the body of `forward`, `value_and_grad`, `hvp` or `hessian` in PyTorch."""

    FORMS = (FORMS,)
    TARGET = "PyTorch"
    TEMPLATE = "module_torch.py.j2"
    TAKEN = frozenset({"torch"})
    CAST = CAST
    CAST_ARGS = ()
    xp = "torch"
    SPELLING = SPELLING
    MASK = MASK
    WHERE_MASKS = False                              # bool × float tensor is a float tensor, as in NumPy
    #: A Python number times a boolean tensor is a float32 tensor (torch's default dtype), whatever the
    #: module's dtype: beside numbers alone, a mask prints as a float of its own (_step).
    MASK_NEEDS_TENSOR = True
    DEVICE = "{0}.device"

    def enter(self, args: str) -> list[str]:
        return []                                    # `torch` is imported: nothing to look up

    def convert(self, scalars: list[str], like: str | None) -> list[str]:
        """Scalar inputs as 0-d tensors of the inputs' dtype and device; when every input is a scalar, the
        first is a float64 tensor (torch.asarray of a Python float would be torch's default float32)."""
        return [f"{name} = torch.asarray({name}, dtype=torch.float64)" if name == like
                else f"{name} = torch.asarray({name}, {self.like()})" for name in scalars]

    def copy(self, src: str) -> str:
        return f"torch.clone({src})"

    @staticmethod
    def helpers() -> dict[str, str]:
        return helpers()

    def fmt(self, n):
        return template(n.op, n)


class BatchedTorchPrinter(TorchPrinter, BatchedArrayApiPrinter):
    """The PyTorch printer for inputs with a leading batch axis: the array-API batched printer's
    overrides, with PyTorch's tables."""

    FORMS = (BATCHED, FORMS)
    UNBATCHED = ("Batching rule for `{op}` not implemented in the PyTorch printer: register a form in "
                 "rules_torch.BATCHED, or declare batch_safe=True. This is a bug in symbackprop; please report it.")
