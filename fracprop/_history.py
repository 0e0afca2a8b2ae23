r"""History backends: the far part of every fractional convolution.

At step ``n`` an implicit stepper needs, for each channel ``c`` with operator order ``a_c``, the
*history sum*

.. math::  H_c[n] = \sum_{k=1}^{n} w^{(a_c)}_{k}\, x_c[n-k],

i.e. everything except the current-step term ``w_0 x_c[n]``, which goes into the Newton solve.
A backend is an explicit state machine: ``init`` builds the state from the kernel and the
channel orders, ``history`` reads ``H[n]``, and ``push`` appends ``x[n]`` once step ``n`` has
converged. `lax.scan` drives it. Values before the first push are zero.

| backend | exact? | work per step (amortised) | state (carried by the scan) |
|---|---|---|---|
| `Exact()` | to round-off | O(C·N), memory-bound dot products | O(C·N) |
| `Dense(block)` | to round-off | O(C·N) as batched matmuls, O(C·B) near field | O(C·N) |
| `HLS(leaf)` | to round-off | O(C·log² N) by FFTs, O(C·L) near field | O(C·N) |
| `SOE(tol)` | to ``tol`` (relative, on the weights) | O(C·(K + L)) | O(C·(K + L)) |

``SOE`` keeps the last ``L`` values exactly and represents the far weights ``w_j, j > L`` as a
sum of exponentials ``Σ_k c_k s_k^j``; its scan carry does not grow with N, so reverse-mode
memory grows like N (one carry per step) instead of N². ``Exact``, ``Dense`` and ``HLS`` carry
the full value buffer. Their reverse mode is O(C·N) in all when the orders are fixed (the
usual case, conductance gradients). When the orders α are differentiated, it stores the
value window at every step, O(C·N²) in all. Measured by ``benchmarks/grad_memory.py`` at
N = 512 … 2048, the log–log slopes of temporary memory are: conductances 1.00 (Exact),
0.67 (Dense), 1.00 (HLS), 0.96 (SOE); with α 1.97, 1.96, 1.98 and 1.00 (SOE).

**Channels that share an order share its weights.** ``init`` takes the distinct orders
(shape ``(U,)``) and, optionally, ``classes``: for each of the ``C`` channels the index of its
order. The weights (and Hankel rows, spectra or exponential modes) are then computed and stored
once per order, O(U·N) instead of O(C·N), and every operation runs on the channels as a
``(U, S)`` array, the ``S`` channels of each order together: `Dense`'s far field becomes one
matrix product per order, over all its channels at once. This needs equal class sizes; with
unequal ones the weights are gathered per channel (``S = 1``), as without ``classes``.

`resolve_history` turns the ``history=`` keyword of `simulate` and `LearningProblem` (a string
or an instance) into a backend.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array
from ._kernels import AbstractKernel


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


# ------------------------------------------------------------------- value buffers


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
    near_w: Array  # (U, L): w_1 … w_L
    c: Array  # (U, K)
    s: Array  # (K,)
    s_pow: Array  # (K,): s^L
    recent: Array  # (U, S, L): x[n−1], …, x[n−L]
    far: Array  # (U, S, K): Σ_{j>L} s_k^j x[n−j]
    layout: ChannelLayout = eqx.field(static=True)


class SOE(AbstractHistory):
    r"""Exact near field plus a sum of exponentials for the far field (DESIGN §2).

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


# --------------------------------------------------------------- exact blocked backends


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
    r"""Exact history with the far field as block matrix products (DESIGN §2, "dense").

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


# ---------------------------------------------------------------------------- selection

#: Above this many steps, ``history="auto"`` uses `SOE` (`GL`, `FBDF2`) or `HLS` (other kernels).
AUTO_SOE_STEPS = 1024

HISTORY_CHOICES = ("auto", "exact", "dense", "hls", "soe")


def _has_gl_taps(kernel: AbstractKernel) -> bool:
    """Whether ``kernel`` defines `AbstractKernel.gl_taps`, which `SOE` needs."""
    try:
        kernel.gl_taps(np.zeros(()))
    except NotImplementedError:
        return False
    return True


def resolve_history(
    history: AbstractHistory | str, kernel: AbstractKernel, steps: int
) -> AbstractHistory:
    """The backend named by a ``history=`` argument (an instance is returned unchanged).

    ``"exact"``, ``"dense"``, ``"hls"`` and ``"soe"`` give `Exact()`, `Dense()`, `HLS()` and
    `SOE()` with default settings. ``"auto"`` gives `Exact()` up to ``AUTO_SOE_STEPS`` (1024)
    steps; beyond, `SOE()` for a kernel with `AbstractKernel.gl_taps` (`GL`, `FBDF2`) and
    `HLS()` for any other kernel (HLS is exact for any kernel). Up to 1024 steps the exact
    convolution costs at most a few times SOE's O(K + L) ≈ 235 terms per step, and its
    reverse-mode memory (O(C·N²) when the orders are differentiated) is still small. Beyond,
    SOE keeps the work per step and the gradient memory per step independent of N, at a
    relative error of about 1e-12 on the far weights; HLS keeps the work per step O(log² N)
    and conductance gradients O(C·N) in all. Measured with ``benchmarks/history.py`` on the
    benchmark network (128 channels of 2 orders, 2-core CPU, commit b3a0334): Exact / SOE /
    HLS 0.43 / 0.33 / 0.25 s at N = 1024, 0.89 / 0.47 / 0.56 s at N = 2048, 2.0 / 0.89 /
    0.92 s at N = 4096, 30 / 3.9 / 3.1 s at N = 16384.

    **Raises** `TypeError` if ``history`` is neither a string nor an `AbstractHistory`;
    `ValueError` for an unknown name.
    """
    if isinstance(history, AbstractHistory):
        return history
    choices = ", ".join(repr(c) for c in HISTORY_CHOICES)
    if not isinstance(history, str):
        raise TypeError(
            f"history={history!r} must be one of {choices} or an AbstractHistory instance "
            f"(Exact(), Dense(), HLS(), SOE()); got {type(history).__name__}"
        )
    name = history.lower()
    if name == "auto":
        if steps <= AUTO_SOE_STEPS:
            return Exact()
        return SOE() if _has_gl_taps(kernel) else HLS()
    named = {"exact": Exact, "dense": Dense, "hls": HLS, "soe": SOE}
    if name not in named:
        raise ValueError(
            f"history={history!r} is not a history backend; choose one of {choices} "
            "or pass an AbstractHistory instance"
        )
    return named[name]()
