"""pytest's configuration for the whole checkout: `--doctest-modules` (pyproject.toml) imports every
module of the package, and the relu backends import their array library at the top. Without that
library (a plain `pip install '.[test]'`), the module is left out of collection rather than failing
it; its tests in tests/ skip on their own (pytest.importorskip)."""
import importlib.util

#: module -> the optional library (an extra's) it imports at its top; tests/test_optional_imports.py
#: checks that every such module is listed here.
OPTIONAL = {"symbackprop/relu/backend_jax.py": "jax", "symbackprop/relu/backend_torch.py": "torch",
            "symbackprop/relu/plots.py": "matplotlib"}

collect_ignore = [path for path, library in OPTIONAL.items() if importlib.util.find_spec(library) is None]
