"""Repository maintenance: regenerate the committed modules in generated/ (not part of the package).

    python tools/refresh_generated.py --refresh     # rewrite generated/*.py
    python tools/refresh_generated.py --check       # only report; exit 1 if any differs

tests/test_codegen.py runs `refresh(check=True)` and fails if a byte differs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:                        # run as a script from anywhere: the checkout's package first
    sys.path.insert(0, str(ROOT))

from symbackprop.files import write_atomic  # noqa: E402

#: (path relative to the repository root, codegen arguments). generated/README.md lists the same commands.
GENERATED = [
    ("generated/relu_net.py", ["(v @ relu(w * x + b) + c - y)**2", "--shape", "w=h", "--shape", "b=h", "--shape", "v=h",
                               "--batch", "x,y", "--wrt", "w,b,v,c"]),
    ("generated/relu_net_output.py", ["(v @ relu(w * x + b) + c - y)**2", "--shape", "w=h", "--shape", "b=h",
                                      "--shape", "v=h", "--batch", "x,y", "--wrt", "v,c"]),
    ("generated/mlp_relu.py", ["0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", "--shape", "W1=d,d", "--shape", "W2=d,d",
                               "--shape", "x=d", "--shape", "b=d", "--shape", "y=d"]),
    ("generated/mlp_tanh.py", ["0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2", "--shape", "W1=d,d", "--shape", "W2=d,d",
                               "--shape", "x=d", "--shape", "b=d", "--shape", "y=d"]),
    ("generated/mlp_relu_batch.py", ["0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", "--shape", "W1=h,d",
                                     "--shape", "W2=k,h", "--shape", "x=d", "--shape", "b=h", "--shape", "y=k",
                                     "--batch", "x,y", "--wrt", "W1,b,W2"]),
    ("generated/relu_net_seeds.py", ["mean((relu(outer(x, w) + outer(o, b)) @ v + c * o - y)**2)", "--shape", "w=h",
                                     "--shape", "b=h", "--shape", "v=h", "--shape", "x=B", "--shape", "y=B",
                                     "--shape", "o=B", "--wrt", "w,b,v,c", "--batch", "x,y,o,w,b,v,c"]),
    ("generated/relu_net_output_seeds.py", ["mean((relu(outer(x, w) + outer(o, b)) @ v + c * o - y)**2)",
                                            "--shape", "w=h", "--shape", "b=h", "--shape", "v=h", "--shape", "x=B",
                                            "--shape", "y=B", "--shape", "o=B", "--wrt", "v,c",
                                            "--batch", "x,y,o,w,b,v,c"]),
    ("generated/part_a.py", ["f(t) = t**2; g(t) = t; h(a, c) = a**2 + c**2; h(f(x), g(x))"]),
    ("generated/logistic_hessian.py", ["mean(softplus(A @ x) - y * (A @ x))", "--shape", "A=m,n", "--shape", "x=n",
                                       "--shape", "y=m", "--wrt", "x", "--hessian", "--hvp"]),
    ("generated/tanh_net_hessian.py", ["0.5 * norm(W2 @ tanh(W1 @ x + b) - y)**2", "--shape", "W1=h,d",
                                       "--shape", "W2=k,h", "--shape", "x=d", "--shape", "b=h", "--shape", "y=k",
                                       "--wrt", "x", "--hessian", "--hvp"]),
]


def refresh(root: Path | None = None, check: bool = False) -> list[str]:
    """Regenerate every module in generated/; with check=True only report those that differ."""
    from symbackprop.cli import main as cli_main
    root = Path(root) if root else ROOT
    stale = []
    for rel, args in GENERATED:
        path = root / rel
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / path.name
            with contextlib.redirect_stderr(io.StringIO()) as err:
                rc = cli_main(["codegen", *args, "-o", str(out), "--command-output", rel])
            if rc != 0:
                raise RuntimeError(f"codegen failed for {rel}: {err.getvalue()}")
            new = out.read_text(encoding="utf-8")
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if new != old:
            stale.append(rel)
            if not check:
                write_atomic(path, new)
    return stale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python tools/refresh_generated.py",
                                description="Regenerate the committed modules in generated/.")
    p.add_argument("--refresh", action="store_true", help="rewrite generated/*.py from the templates")
    p.add_argument("--check", action="store_true", help="only report modules that differ; exit 1 if any")
    args = p.parse_args(argv)
    if not (args.refresh or args.check):
        p.print_help()
        return 2
    stale = refresh(check=args.check)
    for rel in stale:
        print(("differs: " if args.check else "rewrote: ") + rel)
    total = len(GENERATED)
    if not args.check:
        print(f"{total} generated modules, {len(stale)} rewritten")
    elif stale:
        print(f"{len(stale)} of {total} generated modules differ; run: python tools/refresh_generated.py --refresh")
    else:
        print(f"{total} generated modules up to date")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
