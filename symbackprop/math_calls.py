"""Functions in the math notation: calls (relu(x), \\operatorname{tr}\\left(A\\right), σ'(z), ∂₁f(a, b)),
norms, absolute values and roots, built as the NumPy notation builds a call (through its visitor,
whitelist.py, on syntax-tree nodes made here, never from text)."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import sympy

from . import expr as E
from . import rules_math as M
from .errors import FormulaError, Hint, ShapeError, SymbackpropError
from .expr import Node
from .math_text import Token, Tree, primes_of, read_name
from .math_values import MAT, ROW, Failure, Val, choose, either, elementwise, unary, val
from .program import PRIME


@dataclass(frozen=True)
class Function:
    """A function name not yet applied (\\log, tr, relu', a declared Φ)."""

    name: str
    primes: int
    tok: object
    shown: str
    index: str | None = None

    kind = "function"
    entry = False
    pending = False




class Calls:
    """The Builder's methods for calls and the function-like constructs (a mixin of parse_math.Builder)."""

    def rule_norm(self, tree):
        inner = self.value(tree.children[1])
        sub = str(tree.children[3]) if len(tree.children) > 3 else ""
        if inner.kind == MAT and "2" in sub:
            raise Failure("‖A‖₂ of a matrix is its spectral norm, which symbackprop does not have",
                           hint="‖A‖_F (or ‖A‖) is the Frobenius norm", cls=FormulaError)
        return self._call_name(M.NORM, [(inner, tree.children[1])], {}, tree)

    def rule_abs(self, tree):
        return self._call_name(M.ABS, [(self.value(tree.children[1]), tree.children[1])], {}, tree)

    def rule_frac(self, tree):
        a, b = self.value(tree.children[1]), self.value(tree.children[2])
        return elementwise(E.div, a, b, "/")

    def rule_frac_digits(self, tree):
        return self.token(tree.children[0])

    def rule_sqrt(self, tree):
        return self._call_name(M.SQRT, [(self.value(tree.children[1]), tree.children[1])], {}, tree)

    def rule_root(self, tree):
        n = int(float(str(tree.children[1])))
        if n < 1:
            raise Failure("a root of order 0", cls=FormulaError)
        v = self.value(tree.children[2])
        return elementwise(E.power, v, val(E.const(sympy.Rational(1, n))), "^")

    def rule_ones(self, tree):
        return self.token(tree.children[0])

    def rule_sum_over(self, tree):
        return self.token(tree.children[0])

    def rule_logdet(self, tree):
        return self.token(tree.children[0])

    def rule_logdet_call(self, tree):
        f = Function(M.LOGDET, 0, tree.children[0], "log det")
        return self._apply_call(f, tree.children[1], tree)

    def rule_primed(self, tree):
        v = self.build(tree.children[0])
        if not isinstance(v, Function):
            self.fail(tree, f"`{self.text(tree)}`: a prime marks the derivative of a function",
                      hint="write f'(x) for the derivative of a declared or built-in function")
        return Function(v.name, len(primes_of(tree.children[1])), v.tok, v.shown)

    def rule_call(self, tree):
        head, args = tree.children[0], tree.children[1]
        if isinstance(head, Token) and head.type in ("NAME", "GREEK", "WRAPPED"):
            nm = read_name(head)
            f = self.resolve(nm, head, new_ok=False)
            if f is None:                             # a name nothing declares, called: an unknown function
                self._unknown_call(head, nm, args)
        else:
            f = self.build(head)
        if not isinstance(f, Function):
            # a value followed by parentheses: a product, W(x + y)
            items = args.children
            if len(items) != 1 or (isinstance(items[0], Tree) and items[0].data == "keyword"):
                nm = read_name(head) if isinstance(head, Token) and head.type in ("NAME", "GREEK", "WRAPPED") else None
                self._unknown_call(head, nm, args)
            return self._times(f, self.value(items[0]), head, items[0])
        return self._apply_call(f, args, tree)

    def _unknown_call(self, head, nm, args):
        name = nm.canonical if nm is not None else self.text(head)
        if name in self.p.variables or name in self.p.intermediates or name in self.cx.scope:
            self.fail(head, f"`{name}` is a variable, not a function")
        holders = [self._ast_pos(ast.Name(id=f" arg{i}", ctx=ast.Load()), a) for i, a in enumerate(args.children)]
        call = self._ast_pos(ast.Call(func=self._ast_pos(ast.Name(id=name, ctx=ast.Load()), head),
                                      args=holders, keywords=[]), head)
        self.ctx().visit(call)

    def rule_primed_call(self, tree):
        head, primes, args = tree.children
        f = self.build(head)
        if not isinstance(f, Function):
            nm = read_name(head) if isinstance(head, Token) else None
            name = nm.canonical if nm is not None else self.text(head)
            self.fail(head, f"no derivative `{name}{chr(39) * len(primes_of(primes))}` is known",
                      hint="write f'(z) for a built-in elementwise function (relu'(z), tanh'(z), σ'(z)) or one "
                           "declared with --elementwise")
        return self._apply_call(Function(f.name, len(primes_of(primes)), f.tok, f.shown), args, tree)

    def rule_partial_call(self, tree):
        mark, head, args = tree.children
        indices = tuple(int(c) - 1 for c in re.sub(r"\D", "", str(mark)))
        nm = read_name(head)
        name = nm.canonical
        if name not in self.p.functions:
            self.fail(head, f"`∂{''.join(str(i + 1) for i in indices)}{name}`: `{name}` is not declared as a function",
                      hint=Hint(f"declare it with --function {name}", f"add {name} to Scalar functions"))
        values = [self.value(a) for a in args.children]
        if any(i < 0 or i >= len(values) for i in indices):
            self.fail(mark, f"{name} takes {len(values)} arguments; there is no argument {max(indices) + 1}")
        return val(M.partial(name, indices, tuple(self._concrete(v, a) for v, a in zip(values, args.children))))

    def _apply_call(self, f, args_tree, tree):
        positional, keywords = [], {}
        for a in args_tree.children:
            if isinstance(a, Tree) and a.data == "keyword":
                key, value = a.children
                keywords[str(key)] = (value, a)
            else:
                positional.append((self.value(a), a))
        return self.call(f, positional, keywords, tree, primes=f.primes)

    def call(self, f, positional, keywords, tree, primes=0) -> Val:
        return self._call_name(f.name, positional, keywords, tree, primes)

    def _concrete(self, v: Val, item) -> Node:
        if v.pending and not v.alts and v.dims and all(d is not None for d in v.dims):
            return v.build()                              # a sized 𝟙ₙ or Iₙ
        if v.pending:
            self.fail(item, f"the size of {v.what} here is not fixed by anything",
                      hint="write it where the expression around it gives it a size (A + I, X W + 𝟙 bᵀ)")
        return v.node

    def _call_name(self, name, positional, keywords, tree, primes=0) -> Val:
        """A call of a built-in, declared, defined or printed function, built as the NumPy notation builds it."""
        if len(positional) == 2 and name in M.TWO_ARGUMENTS and not primes:
            name = M.TWO_ARGUMENTS[name]
        if name in M.PRINTED_FUNCTIONS and not primes:
            arity, build = M.PRINTED_FUNCTIONS[name]
            if len(positional) != arity or keywords:
                self.fail(tree, f"{name} takes {arity} argument{'s' * (arity != 1)}")
            try:
                return val(build(*(self._concrete(v, a) for v, a in positional)))
            except ShapeError as e:
                self.fail(tree, e.message, e.hint, ShapeError)
        elementwise_fn = (M.is_elementwise(name) or name in self.p.elementwise) and len(positional) == 1 and not keywords
        if len(positional) == 1 and positional[0][0].alts:
            (v, a), = positional                      # f(𝟙/s): every reading of 𝟙 that f takes stays possible

            def attempt(x):
                try:
                    return self._call_name(name, [(x, a)], keywords, tree, primes)
                except SymbackpropError as e:
                    raise Failure(e.message, e.hint, type(e)) from None
            return either(attempt, v)
        positional = [(choose(v), a) for v, a in positional]
        if name in M.SQUARE_ARGUMENT and positional and positional[0][0].pending and positional[0][0].kind == MAT:
            v, a = positional[0]
            size = v.dims[0] if v.dims[0] is not None else v.dims[1]
            if size is not None and None in v.dims:   # diag(w 𝟙ᵀ): square, so 𝟙 is as long as w
                positional[0] = (val(v.build((size, size))), a)
        if name in M.SIZED_BY_RESULT and len(positional) == 1 and positional[0][0].pending and not primes:
            (v, a), = positional
            sized = M.SIZED_BY_RESULT[name].get(v.kind)
            if sized is not None:
                kind, dims, arg_dims = sized

                def make(d, v=v, a=a):
                    return self._ast_call(name, 0, [(v.build(arg_dims(d)), a)], {}, tree)
                return Val(kind, None, dims(v.dims), make, v.what)
        if elementwise_fn:
            (v, a), = positional
            if v.pending or v.kind in (ROW,) or v.entry:
                build = lambda x: self._ast_call(name, primes, [(x, a)], {}, tree)    # noqa: E731
                if v.pending:
                    return unary(build, v)
                return Val(v.kind, build(v.node), v.dims, entry=v.entry)
        args = [(self._concrete(v, a), a) for v, a in positional]
        node = self._ast_call(name, primes, args, keywords, tree)
        row = len(positional) == 1 and positional[0][0].kind == ROW and node.shape == positional[0][0].node.shape
        return val(node, row=row)

    def _ast_call(self, name, primes, args, keywords, tree) -> Node:
        holders, extra = [], {}
        for i, (node, item) in enumerate(args):
            key = f" arg{i}"
            extra[key] = node
            holders.append(self._ast_pos(ast.Name(id=key, ctx=ast.Load()), item))
        kws = []
        for key, (value, item) in keywords.items():
            kws.append(ast.keyword(arg=key, value=self._literal(value, item)))
        head = tree.children[0] if isinstance(tree, Tree) and tree.children else tree
        func = self._ast_pos(ast.Name(id=name + PRIME * primes, ctx=ast.Load()), head if head is not None else tree)
        call = self._ast_pos(ast.Call(func=func, args=holders, keywords=kws), tree)
        return self.ctx(extra).visit(call)

    def _literal(self, value, item):
        """A keyword's value (axis=1, axis=-1) as a syntax-tree literal; anything else is refused by the visitor."""
        neg = isinstance(value, Tree) and value.data == "negative"
        inner = value.children[-1] if neg else value
        if isinstance(inner, Tree) and inner.data == "number":
            inner = inner.children[0]
        if isinstance(inner, Token) and inner.type == "NUMBER" and str(inner).isdigit():
            lit = self._ast_pos(ast.Constant(int(str(inner))), inner)
            return self._ast_pos(ast.UnaryOp(op=ast.USub(), operand=lit), value) if neg else lit
        return self._ast_pos(ast.Constant(str(self.text(value))), value)


