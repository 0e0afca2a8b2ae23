r"""History backends: the far part of every fractional convolution.

At step ``n`` an implicit stepper needs, for each channel ``c`` with operator order ``a_c``, the
*history sum*

.. math::  H_c[n] = \sum_{k=1}^{n} w^{(a_c)}_{k}\, x_c[n-k],

i.e. everything except the current-step term ``w_0 x_c[n]``, which goes into the Newton solve.
A backend is an explicit state machine: ``init`` builds the state from the kernel and the
channel orders, ``history`` reads ``H[n]``, and ``push`` appends ``x[n]`` once step ``n`` has
converged. `lax.scan` drives it. Values before the first push are zero.

| backend | exact? | work per step | state (carried by the scan) |
|---|---|---|---|
| `Exact()` | to round-off | O(C·N) | O(C·N) |
| `SOE(tol)` | to ``tol`` (relative, on the weights) | O(C·(K + L)) | O(C·(K + L)) |

``SOE`` keeps the last ``L`` values exactly and represents the far weights ``w_j, j > L`` as a
sum of exponentials ``Σ_k c_k s_k^j``; its scan carry does not grow with N, so reverse-mode
memory grows like N (one carry per step) instead of N².
"""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array
from ._kernels import GL, AbstractKernel


class AbstractHistory(eqx.Module):
    """Interface of a history backend."""

    @abc.abstractmethod
    def init(self, kernel: AbstractKernel, orders: Array, steps: int) -> Any:
        """State for channels of the given operator orders (shape ``(channels,)``)."""

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

    def init(self, kernel, orders, steps):
        weights = kernel.weights(jnp.atleast_1d(orders), steps)
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


# ------------------------------------------------------------------------------------- SOE


def soe_nodes(tol: float, near: int, steps: int) -> tuple[np.ndarray, float, float]:
    """Trapezoid nodes ``v_k`` (descending) of the GL weight integral, and ``Δv``, ``v_min``.

    Nodes above ``v_max = ln(40/(L+1))`` are dropped (``s^{L+1} < e^{-40}``); below
    ``v_min = ln(tol/N)`` the modes are constant over the run (``1 − s^N ≤ tol``) and are
    lumped into one mode with ``s = 1``. ``Δv = π²/ln(1/tol)`` makes the trapezoid error,
    ``exp(−2π·(π/2)/Δv)``, about ``tol``.
    """
    dv = math.pi**2 / math.log(1.0 / tol)
    v_max = math.log(40.0 / (near + 1))
    v_min = math.log(tol / max(steps, 1))
    count = max(int(math.floor((v_max - v_min) / dv)) + 1, 1)
    v = v_max - dv * np.arange(count)
    return v, dv, float(v[-1])


def gl_soe_coefficients(orders: Array, v: np.ndarray, dv: float) -> tuple[Array, Array]:
    r"""Sum-of-exponentials for the GL weights: ``w_j ≈ Σ_k c_k s_k^j`` for ``j ≥ 2``.

    From ``w_j = −(sin πa/π) ∫₀¹ s^{j−1} s^{−a} (1−s)^a ds`` (DESIGN §2) with
    ``s = exp(−e^v)`` and the trapezoid rule in ``v``:
    ``c_k = −(sin πa/π) Δv s_k^{−a} (1 − s_k)^a e^{v_k}``. The tail below the last node is the
    continuation of the same trapezoid sum with ``s ≈ 1`` and ``(1−s)^a e^v ≈ e^{(1+a)v}``,
    a geometric series lumped into a constant mode (``s = 1``). Differentiable in ``a``.

    **Returns** ``(c, s)`` of shapes ``(channels, K + 1)`` and ``(K + 1,)``.
    """
    a = jnp.atleast_1d(orders)[:, None]
    ev = jnp.asarray(np.exp(v), a.dtype)[None, :]
    s = jnp.exp(-ev)
    one_minus_s = -jnp.expm1(-ev)
    pref = -jnp.sin(jnp.pi * a) / jnp.pi
    c = pref * dv * s ** (-a) * one_minus_s**a * ev
    q = jnp.exp(-(1.0 + a) * dv)
    tail = pref * dv * jnp.exp((1.0 + a) * float(v[-1])) * q / (1.0 - q)
    c = jnp.concatenate([c, tail], axis=1)
    s_all = jnp.concatenate([s[0], jnp.ones((1,), a.dtype)])
    return c, s_all


class _SOEState(eqx.Module):
    near_w: Array  # (C, L): w_1 … w_L
    c: Array  # (C, K)
    s: Array  # (K,)
    s_pow: Array  # (K,): s^L
    recent: Array  # (C, L): x[n−1], …, x[n−L]
    far: Array  # (C, K): Σ_{j>L} s_k^j x[n−j]


class SOE(AbstractHistory):
    r"""Exact near field plus a sum of exponentials for the far field (DESIGN §2).

    ``H[n] = Σ_{j=1}^{L} w_j x[n−j] + Σ_k c_k F_k[n]`` with
    ``F_k[n] = Σ_{j>L} s_k^j x[n−j]``, updated by ``F_k[n+1] = s_k (F_k[n] + s_k^L x[n−L])``.
    Work and state per step are O(C·(K + L)) with K ≈ 100–200 modes; the relative error of the
    far weights is about ``tol``. Supports the `GL` kernel (its weights have the integral
    representation the modes come from).

    **Arguments**: ``tol`` (default 1e-12), ``near`` = L (default 128).
    """

    tol: float = eqx.field(static=True, default=1e-12)
    near: int = eqx.field(static=True, default=128)

    def __check_init__(self):
        if not (0 < self.tol < 1e-2):
            raise ValueError(f"SOE tol={self.tol!r} must lie in (0, 1e-2)")
        if not (isinstance(self.near, int) and self.near >= 2):
            raise ValueError(f"SOE near={self.near!r} must be an integer >= 2")

    def init(self, kernel, orders, steps):
        if not isinstance(kernel, GL):
            raise ValueError(
                f"the SOE history supports the GL kernel only; got {type(kernel).__name__}. "
                "Use history=Exact() with this kernel."
            )
        orders = jnp.atleast_1d(orders)
        near = min(self.near, max(steps, 2))
        weights = kernel.weights(orders, near)  # (C, L+1)
        v, dv, _ = soe_nodes(self.tol, near, steps)
        c, s = gl_soe_coefficients(orders, v, dv)
        channels, modes = orders.shape[0], s.shape[0]
        zeros = jnp.zeros((channels, near), weights.dtype)
        return _SOEState(
            near_w=weights[:, 1:],
            c=c.astype(weights.dtype),
            s=s.astype(weights.dtype),
            s_pow=(s**near).astype(weights.dtype),
            recent=zeros,
            far=jnp.zeros((channels, modes), weights.dtype),
        )

    def history(self, state, n):
        near = jnp.sum(state.near_w * state.recent, axis=1)
        far = jnp.sum(state.c * state.far, axis=1)
        return near + far

    def push(self, state, n, x):
        oldest = state.recent[:, -1:]
        far = state.s * (state.far + state.s_pow * oldest)
        recent = jnp.concatenate([x[:, None].astype(state.recent.dtype), state.recent[:, :-1]], 1)
        return eqx.tree_at(lambda st: (st.recent, st.far), state, (recent, far))
