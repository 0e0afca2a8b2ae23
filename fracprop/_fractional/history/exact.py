"""`Exact`: the full convolution with every past value, step by step."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ..._custom_types import Array
from .base import AbstractHistory, ChannelLayout, _newest, _push_value, _zeros, channel_layout


class _ExactState(eqx.Module):
    weights: Array  # (U, N+1)
    buffer: Array  # (U, S, 2N+1); x[m] lives at column N - m, zeros elsewhere
    layout: ChannelLayout = eqx.field(static=True)


class Exact(AbstractHistory):
    """Exact full-history convolution, O(N) work per step and O(N²) in total.

    Values are kept in a buffer in reversed time order, so that the history sum at step ``n`` is
    one dot product of ``w[1:]`` with a dynamic slice of the buffer. This is the reference
    backend. Differentiated w.r.t. the orders α, reverse mode stores the buffer at every step
    (O(N²) memory); use `SOE` for such gradients beyond moderate ``N``.
    """

    def init(self, kernel, orders, steps, classes=None):
        orders, layout = channel_layout(orders, classes)
        weights = kernel.weights(orders, steps)
        buffer = _zeros(layout, 2 * steps + 1, weights.dtype)
        return _ExactState(weights=weights, buffer=buffer, layout=layout)

    def history(self, state, n):
        steps = state.weights.shape[1] - 1
        window = _newest(state.buffer, steps, n, steps)  # x[n−1], …, x[n−N]
        return state.layout.ungroup(jnp.sum(state.weights[:, None, 1:] * window, axis=-1))

    def push(self, state, n, x):
        steps = state.weights.shape[1] - 1
        buffer = _push_value(state.buffer, state.layout, steps, n, x)
        return eqx.tree_at(lambda st: st.buffer, state, buffer)
