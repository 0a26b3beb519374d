"""Printers: expression nodes as plain-text math, LaTeX, or NumPy source.

All three read their templates from the rule table. Printing is iterative
(bottom-up over the DAG), so deep expressions print without recursion, and a
node given a name in `names` prints as that name.
"""
from __future__ import annotations

import string
from collections import OrderedDict

from .expr import RULES, Node, substitute, walk
from .rules import ATOM, Fmt

_PARENS = {"text": ("(", ")"), "latex": ("\\left(", "\\right)"), "np": ("(", ")")}


#: The last few expansions, by their roots (nodes are hash-consed, so equal roots are the same DAG): the
#: self-check evaluates the same gradients at several points, and each evaluation used to expand them anew.
_EXPANDED: OrderedDict[tuple, tuple] = OrderedDict()
_EXPANDED_KEEP = 16


def expand_macros(roots: list[Node]) -> list[Node]:
    """Replace display-only nodes (tanh'(z), …) by the primitive expressions they stand for."""
    key = tuple(roots)
    hit = _EXPANDED.get(key)
    if hit is None:
        hit = _EXPANDED[key] = tuple(_expand(list(key)))
        while len(_EXPANDED) > _EXPANDED_KEEP:
            _EXPANDED.popitem(last=False)
    else:
        _EXPANDED.move_to_end(key)
    return list(hit)


def _expand(roots: list[Node]) -> list[Node]:
    mapping = {n: RULES[n.op].expand(n) for n in walk(roots) if RULES[n.op].expand}
    if not mapping:
        return roots
    # expansions may themselves hold macros (rare): expand to a fixed point
    out = substitute(roots, mapping)
    return _expand(out) if any(RULES[n.op].expand for n in walk(out)) else out


def print_expr(root: Node, style: str = "text", names: dict[Node, str] | None = None, define: bool = False) -> str:
    """Print `root` in `style` ('text', 'latex' or 'np'); nodes in `names` print as their names
    (except `root` itself when `define` is true: then it prints as its definition).

    NumPy source spells out display-only nodes (tanh'(z) -> 1 - tanh(z)**2) in place, over the names
    of their arguments, so a named intermediate is never printed again inside an expansion."""
    return _render(root, style, names or {}, define, {})[0]


def _render(root: Node, style: str, names: dict[Node, str], define: bool, pre: dict) -> tuple[str, int]:
    done: dict[Node, tuple[str, int]] = dict(pre)
    lo, hi = _PARENS[style]
    for node in walk(root, stop={**names, **pre} if pre else names):
        if node in pre:
            continue
        if node in names and not (define and node is root):
            done[node] = (names[node], ATOM)
            continue
        rule = RULES[node.op]
        if style == "np" and rule.expand:
            done[node] = _render(rule.expand(node), "np", names, False, {a: done[a] for a in node.args})
            continue
        fmt = getattr(rule, style)
        fmt = fmt(node) if callable(fmt) and not isinstance(fmt, Fmt) else fmt
        if not node.args:                            # leaves: the template is the text itself
            done[node] = (fmt.template, fmt.prec)
            continue
        args = node.args
        if fmt.through is not None:                  # a form over the arguments' own arguments (X⁻ᵀ)
            inner = args[fmt.through]
            if inner in names or inner in pre or any(a not in done for a in inner.args):
                fmt = fmt.plain
            else:
                args = inner.args
        parts = []
        for i, arg in enumerate(args):
            s, p = done[arg]
            if i in rule.contracts and arg not in names and RULES[arg.op].unsized is not None:
                s = RULES[arg.op].unsized(arg, style) or s       # W 𝟙, xᵀ𝟙, A I: the product fixes the size
            parts.append(f"{lo}{s}{hi}" if p < fmt.arg_need(i) else s)
        done[node] = (_fill(fmt.template, parts, style), fmt.prec)
    return done[root]


#: Text a leading minus may follow without parentheses: the start of an argument list or group.
_OPEN = ("(", "[", ", ", "‖", "|")


def _fill(template: str, parts: list[str], style: str) -> str:
    """`template.format(*parts)`, so that a part beginning with a minus sign never reads as something
    else: `a + −b` -> `a − b`, `a − −b` -> `a + b`, and in plain text `x·−y` -> `x·(−y)`, `A −B` -> `A (−B)`."""
    if style == "np":
        return template.format(*parts)
    minus = "−" if style == "text" else "-"
    out = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        out += literal
        if field is None:
            continue
        part = parts[int(field)]
        if part.startswith(minus):
            if out.endswith(" + "):
                out, part = out[:-3] + f" {minus} ", part[1:].lstrip()
            elif out.endswith(f" {minus} "):
                out, part = out[:-3] + " + ", part[1:].lstrip()
            elif style == "text" and out and not out.endswith(_OPEN):
                part = f"({part})"
        out += part
    return out


def to_text(node: Node, names=None) -> str:
    return print_expr(node, "text", names)


def to_latex(node: Node, names=None) -> str:
    return print_expr(node, "latex", names)


def to_numpy(node: Node, names=None) -> str:
    return print_expr(node, "np", names)


def shared_names(roots: list[Node], names: dict[Node, str], prefix: str = "t", known: dict[Node, str] | None = None,
                 reserved=()) -> dict[Node, str]:
    """Names for sub-expressions used more than once across `roots`, so printed results
    refer to shared intermediates instead of repeating (and blowing up) them.

    `names` are names already given (always used: the user's, or those of an earlier part of the same
    output, so a name keeps one meaning throughout); `known` are preferred auto-names (x1, x2, …);
    new names avoid `reserved` (the variables' and dims' names) and every name in `names`.
    """
    out = dict(names)
    uses: dict[Node, int] = {}
    order = walk(roots)
    for node in order:
        for arg in set(node.args):
            uses[arg] = uses.get(arg, 0) + 1
    taken = set(out.values()) | set(reserved)
    counter = 0
    for node in order:
        if node in out or not node.args or uses.get(node, 0) < 2 or len(print_expr(node, "text", out)) <= SMALL:
            continue
        if known and node in known:
            out[node] = known[node]
        elif len(print_expr(node, "text", out)) <= BIG:
            continue                                 # short enough to repeat
        else:
            counter += 1
            while f"{prefix}{counter}" in taken:
                counter += 1
            out[node] = f"{prefix}{counter}"
        taken.add(out[node])
    return out


#: Shared adjoint sub-expressions printing longer than this get a name instead of being repeated.
BIG = 60
#: ... and those this short are never named: Wᵀ, −x, (X⁻¹)ᵀ read better inline.
SMALL = 6
