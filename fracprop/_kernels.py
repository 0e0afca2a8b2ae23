r"""Convolution-quadrature kernels for fractional operators (DESIGN §2).

A kernel turns a fractional operator of order ``a`` into a discrete convolution on the uniform
grid ``t_n = n h``:

.. math::  D^a x(t_n) \approx h^{-a} \sum_{k=0}^{n} w^{(a)}_k x_{n-k}.

Negative ``a`` gives the fractional integral :math:`I^{|a|}`. `starting_weights` adds Lubich's
correction terms that keep a kernel's order for solutions with :math:`t^\gamma` singularities.
"""

from __future__ import annotations

import abc
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array


class AbstractKernel(eqx.Module):
    """Produces convolution weights ``w_0 … w_N`` for an operator of order ``a``."""

    @abc.abstractmethod
    def weights(self, order: Array, steps: int) -> Array:
        """Weights of shape ``order.shape + (steps + 1,)``."""

    def first_weight(self, order: Array) -> Array:
        """``w_0``, the weight of the current step, for every entry of ``order``.

        Steppers put ``w_0 x[n]`` into the implicit solve and take the rest of the sum from a
        history backend, so they must use this value, not 1: ``w_0 = 1`` for `GL` but
        ``(3/2)^a`` for `FBDF2`.
        """
        return self.weights(jnp.asarray(order), 1)[..., 0]

    def gl_taps(self, order: Array) -> Array:
        """Taps ``t_0 … t_M`` with ``w = t ∗ g`` (``w_j = Σ_m t_m g_{j−m}``), ``g`` the `GL`
        weights of the same order, shape ``order.shape + (M + 1,)``.

        A kernel that is such a finite filter of GL inherits GL's sum-of-exponentials
        representation of its far weights, which the `SOE` history uses.

        **Raises:** `NotImplementedError` for a kernel that is not one.
        """
        raise NotImplementedError(
            f"the kernel {type(self).__name__} does not define gl_taps(), which the SOE history "
            "needs; use history=HLS() (exact for any kernel)"
        )

    def integer_weights(self) -> tuple[tuple[float, ...], ...]:
        """The linear multistep method that integer-order elements (``C``, ``L``) step with.

        Row ``r`` holds the weights ``w_0, w_1, …`` of ``h·d/dt`` used at step ``n = r + 1``;
        the last row is used from then on. The last row is the kernel's weights for order 1
        (a finite list); the rows before it are the method's start (see `FBDF2`).

        **Raises:** `NotImplementedError` for a kernel that does not define them.
        """
        raise NotImplementedError(
            f"the kernel {type(self).__name__} does not define integer_weights(), which "
            "integer-order capacitors and inductors need; use GL() or FBDF2()"
        )


class GL(AbstractKernel):
    r"""Grünwald–Letnikov weights, the convolution quadrature of backward Euler (order 1).

    :math:`w_0 = 1,\ w_k = w_{k-1}\,(1 - (a+1)/k)`, i.e. the Taylor coefficients of
    :math:`(1-\zeta)^a`. For ``a = 1`` they are ``[1, -1, 0, …]`` (backward Euler) and for
    ``a = 0`` the identity ``[1, 0, …]``. The weights for ``a`` and ``-a`` are convolution
    inverses, so ``D^a I^a`` is the identity to round-off.

    The product form is differentiable in ``a``. Integer-order capacitors and inductors step
    with backward Euler, ``[1, −1]`` (`integer_weights`).
    """

    def integer_weights(self):
        return ((1.0, -1.0),)

    def first_weight(self, order):
        return jnp.ones_like(jnp.asarray(order))

    def gl_taps(self, order):
        return jnp.ones(jnp.shape(order) + (1,), jnp.asarray(order).dtype)

    def weights(self, order, steps):
        order = jnp.asarray(order)
        k = jnp.arange(1, steps + 1, dtype=order.dtype)
        factors = 1.0 - (order[..., None] + 1.0) / k
        ones = jnp.ones(order.shape + (1,), dtype=order.dtype)
        return jnp.concatenate([ones, jnp.cumprod(factors, axis=-1)], axis=-1)


#: Terms kept of the geometric factor in `FBDF2`: 3^{-49} ≈ 4e-24, far below round-off.
_FBDF2_TERMS = 48


class FBDF2(AbstractKernel):
    r"""Fractional BDF2 weights, the convolution quadrature of the two-step BDF (order 2).

    The weights are the Taylor coefficients of the BDF2 generating function raised to ``a``,

    .. math::  \sum_k w_k \zeta^k = \Bigl(\tfrac{3 - 4\zeta + \zeta^2}{2}\Bigr)^a
               = \bigl(\tfrac32\bigr)^a (1-\zeta)^a (1-\zeta/3)^a,

    so :math:`w_k = (3/2)^a \sum_{m=0}^{\min(k, M)} 3^{-m} g_m\, g_{k-m}` with :math:`g` the
    Grünwald–Letnikov weights of `GL`, computed by the stable running product
    :math:`g_k = g_{k-1}(1 - (a+1)/k)`. The coefficients :math:`3^{-m} g_m` of the second factor
    decay geometrically, so the Cauchy product is cut at :math:`M = 48` terms: the first
    neglected one carries :math:`3^{-49} \approx 4 \cdot 10^{-24}` times a binomial coefficient,
    far below round-off for :math:`|a| \lesssim 3`. Measured against a 40-digit evaluation of
    the series (Miller's recurrence :math:`\delta f' = a \delta' f` in mpmath), the weights
    agree to 1e-14 relative for :math:`a \in \{0.5, 0.9, 1.9\}` and 4e-14 for
    :math:`a = -1.3`, up to ``N = 65536``. (Miller's three-term recurrence run forward in
    float64 is stable too, but sequential and 100–200 times less accurate at that ``N``.)

    For ``a = 1`` the weights are exactly ``[3/2, -2, 1/2, 0, …]`` (BDF2) and for ``a = 0``
    exactly ``[1, 0, …]``. The weights for ``a`` and ``-a`` are convolution inverses. Every
    weight is a polynomial in ``a`` times :math:`(3/2)^a`, so the weights are differentiable in
    ``a``, which may be traced and may have any shape. The 48-term sum is a `jax.lax.scan` whose
    terms are rematerialised, so reverse mode stores O(N) values per order, not 48 N.

    On its own the scheme is only first order for solutions that behave like :math:`t^\alpha`
    near ``t = 0`` (DESIGN §2); second order needs `starting_weights`.

    The weights are the GL weights filtered by the 49 taps :math:`(3/2)^a 3^{-m} g_m`
    (`gl_taps`), so the `SOE` history represents their far part with GL's exponential modes.

    Integer-order capacitors and inductors step with BDF2, ``[3/2, −2, 1/2]``, started by one
    backward-Euler step ``[1, −1]`` (`integer_weights`). That start is Lubich's starting
    correction for :math:`\gamma = 1`: the BDF2 convolution of ``z = x − x(0)`` (zero for
    ``t ≤ 0``) is exact for ``z = t`` at every ``n ≥ 2`` but gives ``3/2`` instead of ``1`` at
    ``n = 1``. A solution whose derivative jumps at ``t = 0`` (a source step, or any start
    whose history before ``t = 0`` is held constant: rest or the DC operating point) would
    otherwise carry an O(h) error from the first step; with the start the local error of the
    first step is O(h²) and the method is second order for solutions smooth on ``t ≥ 0``.
    """

    def integer_weights(self):
        return ((1.0, -1.0), (1.5, -2.0, 0.5))

    def first_weight(self, order):
        return jnp.power(1.5, jnp.asarray(order))

    def gl_taps(self, order):
        """``t_m = (3/2)^a 3^{−m} g_m``, ``m = 0 … 48``: the truncated second factor."""
        order = jnp.asarray(order)
        third = _third_factor(GL().weights(order, _FBDF2_TERMS), _FBDF2_TERMS)
        return jnp.power(1.5, order)[..., None] * third

    def weights(self, order, steps):
        return _fbdf2_weights(jnp.asarray(order), steps)


def _third_factor(g: Array, terms: int) -> Array:
    """The first ``terms + 1`` coefficients of ``(1 − ζ/3)^a``: the GL weights ``g`` times
    ``3^{−m}``."""
    third = jnp.asarray((1.0 / 3.0) ** np.arange(terms + 1), dtype=g.dtype)
    return g[..., : terms + 1] * third


@functools.partial(jax.jit, static_argnums=1)
def _fbdf2_weights(order: Array, steps: int) -> Array:
    g = GL().weights(order, steps)
    terms = min(steps, _FBDF2_TERMS)
    tail = _third_factor(g, terms)
    padded = jnp.concatenate([jnp.zeros(g.shape[:-1] + (terms,), g.dtype), g], axis=-1)

    @jax.checkpoint  # recompute the shifted copy in reverse mode instead of storing 48 of them
    def term(m, tail, padded):
        shifted = jax.lax.dynamic_slice_in_dim(padded, terms - m, steps + 1, axis=-1)
        return jax.lax.dynamic_index_in_dim(tail, m, axis=-1) * shifted

    def add_term(out, m):
        return out + term(m, tail, padded), None

    out, _ = jax.lax.scan(add_term, tail[..., :1] * g, jnp.arange(1, terms + 1))
    return jnp.power(1.5, order)[..., None] * out


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

    with jax.enable_x64(True):
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
