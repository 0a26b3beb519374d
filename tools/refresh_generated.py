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

from symbackprop.catalog import MODULES as CATALOG  # noqa: E402
from symbackprop.files import write_atomic  # noqa: E402

#: (path relative to the repository root, codegen arguments), from symbackprop.catalog (the one list).
GENERATED = [(m.path, [m.formula, *m.options]) for m in CATALOG]


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
