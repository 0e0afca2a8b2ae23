r"""Convolution-quadrature kernels for fractional operators (DESIGN §2).

A kernel turns a fractional operator of order ``a`` into a discrete convolution on the uniform
grid ``t_n = n h``:

.. math::  D^a x(t_n) \approx h^{-a} \sum_{k=0}^{n} w^{(a)}_k x_{n-k}.

Negative ``a`` gives the fractional integral :math:`I^{|a|}`.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp

from ._custom_types import Array


class AbstractKernel(eqx.Module):
    """Produces convolution weights ``w_0 … w_N`` for an operator of order ``a``."""

    @abc.abstractmethod
    def weights(self, order: Array, steps: int) -> Array:
        """Weights of shape ``order.shape + (steps + 1,)``."""


class GL(AbstractKernel):
    r"""Grünwald–Letnikov weights, the convolution quadrature of backward Euler (order 1).

    :math:`w_0 = 1,\ w_k = w_{k-1}\,(1 - (a+1)/k)`, i.e. the Taylor coefficients of
    :math:`(1-\zeta)^a`. For ``a = 1`` they are ``[1, -1, 0, …]`` (backward Euler) and for
    ``a = 0`` the identity ``[1, 0, …]``. The weights for ``a`` and ``-a`` are convolution
    inverses, so ``D^a I^a`` is the identity to round-off.

    The product form is differentiable in ``a``.
    """

    def weights(self, order, steps):
        order = jnp.asarray(order)
        k = jnp.arange(1, steps + 1, dtype=order.dtype)
        factors = 1.0 - (order[..., None] + 1.0) / k
        ones = jnp.ones(order.shape + (1,), dtype=order.dtype)
        return jnp.concatenate([ones, jnp.cumprod(factors, axis=-1)], axis=-1)
