"""Hypothesis profiles for the differential and fuzz suites, and the example count of each property.

ci (default): bounded and derandomized; the whole default test suite stays well under 3 minutes on 2 cores.
long: fresh random examples, >= 20,000 in total over the properties of test_differential.py
      (derive, codegen, codegen --batch, check, the printed round trip); docs/reliability.md has the command.
dev: 10 examples each, for a quick look while editing.

Choose the profile with the HYPOTHESIS_PROFILE variable (not pytest's --hypothesis-profile, which
the per-property counts below do not see). Counts: `examples(name)` is the profile's count for that property. SYMBACKPROP_EXAMPLES=N sets every
count to N; SYMBACKPROP_EXAMPLES_<NAME>=N (e.g. SYMBACKPROP_EXAMPLES_BATCH=500) sets one.
"""
import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

#: Examples per property. "default" is every property without its own entry (the fuzz suite).
COUNTS = {
    "ci": {"default": 60, "differential": 60, "batch": 150, "claims": 150, "roundtrip": 200,
          "sympy_view": 25, "array_api": 20, "array_api_batch": 20, "torch": 40, "torch_batch": 40,
          "math_roundtrip": 250, "math_fuzz": 200},
    "long": {"default": 2000, "differential": 5000, "batch": 5000, "claims": 4000, "roundtrip": 6000,
            "sympy_view": 2000, "array_api": 1000, "array_api_batch": 1000, "torch": 1000,
            "torch_batch": 1000, "math_roundtrip": 3000,
            "math_fuzz": 4000},
    "dev": {"default": 10},
}


def examples(name: str = "default", profile: str | None = None) -> int:
    """The number of examples the profile (default: the current one) gives the property `name`."""
    specific = os.environ.get(f"SYMBACKPROP_EXAMPLES_{name.upper()}")
    if specific:
        return int(specific)
    if os.environ.get("SYMBACKPROP_EXAMPLES"):
        return int(os.environ["SYMBACKPROP_EXAMPLES"])
    counts = COUNTS.get(profile or PROFILE, COUNTS["ci"])
    return counts.get(name, counts["default"])


_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                    HealthCheck.data_too_large])
# ci is derandomized (the same examples every run: a red CI is a real regression, never a new
# random draw); long explores fresh examples each time and is where new bugs are found.
settings.register_profile("ci", max_examples=examples(profile="ci"), derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=examples(profile="long"), **_COMMON)
settings.register_profile("dev", max_examples=examples(profile="dev"), **_COMMON)
settings.load_profile(PROFILE)
