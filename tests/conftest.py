import os
import sys

# Tests run against the checkout, installed or not.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """Tests that draw leave no matplotlib figure open for the next one."""
    yield
    import sys as _sys
    if "matplotlib.pyplot" in _sys.modules:
        _sys.modules["matplotlib.pyplot"].close("all")
