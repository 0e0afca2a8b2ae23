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
    values: int | None = None,
    dps: int | None = None,
) -> np.ndarray:
    r"""Lubich's starting weights, which make a kernel exact on the powers :math:`t^{\gamma_q}`.

    With ``w`` the kernel's weights for order ``a``, :math:`m` = ``len(gammas)`` exponents and
    :math:`M \ge m` starting values (``values``, default :math:`m`), the corrected operator is

    .. math::  D^a x(t_n) \approx h^{-a}\Bigl(\sum_{k=0}^{n} w_{n-k} x_k
               + \sum_{j=1}^{M} s_{n,j} x_j\Bigr),

    and for every ``n ≥ 1`` the :math:`s_{n,j}` solve the :math:`m \times M` system

    .. math::  \sum_{j=1}^{M} s_{n,j}\, j^{\gamma_q}
               = \frac{\Gamma(\gamma_q+1)}{\Gamma(\gamma_q+1-a)}\, n^{\gamma_q-a}
                 - \sum_{k=0}^{n} w_{n-k}\, k^{\gamma_q}, \qquad q = 1, …, m,

    so that the corrected sum is exact for :math:`x(t) = t^{\gamma_q}` (the step ``h`` cancels).
    For :math:`M = m` (Lubich 1986, *Discretized fractional calculus*, SIAM J. Math. Anal. 17)
    the system is square; for :math:`M > m` it is underdetermined and :math:`s_{n,\cdot}` is its
    minimum-norm solution. Row ``n = 0`` is zero: the Caputo form applies the operator to
    ``z = x − x(0)``, which has ``z_0 = 0``.

    **Conditioning, and why more starting values.** The matrix :math:`V_{qj} = j^{\gamma_q}` is
    a generalised Vandermonde matrix whose condition number grows fast with ``m`` and as the
    exponents crowd together, i.e. for small :math:`\alpha` (square: 1.8e2 for
    :math:`\gamma = (\tfrac12, 1, \tfrac32)`, 9.9e5 for :math:`\tfrac12, 1, …, 3`, 7.7e11 for
    :math:`0.2, 0.4, …, 1.8`; Diethelm, Ford, Ford & Weilbeer 2006, *Pitfalls in fast numerical
    solvers for fractional differential equations*, J. Comput. Appl. Math. 186). Two effects
    matter for the scheme, and the forward error of :math:`s` itself is neither:

    - *The residual of the exactness conditions.* Because :math:`x_j` is close to
      :math:`\sum_q c_q (jh)^{\gamma_q}`, an error in :math:`s` enters the operator only
      through :math:`V s - \mathrm{rhs}`. A backward-stable solve (LU for ``M = m``, the SVD for
      ``M > m``) keeps that residual at :math:`\varepsilon \|V\| \|s\|` whatever cond(V),
      whereas applying a pseudo-inverse computed exactly and rounded to float64 leaves
      :math:`\varepsilon\, \mathrm{cond}(V) \|\mathrm{rhs}\|`: for FBDF2, ``a = 0.2`` and the
      nine exponents :math:`0.2, …, 1.8` with ``M = 9`` the latter gave an error of 2e-5 at
      every ``N = 250 … 4000`` on the fractional RC (`fracprop._transient.start`), LU at
      most 1.5e-8. The right-hand side itself carries an absolute error of about
      :math:`\varepsilon\, n^{\gamma - a}` (the difference of two sums of that size), which
      enters the solution at round-off level: for
      :math:`D^{1/2} y = -\lambda y` at ``N = 512`` the solutions with float64 and with
      30-digit weights agree to 4e-15, and for ``a = 0.3`` or ``0.2`` with six or nine
      exponents the fractional RC's error does not change at ``N = 1000 … 4000`` when the
      right-hand side is summed in 80-bit extended precision.
    - *The size of* :math:`s`. The first ``M`` steps are coupled through the starting terms;
      their matrix :math:`T + S` (``T`` the lower-triangular Toeplitz matrix of
      :math:`w_0 … w_{M-1}`, ``S`` the :math:`s_{n,j}` with ``n, j ≤ M``) has a condition number
      that grows with :math:`|s|`, and the round-off of the block's solution with it. For the
      nine exponents above: :math:`\max|s| = ` 2.6e4 and cond(T + S) = 9.4e9 with ``M = 9``,
      which leaves an erratic error of 1e-9 … 1.5e-8 on the fractional RC (also with 40-digit
      weights, while the block solved in 60 digits gives a smooth 5.8e-10 at ``N = 2000``: it
      is the block's round-off, not the weights'); 3.3e2 and 2.8e6 with ``M = 18``, where
      float64 weights and 50-digit weights rounded to float64 give the same error to 1 %.
      More starting values than exponents make the minimum-norm weights, and so the block's
      condition number, smaller; `fracprop._transient.start.starting_plan` chooses ``M`` by
      that condition number.

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
    - `values`: the number ``M ≥ m`` of starting values (``None``: ``m``).
    - `dps`: ``None`` for float64 with NumPy (direct O(N²) sums, a few seconds at
      ``N = 65536``); an integer for an mpmath computation with that many digits, with the
      kernel's weights recomputed in mpmath (O(N²) multiprecision work, for ``N`` up to a few
      thousand), and the minimum-norm solution from a QR factorisation of :math:`V^T`.

    **Returns:**

    A float64 NumPy array ``s`` of shape ``(steps + 1, M)`` with ``s[n, j − 1]`` :math:`= s_{n,j}`.

    **Raises:**

    `ValueError` if the exponents are not distinct or some is negative, if ``values`` is
    smaller than the number of exponents, or if ``dps`` is given for a kernel without a known
    generating polynomial.
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
    size = m if values is None else int(values)
    if size < m:
        raise ValueError(
            f"starting_weights needs at least as many starting values as exponents, got "
            f"values={values} for {m} exponents"
        )
    if m == 0:
        return np.zeros((steps + 1, size))
    if dps is not None:
        return _starting_weights_mp(kernel, order, gammas, steps, size, dps)

    _, rhs = exactness_system(kernel, order, gammas, steps)
    vandermonde = np.arange(1, size + 1, dtype=np.float64)[None, :] ** np.asarray(gammas)[:, None]
    if size == m:
        return np.linalg.solve(vandermonde, rhs.T).T
    # The minimum-norm solution by the SVD: backward stable, so the corrected sum is exact on every
    # t^γ_q up to ε‖V‖‖s‖ (what the scheme needs), although s itself carries ε·cond(V)·‖s‖.
    return np.linalg.lstsq(vandermonde, rhs.T, rcond=None)[0].T


def exactness_system(
    kernel: AbstractKernel, order: float, gammas, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""``(w, rhs)`` in float64: the kernel's weights :math:`w_0 … w_N` for order ``a`` and the
    right-hand sides of `starting_weights`' exactness conditions,
    :math:`\frac{\Gamma(\gamma_q+1)}{\Gamma(\gamma_q+1-a)} n^{\gamma_q-a}
    - \sum_{k=0}^{n} w_{n-k} k^{\gamma_q}`, shape ``(steps + 1, len(gammas))`` (row 0 zero).
    Rows ``n ≤ K`` do not depend on ``steps ≥ K``."""
    order = float(order)
    gammas = np.asarray([float(g) for g in gammas])
    # Host precomputation, also when called while a function is being traced (jax.jit).
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        w = np.asarray(kernel.weights(jnp.asarray(order, dtype=jnp.float64), steps), np.float64)
    k = np.arange(steps + 1, dtype=np.float64)
    powers = k[:, None] ** gammas[None, :]  # (N+1, m)
    # Σ_k w_{n−k} k^γ by direct summation, one matrix-vector product per n (O(N²) in all, a few
    # seconds for N = 65536). Direct sums keep the absolute error at ε n^{γ−a}; an FFT would
    # add ε ‖w‖ ‖k^γ‖ at every n, which swamps the small-n rows.
    reversed_w = np.ascontiguousarray(w[::-1])
    discrete = np.empty((steps + 1, len(gammas)))
    for n in range(steps + 1):
        discrete[n] = reversed_w[steps - n :] @ powers[: n + 1]
    exact = np.zeros((steps + 1, len(gammas)))
    ratios = np.array([_exact_ratio(g, order) for g in gammas])
    exact[1:] = ratios * k[1:, None] ** (gammas - order)
    rhs = exact - discrete
    rhs[0] = 0.0
    return w, rhs


def _starting_weights_mp(kernel, order, gammas, steps, size, dps):
    import mpmath

    with mpmath.workdps(dps):
        a = mpmath.mpf(order)
        gs = [mpmath.mpf(g) for g in gammas]
        w = _power_series_mp(kernel, a, steps)
        m = len(gs)
        # V^T = Q R (Q: size × m), so the minimum-norm solution of V s = r is s = Q R^{-T} r;
        # for size = m it is the solution of the square system.
        transposed = mpmath.matrix(size, m)
        for q, g in enumerate(gs):
            for j in range(size):
                transposed[j, q] = mpmath.mpf(j + 1) ** g
        q_factor, r_factor = mpmath.qr(transposed, mode="skinny")
        r_transposed = r_factor.T
        out = np.zeros((steps + 1, size))
        powers = [[mpmath.mpf(k) ** g for k in range(steps + 1)] for g in gs]
        ratios = [mpmath.gamma(g + 1) * mpmath.rgamma(g + 1 - a) for g in gs]
        for n in range(1, steps + 1):
            rhs = mpmath.matrix(m, 1)
            for q in range(m):
                discrete = mpmath.fsum(w[n - k] * powers[q][k] for k in range(n + 1))
                rhs[q] = ratios[q] * mpmath.mpf(n) ** (gs[q] - a) - discrete
            sol = q_factor * mpmath.lu_solve(r_transposed, rhs)
            out[n] = [float(sol[j]) for j in range(size)]
        return out
