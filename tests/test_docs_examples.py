"""The console examples in the docs are real: rerun every `$ symbackprop ...` block and compare.

Refresh after an intended change of output:  python tests/test_docs_examples.py --refresh
"""
import contextlib
import io
import os
import re
import shlex
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
DOCS = ["docs/handout.md", "README.md", "docs/formula-language.md"]
BLOCK = re.compile(r"```console\n\$ (symbackprop [^\n]*(?:\\\n[^\n]*)*)\n(.*?)```", re.S)


def run(command: str) -> tuple[int, str]:
    from symbackprop.cli import main
    argv = shlex.split(command.replace("\\\n", " "))[1:]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


def blocks(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    return text, list(BLOCK.finditer(text))


CASES = [(path, m.group(1)) for path in DOCS if os.path.exists(os.path.join(ROOT, path)) for m in blocks(path)[1]]


@pytest.mark.parametrize("path, command", CASES, ids=[c[1][:60] for c in CASES])
def test_console_example_output_is_current(path, command):
    text, found = blocks(path)
    want = next(m.group(2) for m in found if m.group(1) == command)
    code, got = run(command)
    # the self-check's error figure depends on floating-point rounding (BLAS kernels): compare the rest
    mask = re.compile(r"worst relative error [0-9.e+-]+")
    assert mask.sub("worst relative error …", got) == mask.sub("worst relative error …", want), f"{path}: output of `{command[:60]}...` changed; run python tests/test_docs_examples.py --refresh"


def test_docs_have_examples():
    assert any(p == "docs/handout.md" for p, _ in CASES)


def refresh():
    for path in DOCS:
        full = os.path.join(ROOT, path)
        if not os.path.exists(full):
            continue
        text, found = blocks(path)
        for m in reversed(found):
            _, out = run(m.group(1))
            text = text[:m.start(2)] + out + text[m.end(2):]
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"refreshed {path} ({len(found)} examples)")


if __name__ == "__main__" and "--refresh" in sys.argv:
    refresh()
