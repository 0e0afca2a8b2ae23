r"""History backends: the far part of every fractional convolution.

At step ``n`` an implicit stepper needs, for each channel ``c``, the *history sum*

.. math::  H_c[n] = \sum_{k=1}^{n} w_{c,k}\, x_c[n-k],

i.e. everything except the current-step term ``w_{c,0} x_c[n]``, which goes into the Newton
solve. A backend is an explicit state machine: ``init`` builds the state, ``history`` reads
``H[n]``, and ``push`` appends ``x[n]`` once step ``n`` has converged. `lax.scan` drives it.

All backends must agree; ``Exact`` is the reference. Faster backends (block-Toeplitz, HLS FFT,
sum-of-exponentials) implement the same three methods.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array


class AbstractHistory(eqx.Module):
    """Interface of a history backend."""

    @abc.abstractmethod
    def init(self, weights: Array, steps: int) -> Any:
        """State for channels with weights ``(channels, steps + 1)``; all past values zero."""

    @abc.abstractmethod
    def history(self, state: Any, n: Array) -> Array:
        """``H[n] = Σ_{k=1}^{n} w_k x[n−k]`` for every channel, shape ``(channels,)``."""

    @abc.abstractmethod
    def push(self, state: Any, n: Array, x: Array) -> Any:
        """Record ``x[n]`` (shape ``(channels,)``) after step ``n`` has converged."""


class _ExactState(eqx.Module):
    weights: Array  # (C, N+1)
    buffer: Array  # (C, 2N+1); x[m] lives at column N - m, zeros elsewhere


class Exact(AbstractHistory):
    """Exact full-history convolution, O(N) work per step and O(N²) in total.

    Values are kept in a buffer in reversed time order, so that the history sum at step ``n`` is
    one dot product of ``w[1:]`` with a dynamic slice of the buffer. This is the reference
    backend. In reverse mode it stores the buffer at every step (O(N²) memory); use it for
    moderate ``N``.
    """

    def init(self, weights, steps):
        channels = weights.shape[0]
        buffer = jnp.zeros((channels, 2 * steps + 1), dtype=weights.dtype)
        return _ExactState(weights=weights, buffer=buffer)

    def history(self, state, n):
        steps = state.weights.shape[1] - 1
        window = jax.lax.dynamic_slice_in_dim(state.buffer, steps - n + 1, steps, axis=1)
        return jnp.sum(state.weights[:, 1:] * window, axis=1)

    def push(self, state, n, x):
        steps = state.weights.shape[1] - 1
        buffer = jax.lax.dynamic_update_slice_in_dim(
            state.buffer, x[:, None].astype(state.buffer.dtype), steps - n, axis=1
        )
        return _ExactState(weights=state.weights, buffer=buffer)
