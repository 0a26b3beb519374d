"""Every numeric tolerance symbackprop uses, named once.

Central differences (the self-checks of `derive`, `codegen` and `gradcheck`, and symbackprop.testing)
compare ⟨gradient, v⟩ with (f(x + εv) − f(x − εv)) / 2ε along random directions v; the checker compares a
claimed derivative with the derived one at random points, where both are exact up to rounding."""

#: Central differences in float64: the step (times max(1, max|x|)), and the relative and absolute
#: tolerances (the absolute one times max(1, |f|)).
FD_EPS = 1e-6
FD_RTOL = 1e-5
FD_ATOL = 1e-8
#: Finite differences cannot resolve a function of a matrix whose condition number is large: perturbing X
#: by FD_EPS·max|X| moves X⁻¹ (and det, log det, pinv, and powers of them) by about FD_EPS·cond(X) relative,
#: and the central difference's error grows as the square of that (off by 1e-3 at cond ≈ 1e9, and beyond
#: FD_RTOL from cond ≈ 2e3 under a cube, inv(X) ** 3). So the self-checks draw their points where the argument
#: of every op whose domain is `well_conditioned` has a condition number at most this; where no draw does,
#: the best-conditioned point found.
FD_MAX_CONDITION = 1e3
#: Second order: central differences of the gradient round off more (about 1e-16·|g|/FD_EPS), so the
#: absolute tolerance is larger, scaled by the gradient's size.
FD_ATOL_SECOND = 1e-7
#: The derivation's own check of a Hessian-vector product (hessian.SecondOrder): the first-order
#: tolerances widened by this factor.
SECOND_ORDER_SLACK = 10

#: Generated modules per DTYPE: float64 as above; float32 modules compute in float32 whatever the inputs,
#: so a wider step and looser tolerances (measured worst 0.3% on the rule-table cases; a wrong gradient
#: is off by far more). dtype -> (step, rtol, atol, value-versus-forward tolerance).
MODULE_TOLERANCES = {"float64": (FD_EPS, FD_RTOL, FD_ATOL, 1e-12), "float32": (3e-3, 1e-2, 1e-4, 1e-5)}
#: The same for `hvp`/`hessian` against differences of the gradient: dtype -> (step, rtol, atol).
MODULE_SECOND_ORDER_TOLERANCES = {"float64": (FD_EPS, FD_RTOL, FD_ATOL_SECOND), "float32": (3e-3, 1e-2, 1e-3)}

#: The checker: a claim and the derived value agree when max|a − b| <= CLAIM_RTOL·max(|a|, |b|) + CLAIM_ATOL.
CLAIM_RTOL = 1e-8
CLAIM_ATOL = 1e-12

#: The floor of the denominator of a reported relative error (0/0 reads as 0, not NaN).
TINY = 1e-12
