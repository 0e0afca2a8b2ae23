"""`SOE`: exact near field plus a sum of exponentials for the far field."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array
from .base import AbstractHistory, ChannelLayout, channel_layout


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

    From ``w_j = −(sin πa/π) ∫₀¹ s^{j−1} s^{−a} (1−s)^a ds`` (docs/design.md §3) with
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
    near_w: Array  # (U, L): w_1 … w_L
    c: Array  # (U, K)
    s: Array  # (K,)
    s_pow: Array  # (K,): s^L
    recent: Array  # (U, S, L): x[n−1], …, x[n−L]
    far: Array  # (U, S, K): Σ_{j>L} s_k^j x[n−j]
    layout: ChannelLayout = eqx.field(static=True)


class SOE(AbstractHistory):
    r"""Exact near field plus a sum of exponentials for the far field (docs/design.md §3).

    ``H[n] = Σ_{j=1}^{L} w_j x[n−j] + Σ_k c_k F_k[n]`` with
    ``F_k[n] = Σ_{j>L} s_k^j x[n−j]``, updated by ``F_k[n+1] = s_k (F_k[n] + s_k^L x[n−L])``.
    Work and state per step are O(C·(K + L)) with K ≈ 100–200 modes; the relative error of the
    far weights is about ``tol``.

    The modes come from the integral representation of the `GL` weights ``g``
    (`gl_soe_coefficients`). A kernel whose weights are a finite filter of them,
    ``w_j = Σ_{m=0}^{M} t_m g_{j−m}`` (`AbstractKernel.gl_taps`; `FBDF2`, with ``M = 48``),
    has the same modes: for ``j − M`` beyond the GL near field ``L − M``,

    .. math::  w_j ≈ \sum_m t_m \sum_k c_k s_k^{j-m}
               = \sum_k \Bigl(c_k \sum_{m=0}^{M} t_m s_k^{-m}\Bigr) s_k^{j},

    so only the coefficients change (the sum over ``m`` converges fast: ``|t_m| ≲ 3^{−m}`` and
    ``s_k ≥ e^{−40/(L−M+1)}``). Other kernels raise; use `HLS` for them.

    **Arguments**: ``tol`` (default 1e-12), ``near`` = L (default 128; with `FBDF2` it must
    exceed 48 + 1).
    """

    tol: float = eqx.field(static=True, default=1e-12)
    near: int = eqx.field(static=True, default=128)

    def __check_init__(self):
        if not (0 < self.tol < 1e-2):
            raise ValueError(f"SOE tol={self.tol!r} must lie in (0, 1e-2)")
        if not (isinstance(self.near, int) and self.near >= 2):
            raise ValueError(f"SOE near={self.near!r} must be an integer >= 2")

    def init(self, kernel, orders, steps, classes=None):
        orders, layout = channel_layout(orders, classes)
        try:
            taps = kernel.gl_taps(orders)  # (U, M+1)
        except NotImplementedError:
            raise ValueError(
                f"the SOE history needs a kernel that is a finite filter of the GL weights "
                f"(GL, FBDF2); got {type(kernel).__name__}. Use history=HLS() with this kernel."
            ) from None
        lag = taps.shape[-1] - 1
        near = min(self.near, max(steps, 2))
        if near < steps and near <= lag + 1:
            raise ValueError(
                f"SOE near={self.near!r} must exceed {lag + 1} with the {type(kernel).__name__} "
                f"kernel (its weights filter {lag + 1} GL weights); use the default near=128"
            )
        weights = kernel.weights(orders, near)  # (U, L+1)
        v, dv, _ = soe_nodes(self.tol, max(near - lag, 1), steps)
        c, s = gl_soe_coefficients(orders, v, dv)
        if lag:  # c_k Σ_m t_m s_k^{−m}
            inverse_powers = s[:, None] ** -jnp.arange(lag + 1, dtype=s.dtype)  # (K, M+1)
            c = c * jnp.einsum(
                "um,km->uk", taps, inverse_powers, precision=jax.lax.Precision.HIGHEST
            )
        rows = (layout.classes, layout.size)
        return _SOEState(
            near_w=weights[:, 1:],
            c=c.astype(weights.dtype),
            s=s.astype(weights.dtype),
            s_pow=(s**near).astype(weights.dtype),
            recent=jnp.zeros(rows + (near,), weights.dtype),
            far=jnp.zeros(rows + s.shape, weights.dtype),
            layout=layout,
        )

    def history(self, state, n):
        near = jnp.sum(state.near_w[:, None] * state.recent, axis=-1)
        far = jnp.sum(state.c[:, None] * state.far, axis=-1)
        return state.layout.ungroup(near + far)

    def push(self, state, n, x):
        oldest = state.recent[..., -1:]
        far = state.s * (state.far + state.s_pow * oldest)
        x = state.layout.group(x)[..., None].astype(state.recent.dtype)
        recent = jnp.concatenate([x, state.recent[..., :-1]], axis=-1)
        return eqx.tree_at(lambda st: (st.recent, st.far), state, (recent, far))
