"""pytest's configuration for the whole checkout: `--doctest-modules` (pyproject.toml) imports every
module of the package and runs its examples. A few modules need an extra's library to be imported
(the relu backends import their array library at the top) or to run their examples (web/safe.py's
typesets LaTeX with latex2mathml). Without that library (a plain `pip install '.[test]'`), the module
is left out of collection rather than failing it; its tests in tests/ skip on their own
(pytest.importorskip)."""
import importlib.util

#: module -> the optional library (an extra's) that importing it or running its examples needs;
#: tests/test_optional_imports.py checks that every module importing one at its top is listed here.
OPTIONAL = {"symbackprop/relu/backend_jax.py": "jax", "symbackprop/relu/backend_torch.py": "torch",
            "symbackprop/relu/plots.py": "matplotlib", "symbackprop/web/safe.py": "latex2mathml"}

collect_ignore = [path for path, library in OPTIONAL.items() if importlib.util.find_spec(library) is None]
