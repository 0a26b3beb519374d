"""The package imports with its core dependencies alone: a module that imports an optional library
(an extra's) at its top must be listed in conftest.OPTIONAL, which leaves it out of pytest's
`--doctest-modules` collection when the library is missing. Otherwise the README's test command,
`pip install '.[test]' && pytest` on a fresh clone, stops at collection (it did, on the relu backends:
CI installs every extra and did not see it)."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the checkout's root conftest.py (not tests/conftest.py, which pytest has loaded as `conftest`)
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)

#: What `pip install .` installs (pyproject's dependencies), by import name.
CORE = {"sympy", "numpy", "jinja2", "graphviz", "yaml", "lark", "symbackprop"}


def top_level_imports(path: Path) -> set[str]:
    """The libraries a module imports when it is imported: statements at module level (not in a
    function, nor in a try block that handles the ImportError)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_modules_with_optional_imports_are_listed():
    unlisted = {}
    for path in sorted((ROOT / "symbackprop").rglob("*.py")):
        optional = {n for n in top_level_imports(path) - CORE if n not in sys.stdlib_module_names}
        rel = path.relative_to(ROOT).as_posix()
        if optional and rel not in conftest.OPTIONAL:
            unlisted[rel] = sorted(optional)
    assert not unlisted, ("these modules import an optional library at their top; import it inside the "
                          f"function that needs it, or list the module in conftest.OPTIONAL: {unlisted}")


def test_listed_modules_name_their_library():
    for rel, library in conftest.OPTIONAL.items():
        imported = {n.split(".")[0] for node in ast.walk(ast.parse((ROOT / rel).read_text(encoding="utf-8")))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for n in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])}
        assert library in imported, (rel, library)


def test_the_ignore_list_follows_what_is_installed():
    missing = {rel for rel, library in conftest.OPTIONAL.items() if importlib.util.find_spec(library) is None}
    assert set(conftest.collect_ignore) == missing
