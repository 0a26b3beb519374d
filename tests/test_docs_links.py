"""Every relative link in README.md and docs/*.md resolves to a file inside the repository.

Docs may cite the course handout by name, but a link (or a `../path` in backticks) must not
point outside the repository: a clone or an installed sdist has nothing there.
"""
import glob
import os
import re
from urllib.parse import unquote

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOCS = sorted(["README.md"] + [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
CODE_PATH = re.compile(r"`(\.\.?/[^`\s]*)`")         # a path in backticks that starts with ./ or ../


def targets(text: str) -> list[str]:
    """Link targets in markdown `text`: inline links and images, reference definitions, HTML
    href/src, and relative paths written in backticks; fenced code blocks are skipped."""
    text = FENCE.sub("", text)
    found = INLINE.findall(text) + REFERENCE.findall(text) + HTML.findall(text)
    return found + CODE_PATH.findall(text)


def problem(doc: str, target: str) -> str | None:
    """Why `target`, linked from `doc`, does not resolve inside the repository (None when it does)."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("#"):
        return None                                  # http:, https:, mailto:, or an anchor in the same file
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if path.startswith("/"):
        return "absolute path; write it relative to the document"
    full = os.path.normpath(os.path.join(ROOT, os.path.dirname(doc), path))
    if os.path.commonpath([full, ROOT]) != ROOT:
        return "points outside the repository"
    if not os.path.exists(full):
        return "no such file in the repository"
    return None


def test_the_link_finder_finds_every_kind_of_link():
    sample = ("See [the\nguide](docs/a.md#top), ![img](img/b.png \"title\"), [x][r], <a href=\"c.html\">c</a>,\n"
              "`../shared/reference/h.md` and <https://example.org>.\n\n[r]: ../d.md\n\n"
              "```sh\ncat [not](a-link.md) `../nor/this`\n```\n")
    assert sorted(targets(sample)) == sorted(["docs/a.md#top", "img/b.png", "../d.md", "c.html",
                                              "../shared/reference/h.md"])
    assert problem("README.md", "../shared/reference/backprop_handout.md") == "points outside the repository"
    assert problem("docs/checker.md", "../shared/reference/backprop_handout.md") == "no such file in the repository"
    assert problem("docs/checker.md", "../../outside.md") == "points outside the repository"
    assert problem("README.md", "docs/nothing-here.md") == "no such file in the repository"
    assert problem("README.md", "/etc/passwd") is not None
    assert problem("docs/codegen.md", "hessian.md#generated-code") is None
    assert problem("README.md", "https://github.com/") is None


def test_the_docs_have_links():
    assert len(DOCS) > 3
    assert sum(len(targets(open(os.path.join(ROOT, d), encoding="utf-8").read())) for d in DOCS) > 20


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_resolves_inside_the_repository(doc):
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        text = f.read()
    bad = [f"{t}: {why}" for t in targets(text) if (why := problem(doc, t))]
    assert not bad, f"{doc}: " + "; ".join(bad)
