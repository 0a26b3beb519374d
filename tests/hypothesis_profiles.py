"""Hypothesis profiles for the differential and fuzz suites.

ci (default): bounded, a few minutes for both suites together on 2 cores.
long: HYPOTHESIS_PROFILE=long python -m pytest tests/test_differential.py tests/test_fuzz.py
"""
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                    HealthCheck.data_too_large])
# ci is derandomized (the same examples every run: a red CI is a real regression, never a new
# random draw); long explores fresh examples each time and is where new bugs are found.
settings.register_profile("ci", max_examples=int(os.environ.get("SYMBACKPROP_EXAMPLES", 60)), derandomize=True,
                          database=None, **_COMMON)
settings.register_profile("long", max_examples=int(os.environ.get("SYMBACKPROP_EXAMPLES", 2000)), **_COMMON)
settings.register_profile("dev", max_examples=10, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
