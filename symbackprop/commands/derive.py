"""`symbackprop derive`: every partial in closed matrix form, with the chain-rule steps."""
from __future__ import annotations

import argparse

from ..cli import add_formula_arguments, split_names, stdout_is_unicode
from ..derivation import LAYOUTS, Derivation
from ..parse import parse_formula

HELP = """Print each partial derivative of the formula's objective in closed matrix form,
shaped like its variable (the gradient convention), after checking it numerically
against central finite differences at random points."""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("derive", help="closed-form gradients and chain-rule steps", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_formula_arguments(p)
    p.add_argument("--wrt", action="append", default=[], metavar="NAME[,NAME]",
                   help="only these variables or named intermediates (default: every variable)")
    p.add_argument("--steps", action="store_true", help="print the derivation node by node (intermediates and adjoints)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--latex", action="store_true", help="print LaTeX (an aligned block; with --steps, the steps too)")
    out.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--layout", choices=LAYOUTS, default="gradient",
                   help="gradient (shaped like the variable, default), numerator (transposed) or denominator "
                        "(same as gradient for a scalar objective)")
    p.add_argument("--no-check", action="store_true", help="skip the numerical self-check (not recommended)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random points of the self-check")
    second = p.add_argument_group("second order")
    second.add_argument("--hessian", action="store_true",
                        help="the Hessian with respect to one variable (--wrt NAME), in closed matrix form; for a "
                             "matrix variable, the Hessian-vector product instead")
    second.add_argument("--hvp", action="store_true",
                        help="the Hessian-vector product along a direction v (one per --wrt variable), in closed form")
    return p


def run(args) -> int:
    program = parse_formula(args.formula, args.shape, split_names(args.elementwise), split_names(args.function),
                            notation=args.notation)
    d = Derivation(program, wrt=split_names(args.wrt) or None, check=not args.no_check, seed=args.seed)
    if args.hessian or args.hvp:
        return _second_order(d, args)
    if args.json:
        print(d.to_json(args.layout, ascii=not stdout_is_unicode()))
        return 0
    if args.latex:
        if args.steps:
            print(d.steps(style="latex"))
            print()
        print(d.latex(layout=args.layout))
        return 0
    if args.steps:
        print(d.steps())
        print()
    if args.layout != "gradient":
        print(f"Layout: {args.layout}" + (" (each derivative is the transpose of the gradient; vectors are rows)"
                                           if args.layout == "numerator" else
                                           " (for a scalar objective this is the gradient, shaped like the variable)"))
    else:
        print("Gradients (each shaped like its variable):")
    print(d.text(layout=args.layout))
    if d.checks:
        print(check_line(d.checks))
    return 0


def _second_order(d, args) -> int:
    from ..derivation import resolve_wrt
    from ..errors import SymbackpropError
    from ..hessian import second_order
    wrt = split_names(args.wrt) or list(d.program.variables)
    resolve_wrt(d.program, wrt, kinds=("variable",), single="--hessian" if args.hessian else None,
                why="second derivatives are taken with respect to variables")
    if args.steps and args.json:
        raise SymbackpropError("--steps with --hessian or --hvp prints text or LaTeX, not JSON",
                               hint="drop --json, or drop --hessian/--hvp: the first-order JSON holds the steps")
    so = second_order(d, wrt=wrt, check=not args.no_check, seed=args.seed)
    if args.json:
        print(so.to_json(ascii=not stdout_is_unicode()))
        return 0
    if args.steps:
        print(so.steps(style="latex" if args.latex else "text"))
        print()
    if args.latex:
        print(so.latex())
        return 0
    print("Gradients (each shaped like its variable):")
    print(so.gradient_text())
    print()
    show_hvp = args.hvp or so.hessian is None
    if args.hessian and so.hessian is None:
        print(f"No Hessian matrix: {so.hessian_note}.")
    if show_hvp:
        what = ", ".join(f"{so.directions[n].attrs[0]} like {n}" for n in so.wrt)
        print(f"Hessian-vector product (the directional derivative of the gradient along {what}):")
        print(so.hvp_text())
    if args.hessian and so.hessian is not None:
        if show_hvp:
            print()
        n = so.wrt[0]
        print(f"Hessian with respect to {n} (symmetric, {so.hessian.shape[0]}×{so.hessian.shape[1]}):"
              if so.hessian.ndim == 2 else f"Second derivative with respect to {n}:")
        print(so.hessian_text())
    if so.checks:
        print(f"Checked against central finite differences of the gradient at {so.checks['trials']} random points: "
              f"worst relative error {so.checks['worst_relative_error']:.1e}.")
    return 0


def check_line(checks) -> str:
    """One line saying how the results were checked (or why some could not be)."""
    tried = [c for c in checks.values() if c.trials]
    if not tried:
        note = next((c.note for c in checks.values() if c.note), "")
        return f"Not verified numerically: {note or 'no usable random point'} (singular matrices count as undefined)."
    worst = max(c.worst_error for c in tried)
    line = (f"Checked against central finite differences at {max(c.trials for c in tried)} random points: "
            f"worst relative error {worst:.1e}.")
    unverified = [c for c in checks.values() if not c.verified]
    if unverified:
        line += " Not verified: " + "; ".join(f"{c.name} ({c.note or f'{c.passed}/{c.trials} points agreed'})"
                                               for c in unverified)
    return line
