"""The images in docs/graphs.md are what the commands shown beside them make today.

Refresh after an intended change of the drawings:  python tests/test_docs_images.py --refresh
"""
import os
import re
import shlex
import xml.etree.ElementTree as ET

import pytest

from symbackprop import cli
from symbackprop.render import embedded_version

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOC = os.path.join(ROOT, "docs", "graphs.md")


def doc_commands():
    """Every `symbackprop graph ...` line inside the doc's ```sh blocks."""
    text = open(DOC, encoding="utf-8").read()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("symbackprop graph "):
                out.append(shlex.split(line)[1:])
    return out


COMMANDS = doc_commands()


def test_doc_shows_its_figures():
    assert len(COMMANDS) >= 4
    text = open(DOC, encoding="utf-8").read()
    for argv in COMMANDS:
        out = argv[argv.index("-o") + 1]
        assert out.startswith("docs/img/") and f"]({out[len('docs/'):]})" in text


def _labels(svg: bytes):
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    return sorted((g.find(ns + "title").text, tuple(t.text for t in g.findall(ns + "text")))
                  for g in root.iter(ns + "g") if g.get("class") in ("node", "edge"))


@pytest.mark.parametrize("argv", COMMANDS, ids=[a[a.index("-o") + 1].split("/")[-1] for a in COMMANDS])
def test_doc_image_is_regenerated_identically(argv, tmp_path, capsys):
    i = argv.index("-o")
    committed = os.path.join(ROOT, argv[i + 1])
    fresh = tmp_path / os.path.basename(committed)
    assert cli.main(argv[:i + 1] + [str(fresh)] + argv[i + 2:]) == 0, capsys.readouterr().err
    if "--save-dot" in argv:                      # the DOT source: byte for byte
        dot = os.path.splitext(committed)[0] + ".dot"
        assert fresh.with_suffix(".dot").read_bytes() == open(dot, "rb").read(), f"regenerate {dot}"
    new, old = fresh.read_bytes(), open(committed, "rb").read()
    version = re.search(rb"graphviz version (\S+)", old)
    if version and version[1].decode() == embedded_version():
        assert new == old, f"{committed} is stale: rerun the command in docs/graphs.md"
    else:                                         # another Graphviz lays out differently: compare the text
        assert _labels(new) == _labels(old)


def _text_px(svg_path, column_px=800):
    """Picture width in px, and the height in px of its smallest text, drawn in a `column_px` column
    (browsers draw an SVG's pt at 4/3 px and scale a wider picture down to the column)."""
    root = ET.parse(svg_path).getroot()
    width = float(root.get("width").removesuffix("pt")) * 4 / 3
    sizes = [float(t.get("font-size")) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert sizes, svg_path
    return width, min(sizes) * 4 / 3 * min(1.0, column_px / width)


README = os.path.join(ROOT, "README.md")
README_GRAPHS = re.findall(r"!\[[^]]*\]\((docs/img/[^)]+\.svg)\)", open(README, encoding="utf-8").read())


@pytest.mark.parametrize("path", README_GRAPHS)
def test_readme_graph_reads_in_an_800px_column(path):
    """The README's graphs fit an 800 px column without shrinking, so 10 pt edge labels are 13 px tall."""
    width, text = _text_px(os.path.join(ROOT, path))
    assert width <= 800 and text >= 12, (path, width, text)


@pytest.mark.parametrize("argv", COMMANDS, ids=[a[a.index("-o") + 1].split("/")[-1] for a in COMMANDS])
def test_doc_graph_text_reads_in_an_800px_column(argv):
    width, text = _text_px(os.path.join(ROOT, argv[argv.index("-o") + 1]))
    assert text >= 11, (argv, width, text)


def test_readme_shows_the_part_d_graph():
    assert README_GRAPHS == ["docs/img/partd_backward.svg"]


def refresh():
    """Rerun every command of docs/graphs.md (after an intended change of the drawings)."""
    os.chdir(ROOT)
    for argv in COMMANDS:
        assert cli.main(argv) == 0, argv


if __name__ == "__main__" and "--refresh" in os.sys.argv:
    refresh()
