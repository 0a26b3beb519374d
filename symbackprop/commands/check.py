"""`symbackprop check`: is a claimed derivative right, and if not, what is wrong with it?"""
from __future__ import annotations

import argparse
import json
import os

from ..check import Problem
from ..solutions import SolutionError, check_solution
from ..cli import add_formula_arguments, split_names
from ..errors import FormulaError

HELP = """Check a claimed derivative against the true one, symbolically where possible and always
numerically (several random sizes for the symbolic dims, several random points, several
concrete stand-ins for abstract functions, non-symmetric matrices).

Two forms:
  symbackprop check FORMULA [--shape ...] [--elementwise Phi] [--let NAME=EXPR ...] --wrt NAME --claim EXPR
  symbackprop check SOLUTION.yaml          (a worked solution: the problem and a list of claims)

Verdicts: correct; correct up to transpose (the claim follows the numerator layout); wrong,
with a diagnosis (wrong shape, a constant factor, the sign, a forgotten derivative factor,
a missing or extra term, undefined (NaN) where the derivative is defined, right only for
symmetric matrices or scalars) or a counterexample.
Exit status: 0 when every claim is correct (either kind), 1 when one is wrong, 2 for malformed
input (a claim that does not parse or names something unknown, a bad file)."""

EPILOG = """examples:
  symbackprop check '0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2' -e Phi \\
      -s W1=h,d -s W2=k,h -s x=d -s b=h -s y=k \\
      --let x1='W1 @ x + b' --let x4='W2 @ Phi(x1) - y' --wrt W1 --claim "outer(W2.T @ x4 * Phi'(x1), x)"
  symbackprop check docs/solutions/handout-2d.yaml --format md"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="check a claimed derivative or a worked-solution file", description=HELP,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_formula_arguments(p)
    p.add_argument("--let", action="append", default=[], metavar="NAME=EXPR",
                   help="name an intermediate for use in claims and --wrt, e.g. --let x1='W1 @ x + b' (repeatable)")
    p.add_argument("--wrt", metavar="NAME", help="the variable, named intermediate or let the claim differentiates by")
    p.add_argument("--claim", metavar="EXPR", help="the claimed derivative, in the formula language "
                   "(may use lets, Phi'(z), relu'(z), diag(v), outer(u, v), .T) or in maths "
                   "(\"(W_2^\\top x_4 \\odot \\Phi'(x_1))\\,x^\\top\", \"W2ᵀ x4 ⊙ relu'(x1)\")")
    p.add_argument("--claim-notation", choices=("numpy", "math", "auto"), default=None,
                   help="how claims and lets are written (default: as --notation; with auto, each is detected "
                        "on its own)")
    p.add_argument("--format", choices=("text", "md", "json"), default="text", help="output format (default text)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--seed", type=int, default=None, help="seed of the random points (default 0)")
    return p


def _is_solution_file(arg: str) -> bool:
    return arg.lower().endswith((".yaml", ".yml")) and "\n" not in arg and ";" not in arg


def run(args) -> int:
    fmt = "json" if args.json else args.format
    if _is_solution_file(args.formula):
        extra = [o for o, v in (("--shape", args.shape), ("--elementwise", args.elementwise),
                                ("--function", args.function), ("--let", args.let), ("--wrt", args.wrt),
                                ("--claim", args.claim)) if v]
        if extra:
            raise FormulaError(f"{', '.join(extra)} cannot be combined with a worked-solution file",
                               hint="put the problem and the claims in the file (see docs/checker.md)")
        if not os.path.exists(args.formula):
            raise SolutionError(f"no such file: {args.formula}")
        report = check_solution(args.formula, seed=args.seed)
        if fmt == "json":
            print(report.to_json())
        elif fmt == "md":
            print(report.markdown())
        else:
            print(report.text())
        return report.exit_code
    missing = [o for o, v in (("--wrt", args.wrt), ("--claim", args.claim)) if v is None]
    if missing:
        raise FormulaError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required to check a claim",
                           hint="e.g. --wrt x --claim 'A.T @ (A @ x - b)', or pass a worked-solution .yaml file")
    problem = Problem(args.formula, args.shape, split_names(args.elementwise), split_names(args.function),
                      args.let, seed=args.seed or 0, notation=args.notation, claim_notation=args.claim_notation)
    verdict = problem.check(args.wrt.strip(), args.claim)
    if fmt == "json":
        print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False, default=str))
    elif fmt == "md":
        print(verdict.markdown())
    else:
        print(verdict.text())
    return verdict.exit_code
