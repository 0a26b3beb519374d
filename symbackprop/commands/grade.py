"""`symbackprop grade`: a folder of homework files, one per student, graded against one problem."""
from __future__ import annotations

import argparse
import sys

from ..grading import FEEDBACK_FORMATS, GRADEBOOK_FORMATS, grade_folder
from ..homework import LAYOUTS, NOTATIONS

HELP = """Grade every submission in a folder (one Markdown or LaTeX file per student, derivative lines
as for `check --solution`) against one problem, in parallel on the available cores. Writes
gradebook.csv (or .json) and feedback/<student>.md (or .html, .txt, .json) into --out, all at once:
nothing is half-written. A file that cannot be read gets its own message in the gradebook; the
others are still graded.

PROBLEM.yaml states the problem with the keys of a homework file's front matter (formula, shapes,
elementwise, functions, lets, wrt, layout, seed, notation), at the top level or under `problem:`.
The score of a submission is the number of asked derivatives (wrt:) whose last line earns credit.
Exit status: 0 when every file was graded, 2 when some could not be read (or bad input), 3 on an
internal error."""

EPILOG = """example:
  symbackprop grade docs/solutions/part_d-problem.yaml submissions/ --out grades/ --layout numerator"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("grade", help="grade a folder of homework files into a gradebook", description=HELP,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("problem", help="the problem: a YAML file (or a homework file whose front matter states it)")
    p.add_argument("submissions", help="the folder with one file per student (.md or .tex)")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="the folder to write gradebook.* and feedback/ into (created; an earlier gradebook "
                        "folder is replaced)")
    p.add_argument("--format", choices=GRADEBOOK_FORMATS, default="csv", help="the gradebook's format (default csv)")
    p.add_argument("--feedback", choices=tuple(FEEDBACK_FORMATS), default="md",
                   help="the format of each student's feedback file (default md)")
    p.add_argument("--layout", choices=LAYOUTS, default=None,
                   help="the course's convention (default: the problem's `layout:`, else a transposed answer counts)")
    p.add_argument("--notation", choices=NOTATIONS, default=None, help="how claims are written (default: detected)")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                   help="worker processes (default: the available cores)")
    return p


def run(args) -> int:
    if args.jobs is not None and args.jobs < 1:
        from ..errors import FormulaError
        raise FormulaError("--jobs must be at least 1")
    book = grade_folder(args.problem, args.submissions, layout=args.layout, notation=args.notation, jobs=args.jobs,
                        feedback=args.feedback)
    written = book.write(args.out, gradebook=args.format)
    for s in book.submissions:
        if s.status != "graded":
            print(s.message if s.file in s.message else f"{s.file}: {s.message}", file=sys.stderr)
    print(book.summary())
    print(f"wrote {args.out.rstrip('/')}/{written[0]} and {len(written) - 1} feedback file"
          f"{'s' * (len(written) != 2)} in {args.out.rstrip('/')}/feedback/")
    return book.exit_code
