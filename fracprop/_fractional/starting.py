"""Lubich starting weights: corrections for the first steps that make a convolution
quadrature exact on ``t^γ`` for the exponents of the solution's singular expansion."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import FBDF2, GL, AbstractKernel

#: Generating polynomials δ(ζ) (coefficients of ζ^0, ζ^1, …) of the kernels whose weights are the
#: Taylor coefficients of δ(ζ)^a; `starting_weights` needs them only for its mpmath path.
_GENERATING_POLYNOMIALS: dict[type, tuple[tuple[int, int], ...]] = {
    GL: ((1, 1), (-1, 1)),
    FBDF2: ((3, 2), (-2, 1), (1, 2)),
}


def _power_series_mp(kernel: AbstractKernel, order, steps: int) -> list:
    """Taylor coefficients of ``δ(ζ)^order`` in mpmath (J. C. P. Miller's recurrence).

    ``δ f' = a δ' f`` gives ``n δ_0 f_n = Σ_{k ≥ 1} (a k − (n − k)) δ_k f_{n−k}``.
    """
    import mpmath

    try:
        poly = _GENERATING_POLYNOMIALS[type(kernel)]
    except KeyError:
        raise ValueError(
            f"starting_weights(..., dps=...) knows the generating polynomial of "
            f"{', '.join(t.__name__ for t in _GENERATING_POLYNOMIALS)} only, not of "
            f"{type(kernel).__name__}; use dps=None (float64)"
        ) from None
    d = [mpmath.mpf(num) / den for num, den in poly]
    f = [d[0] ** order]
    for n in range(1, steps + 1):
        acc = mpmath.mpf(0)
        for k in range(1, min(n, len(d) - 1) + 1):
            acc += (order * k - (n - k)) * d[k] * f[n - k]
        f.append(acc / (n * d[0]))
    return f


def _exact_ratio(gamma: float, order: float) -> float:
    """``Γ(γ+1)/Γ(γ+1−a)``, so that ``D^a t^γ = ratio · t^{γ−a}`` (0 at poles of Γ(γ+1−a))."""
    x = gamma + 1.0 - order
    if x <= 0 and x == math.floor(x):
        return 0.0
    return math.gamma(gamma + 1.0) / math.gamma(x)


def starting_weights(
    kernel: AbstractKernel,
    order: float,
    gammas: tuple[float, ...],
    steps: int,
    *,
    dps: int | None = None,
) -> np.ndarray:
    r"""Lubich's starting weights, which make a kernel exact on the powers :math:`t^{\gamma_q}`.

    With ``w`` the kernel's weights for order ``a`` and :math:`m` = ``len(gammas)``, the corrected
    operator is

    .. math::  D^a x(t_n) \approx h^{-a}\Bigl(\sum_{k=0}^{n} w_{n-k} x_k
               + \sum_{j=1}^{m} s_{n,j} x_j\Bigr),

    and for every ``n ≥ 1`` the :math:`s_{n,j}` solve the :math:`m \times m` system

    .. math::  \sum_{j=1}^{m} s_{n,j}\, j^{\gamma_q}
               = \frac{\Gamma(\gamma_q+1)}{\Gamma(\gamma_q+1-a)}\, n^{\gamma_q-a}
                 - \sum_{k=0}^{n} w_{n-k}\, k^{\gamma_q}, \qquad q = 1, …, m,

    so that the corrected sum is exact for :math:`x(t) = t^{\gamma_q}` (the step ``h`` cancels).
    Row ``n = 0`` is zero: the Caputo form applies the operator to ``z = x − x(0)``, which has
    ``z_0 = 0``. (Lubich 1986, *Discretized fractional calculus*, SIAM J. Math. Anal. 17.)

    **Conditioning.** Two things limit the accuracy. (i) The matrix :math:`V_{qj} = j^{\gamma_q}`
    is a generalised Vandermonde matrix, and the error of every :math:`s_{n,j}` is amplified by
    its condition number: 1.8e2 for :math:`\gamma = (\tfrac12, 1, \tfrac32)`, but growing fast
    with ``m`` (9.9e5 for :math:`\gamma = \tfrac12, 1, …, 3`) and as the exponents crowd
    together, i.e. for small :math:`\alpha` (3.2e3 for :math:`\gamma = 0.1, 0.2, 0.3`; 9.7e6
    for :math:`0.1, …, 0.5`). See Diethelm, Ford, Ford & Weilbeer 2006, *Pitfalls in fast
    numerical solvers for fractional differential equations*, J. Comput. Appl. Math. 186.
    (ii) The right-hand side is the difference of two sums of size :math:`n^{\gamma-a}` whose
    difference is much smaller, so in float64 it has an absolute error of about
    :math:`\varepsilon\, n^{\gamma - a}` and :math:`s_{n,j}` one of about
    :math:`\varepsilon\, \mathrm{cond}(V)\, n^{\gamma_{\max} - a}` (measured against 40
    digits: 1.5e-12 at ``N = 120`` and 1.8e-11 at ``N = 600`` for FBDF2 with
    :math:`\gamma = (\tfrac12, 1, \tfrac32)`). That error enters the operator as
    :math:`h^{-a}\, \delta s_{n,j}\, x_j`, which for :math:`x_j \sim (jh)^{\gamma}` is about
    :math:`\varepsilon\, \mathrm{cond}(V)\, t_n^{\gamma - a}` times the size of ``x``, so it
    stays at round-off level: for :math:`D^{1/2} y = -\lambda y` at ``N = 512`` the solutions
    with float64 and with 30-digit starting weights agree to 4e-15. Float64 is therefore enough
    for a few well-separated exponents; pass ``dps`` when cond(V) is large.

    **Which exponents.** For a solution :math:`\sum_k c_k t^{k\alpha}` of an equation of order
    :math:`\alpha`, an uncorrected power :math:`t^\gamma` leaves a residual of size
    :math:`h^{\gamma+1} t^{-\alpha-1}` near ``t = 0``, which the solution operator turns into
    an error :math:`O(h^{\gamma + 1 - \alpha})` at fixed ``t`` (Lubich 1986). A kernel of order
    ``p`` therefore needs the exponents :math:`\gamma < p - 1 + \alpha`; the one equal to it
    contributes at order ``p`` too. For :math:`\alpha = 1/2`, ``p = 2`` that is
    :math:`\gamma = \tfrac12, 1` (and :math:`\tfrac32`): measured orders at ``t = 1`` for
    :math:`D^{1/2} y = -y`, ``N = 2048 → 4096``: 1.49 with :math:`\gamma = \tfrac12` only
    (the theory's 1.5), 1.97 with two, 1.99 with three. Exponents :math:`\gamma \ge p` are
    different: the kernel's error on :math:`t^\gamma` is then the interior
    :math:`O(h^p)` error, not a start-up one, and forcing it to zero for one power of the
    series (with weights on the first few values only) removes one term of the smooth
    :math:`O(h^p)` error and leaves the rest. For :math:`\lambda = 3` that made the error at
    ``t = 1``, ``N = 4096``, worse: 1.2e-8 with :math:`\gamma = \tfrac12, 1, \tfrac32`,
    1.1e-7 with :math:`\gamma = 2` added, 4.0e-7 with :math:`2, \tfrac52` added (the same to
    7 digits with 40-digit weights at ``N = 256, 512``, so not through round-off).

    **Arguments:**

    - `kernel`: the kernel whose weights are corrected (`GL`, `FBDF2`, or any kernel when
      ``dps`` is ``None``).
    - `order`: the concrete order ``a`` (a Python float; this is host precomputation).
    - `gammas`: the distinct exponents :math:`\gamma_q \ge 0` (with :math:`0^0 = 1`), typically
      :math:`\alpha, 2\alpha, 3\alpha` for a problem of order :math:`\alpha`.
    - `steps`: the number of steps ``N``.
    - `dps`: ``None`` for float64 with NumPy (direct O(N²) sums, a few seconds at
      ``N = 65536``); an integer for an mpmath computation with that many digits, with the
      kernel's weights recomputed in mpmath (O(N²) multiprecision work, for ``N`` up to a few
      thousand).

    **Returns:**

    A float64 NumPy array ``s`` of shape ``(steps + 1, m)`` with ``s[n, j − 1]`` :math:`= s_{n,j}`.

    **Raises:**

    `ValueError` if the exponents are not distinct or some is negative, or if ``dps`` is given
    for a kernel without a known generating polynomial.
    """
    order = float(order)
    gammas = tuple(float(g) for g in gammas)
    m = len(gammas)
    if len(set(gammas)) != m:
        raise ValueError(f"starting_weights needs distinct exponents, got gammas={gammas}")
    if any(g < 0.0 for g in gammas):
        raise ValueError(
            f"starting_weights needs exponents >= 0 (t^γ must have a value at t = 0), "
            f"got gammas={gammas}"
        )
    if m == 0:
        return np.zeros((steps + 1, 0))
    if dps is not None:
        return _starting_weights_mp(kernel, order, gammas, steps, dps)

    # Host precomputation, also when called while a function is being traced (jax.jit).
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        w = np.asarray(kernel.weights(jnp.asarray(order, dtype=jnp.float64), steps), np.float64)
    k = np.arange(steps + 1, dtype=np.float64)
    powers = k[:, None] ** np.asarray(gammas)[None, :]  # (N+1, m)
    # Σ_k w_{n−k} k^γ by direct summation, one matrix-vector product per n (O(N²) in all, a few
    # seconds for N = 65536). Direct sums keep the absolute error at ε n^{γ−a}; an FFT would
    # add ε ‖w‖ ‖k^γ‖ at every n, which swamps the small-n rows.
    reversed_w = np.ascontiguousarray(w[::-1])
    discrete = np.empty((steps + 1, m))
    for n in range(steps + 1):
        discrete[n] = reversed_w[steps - n :] @ powers[: n + 1]
    exact = np.zeros((steps + 1, m))
    ratios = np.array([_exact_ratio(g, order) for g in gammas])
    exact[1:] = ratios * k[1:, None] ** (np.asarray(gammas) - order)
    rhs = exact - discrete
    rhs[0] = 0.0
    vandermonde = np.arange(1, m + 1, dtype=np.float64)[None, :] ** np.asarray(gammas)[:, None]
    return np.linalg.solve(vandermonde, rhs.T).T


def _starting_weights_mp(kernel, order, gammas, steps, dps):
    import mpmath

    with mpmath.workdps(dps):
        a = mpmath.mpf(order)
        gs = [mpmath.mpf(g) for g in gammas]
        w = _power_series_mp(kernel, a, steps)
        m = len(gs)
        vandermonde = mpmath.matrix(m, m)
        for q, g in enumerate(gs):
            for j in range(m):
                vandermonde[q, j] = mpmath.mpf(j + 1) ** g
        out = np.zeros((steps + 1, m))
        powers = [[mpmath.mpf(k) ** g for k in range(steps + 1)] for g in gs]
        ratios = [mpmath.gamma(g + 1) * mpmath.rgamma(g + 1 - a) for g in gs]
        for n in range(1, steps + 1):
            rhs = mpmath.matrix(m, 1)
            for q in range(m):
                discrete = mpmath.fsum(w[n - k] * powers[q][k] for k in range(n + 1))
                rhs[q] = ratios[q] * mpmath.mpf(n) ** (gs[q] - a) - discrete
            sol = mpmath.lu_solve(vandermonde, rhs)
            out[n] = [float(sol[j]) for j in range(m)]
        return out
