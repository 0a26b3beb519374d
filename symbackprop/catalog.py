"""The modules checked into generated/: the one list that `python tools/refresh_generated.py --refresh`
regenerates, the ReLU trainer imports (or emits in memory when installed without the checkout), and
generated/README.md documents (tests/test_codegen.py checks the README's table against it)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class GeneratedModule:
    """generated/<name>.py: `symbackprop codegen` of `formula` with these options."""
    name: str
    formula: str
    shapes: tuple[str, ...] = ()
    wrt: tuple[str, ...] = ()
    batch: tuple[str, ...] = ()
    hessian: bool = False
    hvp: bool = False

    @property
    def path(self) -> str:
        """The path relative to the repository root."""
        return f"generated/{self.name}.py"

    @property
    def options(self) -> list[str]:
        """The codegen arguments after the formula, in the order the README shows them."""
        out = [a for s in self.shapes for a in ("--shape", s)]
        out += ["--wrt", ",".join(self.wrt)] if self.wrt else []
        out += ["--batch", ",".join(self.batch)] if self.batch else []
        return out + ["--hessian"] * self.hessian + ["--hvp"] * self.hvp

    @property
    def command(self) -> str:
        """The shell command that writes the module (as generated/README.md lists it)."""
        return " ".join(["symbackprop codegen", shlex.quote(self.formula), *self.options, "-o", self.path])


_RELU = "(v @ relu(w * x + b) + c - y)**2"
_RELU_SHAPES = ("w=h", "b=h", "v=h")
#: The same loss for one net with its minibatch as vectors x, y (o = ones): batching every input of
#: this formula stacks whole nets on a leading axis (used by relu --seeds).
_STACK = "mean((relu(outer(x, w) + outer(o, b)) @ v + c * o - y)**2)"
_STACK_SHAPES = ("w=h", "b=h", "v=h", "x=B", "y=B", "o=B")
_STACK_BATCH = ("x", "y", "o", "w", "b", "v", "c")
_MLP = "0.5 * norm(W2 @ {phi}(W1 @ x + b) - y)**2"

MODULES: list[GeneratedModule] = [
    GeneratedModule("relu_net", _RELU, _RELU_SHAPES, ("w", "b", "v", "c"), ("x", "y")),
    GeneratedModule("relu_net_output", _RELU, _RELU_SHAPES, ("v", "c"), ("x", "y")),
    GeneratedModule("relu_net_seeds", _STACK, _STACK_SHAPES, ("w", "b", "v", "c"), _STACK_BATCH),
    GeneratedModule("relu_net_output_seeds", _STACK, _STACK_SHAPES, ("v", "c"), _STACK_BATCH),
    GeneratedModule("mlp_relu", _MLP.format(phi="relu"), ("W1=d,d", "W2=d,d", "x=d", "b=d", "y=d")),
    GeneratedModule("mlp_tanh", _MLP.format(phi="tanh"), ("W1=d,d", "W2=d,d", "x=d", "b=d", "y=d")),
    GeneratedModule("mlp_relu_batch", _MLP.format(phi="relu"), ("W1=h,d", "W2=k,h", "x=d", "b=h", "y=k"),
                    ("W1", "b", "W2"), ("x", "y")),
    GeneratedModule("part_a", "f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))"),
    GeneratedModule("logistic_hessian", "mean(softplus(A @ x) - y * (A @ x))", ("A=m,n", "x=n", "y=m"), ("x",),
                    hessian=True, hvp=True),
    GeneratedModule("tanh_net_hessian", _MLP.format(phi="tanh"), ("W1=h,d", "W2=k,h", "x=d", "b=h", "y=k"),
                    ("x",), hessian=True, hvp=True),
]
BY_NAME: dict[str, GeneratedModule] = {m.name: m for m in MODULES}
