"""Blocked exact backends: `Dense` (block-Toeplitz matrix products) and `HLS`
(Hairer–Lubich–Schlichte FFT blocks)."""

from __future__ import annotations

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array
from .base import AbstractHistory, ChannelLayout, _newest, _push_value, _zeros, channel_layout


def _check_power_of_two(backend: str, name: str, value: Any, low: int, high: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if not (ok and value & (value - 1) == 0):
        raise ValueError(
            f"{backend} {name}={value!r} must be a power of two between {low} and {high}"
        )


def _padded_length(block: int, steps: int) -> int:
    """Smallest ``P = block·2^K ≥ steps + 1``: every time index ``0 … steps`` lies below it."""
    pad = block
    while pad < steps + 1:
        pad *= 2
    return pad


def _near_sum(near_w: Array, buffer: Array, pad: int, n: Array, block: int) -> Array:
    """``Σ_{j=1}^{r} w_j x[n−j]`` with ``r = n mod block``: the lags inside n's own block."""
    window = _newest(buffer, pad, n, block)  # x[n−1], …, x[n−block]
    inside = jnp.arange(1, block + 1) <= n % block
    return jnp.sum(jnp.where(inside, near_w[:, None] * window, 0.0), axis=-1)


def _read_far(far: Array, n: Array) -> Array:
    return jax.lax.dynamic_index_in_dim(far, n % far.shape[-1], axis=-1, keepdims=False)


def _next_far(pending: Array, far: Array, m: Array) -> Array:
    """At a block start ``m``, the far field of steps ``m … m+B−1``, else ``far`` unchanged.

    Read only after the pending buffer has been updated: `history` reads this small copy, so
    the large buffer is never read before it is updated in place (which would make XLA copy it).
    """
    block = far.shape[-1]
    start = jax.lax.dynamic_slice_in_dim(pending, m, block, axis=-1)
    return jnp.where(m % block == 0, start, far)


def _switch_in_place(branches, index, pending, operands):
    """`_switch_in_place_impl` under `jax.checkpoint`, for O(C·N) reverse-mode memory in all.

    Reverse mode through a conditional stores, at every step, what any branch needs for its
    transpose, zero-filled for the others: here the weight data of the selected branch (the
    Hankel rows or weight spectra of its size, O(C·N)), so O(C·N²) over a run even when only
    conductances are differentiated. Under `jax.checkpoint` the stored values are the inputs
    of the call instead; the weight data are then the scan's loop-invariant carry, which
    `lax.scan` does not stack, and the transpose needs no values of the buffers, as the
    branches are linear in them. Measured by ``benchmarks/grad_memory.py``.
    """
    impl = functools.partial(_switch_in_place_impl, branches)
    return jax.checkpoint(impl)(index, pending, operands)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _switch_in_place_impl(branches, index, pending, operands):
    """``branches[index − 1](pending, *operands)``, or ``pending`` unchanged when ``index = 0``.

    The same as `jax.lax.switch` with an identity branch 0, but ``pending`` (O(C·N)) is
    updated in place: XLA copies a buffer that passes through a conditional (measured: HLS was
    then O(N²), slower than `Exact`), while a `jax.lax.fori_loop` with 0 or 1 trips per branch
    updates its carry in place. Loops with a traced trip count cannot be transposed, so the
    derivative (a `jax.custom_jvp`) is the JVP of the `jax.lax.switch` form, which reverse mode
    can transpose; it pays the copies. The step counter is not batched by `jax.vmap`, so the
    loops (and the switch of the derivative) stay real branches there.
    """

    def branch_loops(_, pending):
        for k, branch in enumerate(branches):
            trips = (index == k + 1).astype(jnp.int32)

            def body(_, p, f=branch):
                # Tie the operands to the carry, or XLA hoists the loop-invariant work (the
                # whole branch but its last update) out of the loop and runs it at every step.
                p, ops = jax.lax.optimization_barrier((p, operands))
                return f(p, *ops)

            pending = jax.lax.fori_loop(0, trips, body, pending)
        return pending

    # One outer loop, entered only when some branch is due, keeps the per-step cost of the
    # other steps at one loop test instead of one per branch.
    return jax.lax.fori_loop(0, (index > 0).astype(jnp.int32), branch_loops, pending)


@_switch_in_place_impl.defjvp
def _switch_in_place_jvp(branches, primals, tangents):
    index, pending, operands = primals
    _, d_pending, d_operands = tangents
    out = _switch_in_place_impl(branches, index, pending, operands)

    def switch(pending, operands):
        identity = lambda p, *ops: p  # noqa: E731
        return jax.lax.switch(index, (identity, *branches), pending, *operands)

    _, d_out = jax.jvp(switch, (pending, operands), (d_pending, d_operands))
    return out, d_out


class _DenseState(eqx.Module):
    near_w: Array  # (U, B): w_1 … w_B
    hankel: Array  # (U, P/B, 2B−1): hankel[u, q, s] = w_u[qB + s + 1]
    buffer: Array  # (U, S, 2P+1): x[m] at column P − m
    pending: Array  # (U, S, P): far-field part of H[n], written one block ahead
    far: Array  # (U, S, B): the far field of the current block, read by `history`
    layout: ChannelLayout = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    pad: int = eqx.field(static=True)
    block: int = eqx.field(static=True)


class Dense(AbstractHistory):
    r"""Exact history with the far field as block matrix products (docs/design.md §3, "Dense").

    Time is cut into blocks of ``B`` steps. The history sum of a step ``n = m + i`` in the block
    starting at ``m`` (``0 ≤ i < B``) splits into a far field, the values before the block, and
    a near field, the earlier values inside the block:

    .. math::  H[m+i] = \underbrace{\sum_{j=1}^{m} w_{i+j}\, x[m-j]}_{\text{far, } y_i}
               + \underbrace{\sum_{j=1}^{i} w_j\, x[m+i-j]}_{\text{near}}.

    When the last value of a block arrives (``push`` at ``n = m − 1`` with ``m`` a multiple of
    ``B``), the far field of the whole next block is computed at once. With the history read
    backwards in rows of ``B``, ``r[q, l] = x[m − 1 − qB − l]``, and the weights in overlapping
    rows ``u[q, s] = w_{qB+s+1}``, ``y_i = Σ_l Z[i+l, l]`` where ``Z = uᵀ r`` contracts over
    the ``q`` rows: one matrix product per order, over all the channels that share it (work
    2·B·M per channel for ``M`` history values, instead of one memory-bound dot product per
    step). ``M`` is the smallest
    ``B·2^k ≥ m``: the (unbatched) step counter selects the branch of that static size (see
    `_switch_in_place`), so the far field costs O(C·N²) flops in all, at matrix-product speed,
    and stays a real branch under `jax.vmap`. ``y`` goes into a pending buffer; ``history``
    reads ``H[n] = y_{n−m} + near``, the near field being a masked dot product of length ``B``.
    Exact to round-off for any kernel.

    The state holds every value (O(C·N) memory). Reverse mode is O(C·N) in all for fixed
    orders, but stores O(C·N) per step, O(C·N²) in all, when the orders α are
    differentiated: `SOE` is the gradient path for long runs.

    **Arguments**: ``block`` = B, a power of two in [4, 4096] (default 64).
    """

    block: int = eqx.field(static=True, default=64)

    def __check_init__(self):
        _check_power_of_two("Dense", "block", self.block, 4, 4096)

    def init(self, kernel, orders, steps, classes=None):
        orders, layout = channel_layout(orders, classes)
        block = self.block
        pad = _padded_length(block, steps)
        weights = kernel.weights(orders, pad + block)  # (U, P + B + 1)
        rows = np.arange(pad // block)[:, None] * block + np.arange(2 * block - 1)[None, :] + 1
        return _DenseState(
            near_w=weights[:, 1 : block + 1],
            hankel=weights[:, rows],
            buffer=_zeros(layout, 2 * pad + 1, weights.dtype),
            pending=_zeros(layout, pad, weights.dtype),
            far=_zeros(layout, block, weights.dtype),
            layout=layout,
            steps=int(steps),
            pad=pad,
            block=block,
        )

    def history(self, state, n):
        near = _near_sum(state.near_w, state.buffer, state.pad, n, state.block)
        return state.layout.ungroup(_read_far(state.far, n) + near)

    def push(self, state, n, x):
        pad, block, layout = state.pad, state.block, state.layout
        buffer = _push_value(state.buffer, layout, pad, n, x)
        m = n + 1  # values x[0 … m−1] are known
        sizes = [block << k for k in range(int(math.log2(pad // block)) + 1)]  # up to P
        size_class = sum((m > s).astype(jnp.int32) for s in sizes[:-1])
        due = (m % block == 0) & (m <= state.steps)
        index = jnp.where(due, 1 + size_class, 0)
        i = np.arange(block)[:, None]
        l_ = np.arange(block)[None, :]

        def far_field(size, pending, m, buffer, hankel):
            rows = size // block
            r = _newest(buffer, pad, m, size).reshape(buffer.shape[:2] + (rows, block))
            # One product per order u over all its channels c: (2B−1, rows) @ (rows, S·B).
            z = jnp.einsum(
                "uqs,ucql->ucsl", hankel[:, :rows], r, precision=jax.lax.Precision.HIGHEST
            )
            y = jnp.sum(z[..., i + l_, l_], axis=-1)  # y_i = Σ_l Z[i+l, l]
            return jax.lax.dynamic_update_slice_in_dim(pending, y, m, axis=-1)

        branches = tuple(functools.partial(far_field, size) for size in sizes)
        pending = _switch_in_place(branches, index, state.pending, (m, buffer, state.hankel))
        far = _next_far(pending, state.far, m)
        return eqx.tree_at(
            lambda st: (st.buffer, st.pending, st.far), state, (buffer, pending, far)
        )


class _HLSState(eqx.Module):
    near_w: Array  # (U, L): w_1 … w_L
    spectra: tuple[Array, ...]  # level k: rfft of [0, w_1, …, w_{2b−1}], b = L·2^k, (U, b+1)
    buffer: Array  # (U, S, 2P+1): x[m] at column P − m
    pending: Array  # (U, S, P): far-field parts of H[n] computed so far
    far: Array  # (U, S, L): the complete far field of the current leaf, read by `history`
    layout: ChannelLayout = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    pad: int = eqx.field(static=True)
    leaf: int = eqx.field(static=True)


class HLS(AbstractHistory):
    r"""Exact history by block-triangular FFT convolution (Hairer, Lubich & Schlichte 1985).

    The strictly lower triangle of the Toeplitz matrix ``T[n, m'] = w_{n−m'}`` on
    ``[0, P)`` (``P = L·2^K ≥ N + 1``) is split recursively: a block of size ``2b`` is its two
    halves plus the ``b × b`` square that maps the values of the first half to the steps of the
    second; recursion stops at leaves of ``L`` steps. Each pair ``(n, m')`` with ``m' < n``
    belongs either to exactly one square or to the lower triangle of one leaf.

    Run online: when the value ``x[m−1]`` arrives and ``m`` is a multiple of ``L``, let
    ``b = L·2^k`` with ``2^k`` the largest power of two dividing ``m/L``; the values
    ``x[m−b … m−1]`` form a first half whose square is now computable,

    .. math::  y_i = \sum_{j=0}^{b-1} w_{b+i-j}\, x[m-b+j], \qquad 0 \le i < b,

    and ``y_i`` is added to the pending far field of step ``m + i``. ``y`` is a slice of a
    linear convolution with ``[0, w_1, …, w_{2b−1}]``; a circular FFT convolution of the
    power-of-two size ``2b`` gives those outputs without aliasing. The weight spectra of every
    level are computed once, in ``init``. The history sum is then
    ``H[n] = pending[n] + Σ_{j=1}^{n mod L} w_j x[n−j]`` (the near field of n's leaf). The
    (unbatched) step counter selects the level (see `_switch_in_place`), so each branch has
    static shapes and stays a real branch under `jax.vmap`. Work: O(C·L) per step for the near
    field plus O(C·N log² N) in all for the FFTs. Exact to round-off for any kernel.

    The state holds every value (O(C·N) memory). Reverse mode is O(C·N) in all for fixed
    orders, but stores O(C·N) per step, O(C·N²) in all, when the orders α are
    differentiated: `SOE` is the gradient path for long runs.

    **Arguments**: ``leaf`` = L, a power of two in [16, 256] (default 32).

    **Reference**: E. Hairer, C. Lubich, M. Schlichte, "Fast numerical solution of nonlinear
    Volterra convolution equations", SIAM J. Sci. Stat. Comput. 6 (1985) 532–541.
    """

    leaf: int = eqx.field(static=True, default=32)

    def __check_init__(self):
        _check_power_of_two("HLS", "leaf", self.leaf, 16, 256)

    def init(self, kernel, orders, steps, classes=None):
        orders, layout = channel_layout(orders, classes)
        leaf = self.leaf
        pad = _padded_length(leaf, steps)
        weights = kernel.weights(orders, pad)  # (U, P + 1)
        spectra = []
        b = leaf
        while b < pad:
            segment = weights[:, : 2 * b].at[:, 0].set(0.0)
            spectra.append(jnp.fft.rfft(segment, axis=1))
            b *= 2
        return _HLSState(
            near_w=weights[:, 1 : leaf + 1],
            spectra=tuple(spectra),
            buffer=_zeros(layout, 2 * pad + 1, weights.dtype),
            pending=_zeros(layout, pad, weights.dtype),
            far=_zeros(layout, leaf, weights.dtype),
            layout=layout,
            steps=int(steps),
            pad=pad,
            leaf=leaf,
        )

    def history(self, state, n):
        near = _near_sum(state.near_w, state.buffer, state.pad, n, state.leaf)
        return state.layout.ungroup(_read_far(state.far, n) + near)

    def push(self, state, n, x):
        pad, leaf = state.pad, state.leaf
        buffer = _push_value(state.buffer, state.layout, pad, n, x)
        m = n + 1  # values x[0 … m−1] are known
        levels = len(state.spectra)
        # 1 + (trailing zeros of m/L) when m is a multiple of L; 0 otherwise (nothing to do).
        level = sum((m % (leaf << k) == 0).astype(jnp.int32) for k in range(levels))
        index = jnp.where(m <= state.steps, level, 0)

        def square(k, pending, m, buffer, spectra):
            b = leaf << k
            first_half = jnp.flip(_newest(buffer, pad, m, b), axis=-1)  # x[m−b], …, x[m−1]
            spectrum = jnp.fft.rfft(first_half, 2 * b, axis=-1) * spectra[k][:, None]
            y = jnp.fft.irfft(spectrum, 2 * b, axis=-1)[..., b:].astype(pending.dtype)
            old = jax.lax.dynamic_slice_in_dim(pending, m, b, axis=-1)
            return jax.lax.dynamic_update_slice_in_dim(pending, old + y, m, axis=-1)

        if levels == 0:  # the whole run fits in one leaf: near field only (far stays 0)
            return eqx.tree_at(lambda st: st.buffer, state, buffer)
        branches = tuple(functools.partial(square, k) for k in range(levels))
        pending = _switch_in_place(branches, index, state.pending, (m, buffer, state.spectra))
        far = _next_far(pending, state.far, m)
        return eqx.tree_at(
            lambda st: (st.buffer, st.pending, st.far), state, (buffer, pending, far)
        )
