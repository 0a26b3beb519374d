"""docs/relu.ipynb: it runs in a real Jupyter kernel (this interpreter) and each cell shows only its own figure.

The run here is short (RELU_DOCS_STEPS=300, the notebook's own parameter); the outputs committed with the
notebook come from the full run. Refresh them after a change (a few minutes):

    PYTHONPATH=$PWD python tests/test_notebook.py --refresh
"""
from __future__ import annotations

import base64
import copy
import os
import sys
from pathlib import Path

import pytest


def _need(name):
    """In CI the notebook tools are part of the `test` extra: missing there is a failure, not a skip."""
    if os.environ.get("CI"):
        return __import__(name)
    return pytest.importorskip(name)


nbformat = _need("nbformat")
nbclient = _need("nbclient")
_need("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "relu.ipynb"
#: Image outputs each code cell must show, in order: the setup cells none, then one figure per question
#: (Q1 fit, Q2 elbows, Q3 slopes, Q4 MSE, Q5 comparison, Q6 the GIF, Q7 the seed study).
EXPECTED = [[], [], ["image/png"], ["image/png"], ["image/png"], ["image/png"], ["image/png"], ["image/gif"],
            ["image/png"]]
SHORT_STEPS = "300"
MAX_BYTES = 1_500_000


def _images(cell):
    """The image MIME types a code cell's outputs show, one entry per output that holds an image."""
    kinds = []
    for out in cell.get("outputs", []):
        images = [m for m in out.get("data", {}) if m.startswith("image/")]
        assert len(images) <= 1, f"one output with several images: {images}"
        kinds += images
    return kinds


def _check_outputs(nb):
    """Each cell shows exactly its own figure, no error, nothing on stderr, no picture twice."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [_images(c) for c in code] == EXPECTED
    seen = set()
    for i, cell in enumerate(code):
        for out in cell.outputs:
            assert out.output_type != "error", (i, out.get("ename"), out.get("evalue"))
            assert not (out.output_type == "stream" and out.name == "stderr"), (i, out.text[-2000:])
            for mime, data in out.get("data", {}).items():
                if mime.startswith("image/"):
                    raw = base64.b64decode(data)
                    assert raw not in seen, f"code cell {i} repeats a picture shown earlier"
                    seen.add(raw)
    return code


def _this_interpreter():
    """A kernel-spec manager whose python3 kernel is ipykernel in the interpreter running the tests."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class Manager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="Python 3 (tests)", language="python", resource_dir=str(ROOT))
    return Manager()


def test_committed_notebook_shows_each_figure_once_from_the_full_run():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = _check_outputs(nb)
    summary = "".join(o.get("text", "") for o in code[1].outputs)
    assert "150,000" in summary and "total" in summary, "commit the outputs of the full run (not RELU_DOCS_STEPS)"
    assert nb.metadata.kernelspec.name == "python3"
    assert NOTEBOOK.stat().st_size < MAX_BYTES, f"{NOTEBOOK.stat().st_size:,} bytes: keep the outputs small"


def test_notebook_executes_in_a_kernel_and_each_cell_shows_its_own_figure(tmp_path, monkeypatch):
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    probe = nbformat.v4.new_code_cell("import sys, symbackprop\nprint(sys.executable)\nprint(symbackprop.__file__)")
    run = copy.deepcopy(nb)
    run.cells.append(probe)
    monkeypatch.setenv("RELU_DOCS_STEPS", SHORT_STEPS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    # Jupyter's own backend, which shows every pyplot figure still open when a cell ends
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_this_interpreter())
    client = nbclient.NotebookClient(run, km=km, timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                              # raises CellExecutionError on any error
    printed = "".join(o.get("text", "") for o in run.cells[-1].outputs).split()
    assert Path(printed[0]).resolve() == Path(sys.executable).resolve()
    assert Path(printed[1]).resolve().is_relative_to(ROOT)
    run.cells.pop()
    code = _check_outputs(run)
    assert "300" in "".join(o.get("text", "") for o in code[1].outputs)
    assert not list(tmp_path.iterdir()), "the notebook leaves no file in its folder"


def refresh():
    """Execute the notebook with its full workload in docs/ and store its outputs."""
    import time
    from jupyter_client.manager import KernelManager

    os.environ.pop("RELU_DOCS_STEPS", None)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_this_interpreter())
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, km=km, timeout=3600, record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    _check_outputs(nb)
    nbformat.write(nb, NOTEBOOK)
    print(f"{NOTEBOOK}: {NOTEBOOK.stat().st_size:,} bytes, executed in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__" and sys.argv[1:] == ["--refresh"]:
    refresh()
