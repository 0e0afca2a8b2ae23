"""The history-backend interface and the channel layout shared by every backend."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array
from ..kernels import AbstractKernel


@dataclasses.dataclass(frozen=True)
class ChannelLayout:
    """Where each channel lives in a backend's ``(U, S)`` arrays (static, hashable).

    Row ``u`` holds the ``S`` channels of order ``u``; ``perm`` lists the channels in that
    row-major order (``None`` when they already are).
    """

    classes: int
    size: int
    perm: tuple[int, ...] | None = None

    def group(self, x: Array) -> Array:
        """``(C,)`` channel values to ``(U, S)``."""
        if self.perm is not None:
            x = x[np.asarray(self.perm)]
        return x.reshape(self.classes, self.size)

    def ungroup(self, y: Array) -> Array:
        """``(U, S)`` back to ``(C,)`` in channel order."""
        y = y.reshape(self.classes * self.size)
        if self.perm is not None:
            y = y[np.argsort(np.asarray(self.perm))]
        return y


def channel_layout(orders: Array, classes: tuple[int, ...] | None) -> tuple[Array, ChannelLayout]:
    """The orders to compute weights for, and the layout of the channels over them.

    ``classes=None``: one order per channel. Otherwise ``classes[c]`` is the index into
    ``orders`` of channel ``c``'s order; if every order has the same number of channels they
    share its weights, else the orders are gathered per channel.

    **Raises** `ValueError` if ``classes`` refers to an order that does not exist or leaves
    one unused.
    """
    orders = jnp.atleast_1d(orders)
    if classes is None:
        return orders, ChannelLayout(orders.shape[0], 1)
    index = np.asarray(classes, dtype=np.int64).reshape(-1)
    u = orders.shape[0]
    counts = np.bincount(index, minlength=u) if index.size and index.min() >= 0 else None
    if counts is None or len(counts) != u or np.any(counts == 0):
        raise ValueError(
            f"classes={tuple(classes)} must use each of the {u} orders' indices 0 … {u - 1} "
            "at least once, and no other"
        )
    if np.any(counts != counts[0]):  # unequal classes: one row per channel
        return orders[index], ChannelLayout(index.size, 1)
    perm = np.argsort(index, kind="stable")
    sorted_already = bool(np.all(perm == np.arange(index.size)))
    return orders, ChannelLayout(u, int(counts[0]), None if sorted_already else tuple(perm))


class AbstractHistory(eqx.Module):
    """Interface of a history backend."""

    @abc.abstractmethod
    def init(
        self,
        kernel: AbstractKernel,
        orders: Array,
        steps: int,
        classes: tuple[int, ...] | None = None,
    ) -> Any:
        """State for channels of the given operator orders.

        ``orders`` has shape ``(channels,)``, or, with ``classes``, holds the distinct orders
        and ``classes[c]`` indexes channel ``c``'s order (see `channel_layout`): channels of
        one order then share its weights.
        """

    @abc.abstractmethod
    def history(self, state: Any, n: Array) -> Array:
        """``H[n] = Σ_{k=1}^{n} w_k x[n−k]`` for every channel, shape ``(channels,)``."""

    @abc.abstractmethod
    def push(self, state: Any, n: Array, x: Array) -> Any:
        """Record ``x[n]`` (shape ``(channels,)``) after step ``n`` has converged."""


def _zeros(layout: ChannelLayout, length: int, dtype) -> Array:
    return jnp.zeros((layout.classes, layout.size, length), dtype)


def _push_value(buffer: Array, layout: ChannelLayout, pad: int, n: Array, x: Array) -> Array:
    """Store ``x[n]`` at column ``pad − n`` of the reversed value buffer, shape (U, S, 2P+1):
    columns past ``pad`` are times < 0 and stay zero."""
    x = layout.group(x)[..., None].astype(buffer.dtype)
    return jax.lax.dynamic_update_slice_in_dim(buffer, x, pad - n, axis=-1)


def _newest(buffer: Array, pad: int, m: Array, length: int) -> Array:
    """``[x[m−1], x[m−2], …, x[m−length]]`` per channel (zeros for negative times)."""
    return jax.lax.dynamic_slice_in_dim(buffer, pad - m + 1, length, axis=-1)
