r"""Convolution-quadrature kernels for fractional operators (docs/design.md §2).

A kernel turns a fractional operator of order ``a`` into a discrete convolution on the uniform
grid ``t_n = n h``:

.. math::  D^a x(t_n) \approx h^{-a} \sum_{k=0}^{n} w^{(a)}_k x_{n-k}.

Negative ``a`` gives the fractional integral :math:`I^{|a|}`. `starting_weights` adds Lubich's
correction terms that keep a kernel's order for solutions with :math:`t^\gamma` singularities.

Kernels serve the fractional elements only; the integer-order capacitors and inductors step
with a linear multistep method chosen on its own (``simulate(method=...)``).
"""

from __future__ import annotations

import abc
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array


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


class GL(AbstractKernel):
    r"""Grünwald–Letnikov weights, the convolution quadrature of backward Euler (order 1).

    :math:`w_0 = 1,\ w_k = w_{k-1}\,(1 - (a+1)/k)`, i.e. the Taylor coefficients of
    :math:`(1-\zeta)^a`. For ``a = 1`` they are ``[1, -1, 0, …]`` (backward Euler) and for
    ``a = 0`` the identity ``[1, 0, …]``. The weights for ``a`` and ``-a`` are convolution
    inverses, so ``D^a I^a`` is the identity to round-off.

    The product form is differentiable in ``a``.
    """

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
    near ``t = 0`` (docs/design.md §2); second order needs `starting_weights`.

    The weights are the GL weights filtered by the 49 taps :math:`(3/2)^a 3^{-m} g_m`
    (`gl_taps`), so the `SOE` history represents their far part with GL's exponential modes.
    """

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
