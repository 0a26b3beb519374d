"""Files: output written atomically (a temporary file in the same folder, then os.replace), so a failure
never leaves a half-written file, and with the permissions the umask gives; and the one loader of
generated modules (`load_file`, `load_source`)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from typing import Callable

from .errors import FormulaError


def atomic_output(path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` to fill a temporary file beside `path`, then move it onto `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FormulaError(f"the folder {os.path.dirname(path) or folder} does not exist",
                           hint="create it first, or write somewhere else")
    # keep the extension last: writers such as matplotlib pick the format from it
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + os.path.splitext(path)[1],
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path, data: bytes | str) -> None:
    """Write `data` (text is UTF-8 with \\n line ends) to `path` atomically."""
    def write(tmp: str) -> None:
        if isinstance(data, str):
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(data)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
    atomic_output(path, write)


def load_file(path, name: str | None = None):
    """Import the Python file `path` (a generated module) as a fresh module object named `name`
    (default: _symbackprop_generated_<stem>), not entered in sys.modules."""
    path = os.fspath(path)
    name = name or "_symbackprop_generated_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_source(source: str, name: str = "symbackprop_generated", keep: bool = True):
    """Import generated module source as a fresh module object, as a user would import the file
    (it is written to a private temporary folder first; tests, notebooks, the trainer). With
    keep=False the folder is removed once the module is loaded."""
    folder = tempfile.mkdtemp(prefix="symbackprop-")
    try:
        path = os.path.join(folder, f"{name}.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        return load_file(path, name)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
