"""Output files: written atomically (a temporary file in the same folder, then os.replace),
so a failure never leaves a half-written file, and with the permissions the umask gives."""
from __future__ import annotations

import os
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
