"""`symbackprop check`: is a claimed derivative right, and if not, what is wrong with it?"""
from __future__ import annotations

import argparse
import json
import os

from ..check import Problem
from ..solutions import SolutionError, check_solution
from ..cli import add_formula_arguments, split_names
from ..errors import FormulaError
from ..homework import LAYOUTS, NOTATIONS, from_solution_report, grade_file, is_homework_file

HELP = """Check a claimed derivative against the true one, symbolically where possible and always
numerically (several random sizes for the symbolic dims, several random points, several
concrete stand-ins for abstract functions, non-symmetric matrices).

Two forms:
  symbackprop check FORMULA [--shape ...] [--elementwise Phi] [--let NAME=EXPR ...] --wrt NAME --claim EXPR
  symbackprop check SOLUTION.yaml          (a worked solution: the problem and a list of claims)
  symbackprop check --solution FILE.md     (a homework file in Markdown or LaTeX: the problem in a
                                            front-matter block, every derivative line graded)

Verdicts: correct; correct up to transpose (the claim follows the numerator layout); wrong,
with a diagnosis (wrong shape, a constant factor, the sign, a forgotten derivative factor,
a missing or extra term, undefined (NaN) where the derivative is defined, right only for
symmetric matrices or scalars, an outer product written as a NumPy inner product, a factor
that depends on the sizes) or a counterexample.
Exit status: 0 when every claim is correct (either kind), 1 when one is wrong, 2 for malformed
input (a claim that does not parse or names something unknown, a bad file)."""

EPILOG = """examples:
  symbackprop check '0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2' -e Phi \\
      -s W1=h,d -s W2=k,h -s x=d -s b=h -s y=k \\
      --let x1='W1 @ x + b' --let x4='W2 @ Phi(x1) - y' --wrt W1 --claim "outer(W2.T @ x4 * Phi'(x1), x)"
  symbackprop check docs/solutions/handout-2d.yaml --format md
  symbackprop check --solution docs/solutions/part_d.md --layout numerator --format html"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="check a claimed derivative or a worked-solution file", description=HELP,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_formula_arguments(p)
    for action in p._actions:                       # the formula is optional with --solution
        if action.dest == "formula":
            action.nargs, action.default = "?", None
    p.add_argument("--solution", metavar="FILE", help="a worked solution to grade line by line: Markdown (.md) or "
                   "LaTeX (.tex) with the problem in a front-matter block, or the YAML format (.yaml)")
    p.add_argument("--layout", choices=LAYOUTS, default=None,
                   help="the course's convention for --solution files: numerator, or gradient/denominator (shaped "
                        "like the variable); a transposed answer then counts only in that layout (default: the "
                        "file's `layout:`, else either counts)")
    if "--notation" not in p._option_string_actions:    # (the formula options may have it already)
        p.add_argument("--notation", choices=NOTATIONS, default=None,
                       help="how claims are written: numpy, math (LaTeX, Wᵀ x) or auto (default: detected)")
    p.add_argument("--let", action="append", default=[], metavar="NAME=EXPR",
                   help="name an intermediate for use in claims and --wrt, e.g. --let x1='W1 @ x + b' (repeatable)")
    p.add_argument("--wrt", metavar="NAME", help="the variable, named intermediate or let the claim differentiates by")
    p.add_argument("--claim", metavar="EXPR", help="the claimed derivative, in the formula language "
                   "(may use lets, Phi'(z), relu'(z), diag(v), outer(u, v), .T) or in maths "
                   "(\"(W_2^\\top x_4 \\odot \\Phi'(x_1))\\,x^\\top\", \"W2ᵀ x4 ⊙ relu'(x1)\")")
    p.add_argument("--claim-notation", choices=("numpy", "math", "auto"), default=None,
                   help="how claims and lets are written (default: as --notation; with auto, each is detected "
                        "on its own)")
    p.add_argument("--format", choices=("text", "md", "html", "json"), default="text", help="output format (default text)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--seed", type=int, default=None, help="seed of the random points (default 0)")
    return p


def _is_solution_file(arg: str) -> bool:
    return arg.lower().endswith((".yaml", ".yml")) and "\n" not in arg and ";" not in arg


def run(args) -> int:
    fmt = "json" if args.json else args.format
    solution = args.solution
    if solution is not None and args.formula is not None:
        raise FormulaError("give either a formula or --solution FILE, not both",
                           hint="the problem of a solution file is stated in the file")
    if solution is None and args.formula is not None and (is_homework_file(args.formula)
                                                          or _is_solution_file(args.formula)):
        solution = args.formula                   # `check part_d.md` is `check --solution part_d.md`
    if solution is not None:
        return _run_solution(args, solution, fmt)
    if args.formula is None:
        raise FormulaError("a formula (with --wrt and --claim) or --solution FILE is required",
                           hint="e.g. symbackprop check --solution docs/solutions/part_d.md")
    if args.layout is not None:
        raise FormulaError("--layout applies to solution files",
                           hint="a single claim's verdict already names its layout")
    if fmt == "html":
        raise FormulaError("--format html applies to solution files", hint="use text, md or json")
    return _run_claim(args, fmt)


def _reject_problem_options(args):
    extra = [o for o, v in (("--shape", args.shape), ("--elementwise", args.elementwise),
                            ("--function", args.function), ("--let", args.let), ("--wrt", args.wrt),
                            ("--claim", args.claim)) if v]
    if extra:
        raise FormulaError(f"{', '.join(extra)} cannot be combined with a worked-solution file",
                           hint="put the problem and the claims in the file (see docs/checker.md)")


def _run_solution(args, path: str, fmt: str) -> int:
    _reject_problem_options(args)
    if _is_solution_file(path):
        if not os.path.exists(path):
            raise SolutionError(f"no such file: {path}")
        yaml_report = check_solution(path, seed=args.seed)
        if args.layout is None and fmt != "html":   # the YAML format's own report, as before
            print(yaml_report.to_json() if fmt == "json" else yaml_report.markdown() if fmt == "md"
                  else yaml_report.text())
            return yaml_report.exit_code
        report = from_solution_report(yaml_report, args.layout)
    else:
        report = grade_file(path, layout=args.layout, notation=args.claim_notation or args.notation, seed=args.seed)
    print(report.render(fmt))
    return report.exit_code


def _run_claim(args, fmt: str) -> int:
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
