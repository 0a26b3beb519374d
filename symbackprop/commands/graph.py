"""`symbackprop graph`: the formula's computation graph as DOT, SVG (no system install), PNG or PDF."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..cli import add_formula_arguments, split_names
from ..derivation import Derivation
from ..errors import FormulaError
from ..parse import parse_formula
from ..files import write_atomic
from ..graph import build_graph, point_from_arrays, random_values
from ..render import COLUMN_PX, FORMATS, RANKDIRS, RENDERERS, output_format, write_graph

HELP = """Draw the formula's computation graph: one node per operation, variables (the
sources) to the objective (the sink), shared sub-expressions once with fan-out.
--backward adds each node's adjoint and each edge's local derivative; --values
adds forward values and gradients at a point. SVG is rendered in-process by an
embedded Graphviz (WebAssembly); PNG and PDF need a system Graphviz `dot`.
Without -o, prints the DOT source."""

EXAMPLES = """examples:
  symbackprop graph 'f(g1(w), g2(w), g3(w))' --function f,g1,g2,g3 -o fig1.svg
  symbackprop graph '0.5 * norm(W2 @ Phi(W1 @ x + b) - y)**2' -e Phi \\
      -s W1=h,d -s W2=k,h -s x=d -s b=h -s y=k --backward -o partd.svg"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("graph", help="draw the computation graph (forward, backward, values)", description=HELP,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_formula_arguments(p)
    p.add_argument("-o", "--output", metavar="FILE", help="output file: .svg, .dot, .png or .pdf (default: DOT on stdout)")
    p.add_argument("--format", choices=FORMATS, help="output format when the file name does not say")
    p.add_argument("--backward", action="store_true", help="show each node's adjoint and each edge's local derivative")
    p.add_argument("--values", action="store_true", help="show forward values and gradients at a point (--at or --seed)")
    p.add_argument("--at", metavar="INPUTS.npz", help="values of the variables (implies --values); sizes of "
                   "symbolic dims are read off the arrays")
    p.add_argument("--seed", type=int, default=0, help="seed of the random point for --values and of the self-check")
    p.add_argument("--collapse", action="append", default=[], metavar="NAME[,NAME]",
                   help="fold a named intermediate's subgraph into one box (repeatable)")
    p.add_argument("--rankdir", choices=RANKDIRS, default="auto",
                   help="layout direction: LR (sources left), TB (sources on top), or auto (default: LR unless TB "
                   f"reads better in a {COLUMN_PX} px wide column)")
    p.add_argument("--renderer", choices=RENDERERS, default="auto",
                   help="auto (embedded for SVG, system dot for PNG/PDF), embedded, or system")
    p.add_argument("--save-dot", action="store_true", help="also write the DOT source next to the output")
    p.add_argument("--no-check", action="store_true", help="skip the numerical self-check of the adjoints")
    return p


def _load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FormulaError(f"--at: no such file `{path}`") from None
    except (OSError, ValueError) as e:
        raise FormulaError(f"--at: cannot read `{path}` as .npz ({e})",
                           hint="write it with numpy.savez(path, W=..., x=...)") from None


def run(args) -> int:
    if args.output:
        output_format(args.output, args.format)              # fail early on a bad extension
    program = parse_formula(args.formula, args.shape, split_names(args.elementwise), split_names(args.function))
    d = Derivation(program, check=not args.no_check, seed=args.seed)
    point = None
    if args.at:
        point = point_from_arrays(program, _load_npz(args.at), args.seed, where=args.at)
    elif args.values:
        point = random_values(program, args.seed)
    graph = build_graph(d, backward=args.backward, point=point, collapse=split_names(args.collapse),
                        rankdir=args.rankdir)
    if not args.output:
        if args.format not in (None, "dot"):
            raise FormulaError(f"--format {args.format} needs an output file", hint="add -o FILE")
        sys.stdout.write(graph.dot())
        return 0
    if args.save_dot:
        dot_path = os.path.splitext(args.output)[0] + ".dot"
        if os.path.abspath(dot_path) != os.path.abspath(args.output):
            write_atomic(dot_path, graph.dot().encode("utf-8"))
    used = write_graph(graph, args.output, args.format, args.renderer)
    how = {"embedded": "embedded Graphviz", "system": "system Graphviz", "none": "DOT source"}[used]
    print(f"wrote {args.output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges; {how})")
    return 0
