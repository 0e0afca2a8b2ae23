"""Fractional-order elements: memristors and constant-phase elements, whose memory is a
convolution held by a history backend; and the classes of equal order that share weights."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array
from ..laws import AbstractLaw
from .base import AbstractBranchGroup, branch_group


class _FracState(eqx.Module):
    hist: Any
    extra: Array
    #: The channel values ``x_1 … x_m`` of the start block, shape ``(m, channels)`` (``m = 0``
    #: without starting weights).
    start: Array


def _start_table(group, setup):
    """The group's `StartTable` in ``setup``, or ``None``."""
    return setup.starting.get(group.letter) if setup.starting else None


def _empty_start(group, setup, channels: int, dtype) -> Array:
    table = _start_table(group, setup)
    return jnp.zeros((0 if table is None else table.size, channels), dtype)


def _start_correction(group, setup, start: Array, n: Array) -> Array:
    """``Σ_j s_{n,j} x_j`` for every channel (Lubich's correction; zero without a table)."""
    table = _start_table(group, setup)
    if table is None:
        return jnp.zeros(start.shape[1:], start.dtype)
    return jnp.einsum("cj,jc->c", table.rows(n).astype(start.dtype), start)


def _block_operator(setup, orders: Array, rows: Array) -> Array:
    r"""The corrected convolution on the start block, per channel: ``L[c, n, k] =
    w^{(a_c)}_{n−k} [k ≤ n] + s^{(c)}_{n,k}`` for ``n, k = 1 … m`` (``rows`` the starting
    weights of the block, shape ``(channels, m, m)``). Rest before ``t = 0``: ``x_0 = 0``."""
    m = rows.shape[-1]
    w = setup.kernel.weights(orders, m).astype(rows.dtype)  # (channels, m + 1)
    n = np.arange(m)
    lag = n[:, None] - n[None, :]
    toeplitz = jnp.where(lag >= 0, w[:, np.maximum(lag, 0)], 0.0)
    return toeplitz + rows


def _apply_block(operator: Array, x: Array) -> Array:
    """``(L x)[n, c] = Σ_k L[c, n, k] x[k, c]``."""
    return jnp.einsum("cnk,kc->nc", operator, x)


class _AdjState(eqx.Module):
    """Replay state of a fractional group: the history of its adjoint channels and, with
    starting weights, ``acc[j − 1] = Σ_n s_{n,j} p_n`` over the replayed steps ``n`` (``p``
    the values pushed), the adjoint of the starting terms."""

    hist: Any
    acc: Array
    #: False once the sums are complete (`adjoint_with_sums_of`): then pushes leave them be.
    accumulate: bool = eqx.field(static=True, default=True)


def _adjoint_state(group, setup, channels: int) -> _AdjState:
    return _AdjState(
        hist=group._init_history(setup),
        acc=_empty_start(group, setup, channels, setup.dt.dtype),
    )


def _with_start_of(group, state: _FracState, final: _FracState) -> _FracState:
    """`AbstractBranchGroup.with_start_of` of the fractional groups."""
    return _FracState(hist=state.hist, extra=state.extra, start=final.start)


def _adjoint_with_sums_of(group, state: _AdjState, final: _AdjState) -> _AdjState:
    """`AbstractBranchGroup.adjoint_with_sums_of` of the fractional groups."""
    return _AdjState(hist=state.hist, acc=final.acc, accumulate=False)


def _adjoint_history(group, setup, state: _AdjState, tau: Array) -> Array:
    """The replay's history term at reversed step ``tau``, plus, at the steps ``n ≤ m`` of the
    start block, the accumulated adjoint of the starting terms."""
    h = setup.history.history(state.hist, tau)
    table = _start_table(group, setup)
    if table is None:
        return h
    n = setup.steps - tau
    row = jax.lax.dynamic_index_in_dim(state.acc, jnp.clip(n - 1, 0, table.size - 1), 0, False)
    return h + jnp.where(n <= table.size, row, jnp.zeros_like(row))


def _adjoint_push(group, setup, state: _AdjState, tau: Array, pushed: Array) -> _AdjState:
    hist = setup.history.push(state.hist, tau, pushed)
    table = _start_table(group, setup)
    if table is None or not state.accumulate:
        return _AdjState(hist=hist, acc=state.acc, accumulate=state.accumulate)
    rows = table.rows(setup.steps - tau).astype(pushed.dtype)  # (channels, m)
    return _AdjState(hist=hist, acc=state.acc + rows.T * pushed[None, :])


def _push_block(setup, hist, values: Array):
    """``hist`` after steps ``1 … m`` recorded ``values[0] … values[m − 1]`` (one `lax.scan`,
    so that tracing does not grow with ``m``)."""

    def push(hist, step_value):
        n, value = step_value
        return setup.history.push(hist, n, value), None

    steps = jnp.arange(1, values.shape[0] + 1)
    hist, _ = jax.lax.scan(push, hist, (steps, values))
    return hist


def order_classes_of(values) -> tuple[int, ...]:
    """The class of every entry of ``values``, classes numbered by first occurrence."""
    values = np.asarray(values).reshape(-1)
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return tuple(int(r) for r in rank[inverse.reshape(-1)])


def _representatives(classes: tuple[int, ...]) -> np.ndarray:
    """The first element of each class, in class order."""
    index = np.asarray(classes)
    return np.asarray([int(np.flatnonzero(index == u)[0]) for u in range(index.max() + 1)])


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _fixed_orders(alpha: Array, names: tuple[str, ...]) -> Array:
    """``alpha`` unchanged; raises if it is differentiated (its weights are shared)."""
    return alpha


def _fixed_orders_jvp(names, primals, tangents):
    (alpha,), (d_alpha,) = primals, tangents
    if not isinstance(d_alpha, jax.custom_derivatives.SymbolicZero):
        raise ValueError(
            f"the orders alpha of {', '.join(names)} are shared (equal values use one set of "
            "convolution weights), which gives no derivative per element. To differentiate "
            "alpha, call circuit.share_orders(False) before simulating, or list the alpha in "
            "LearningProblem(trainable=...), which keeps trained orders per element"
        )
    return alpha, d_alpha


_fixed_orders.defjvp(_fixed_orders_jvp, symbolic_zeros=True)


def distinct_orders(group) -> tuple[Array, tuple[int, ...] | None]:
    """``(orders, classes)`` of a fractional group's elements for `AbstractHistory.init`:
    its α per element and ``None``, or, with ``order_classes``, the α of each class."""
    if group.order_classes is None:
        return group.alpha, None
    alpha = _fixed_orders(group.alpha, group.names)
    return alpha[_representatives(group.order_classes)], group.order_classes


def shared_order_mismatch(group) -> Array:
    """True when some element's α differs from the α its class shares."""
    classes = group.order_classes
    alpha = jax.lax.stop_gradient(group.alpha)
    return jnp.any(alpha != alpha[_representatives(classes)][np.asarray(classes)])


def _checked_orders(group):
    """``group`` with run-time checks of its orders: each α in (0, 1], and, where classes of
    equal order were recorded (`Circuit.share_orders`), α still equal within each class."""
    group = eqx.error_if(
        group,
        jnp.any((group.alpha <= 0) | (group.alpha > 1)),
        f"alpha of the {group.kind} ({', '.join(group.names)}) must lie in (0, 1]",
    )
    if group.order_classes is not None:
        group = eqx.error_if(
            group,
            shared_order_mismatch(group),
            f"alpha of the {group.kind} ({', '.join(group.names)}) changed after "
            "Circuit.share_orders() recorded which of them are equal; call "
            "share_orders() again on the changed circuit, or share_orders(False)",
        )
    return group


@branch_group
class Memristors(AbstractBranchGroup):
    r"""Ψ-controlled fractional memristors of order α ∈ (0, 1] (docs/design.md §1).

    The law of Kendall (2021), eqs. 12–15, for any order α.

    ``i = ᶜD^{1−α}[r̂(Ψ)]`` with ``Ψ = I^{1−α} v`` and ``r̂(Ψ) = g s(Ψ)``. Each memristor owns
    two history channels: ``v`` (for ``I^{1−α}``) and ``r̂(Ψ) − r̂(0)`` (for ``D^{1−α}``). With
    a linear law the two Grünwald–Letnikov convolutions are inverses, so the element is exactly
    a resistor of conductance ``g``. With α = 1 it is the nonlinear resistor ``i = g s(v)``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    g: Array
    alpha: Array
    law: AbstractLaw
    order_classes: tuple[int, ...] | None = eqx.field(static=True, default=None)
    letter: ClassVar[str] = "M"
    parameters: ClassVar[tuple[str, ...]] = ("g", "alpha")
    primary: ClassVar[str] = "g"
    fractional: ClassVar[bool] = True
    dc: ClassVar[str] = "conductor"

    def check(self):
        return _checked_orders(self)

    def _r(self, psi):
        return self.g * self.law(psi)

    def _init_history(self, setup):
        """History of the channels ``v`` (order −(1−α)) and ``r̂ − r̂(0)`` (order 1−α)."""
        alpha, classes = distinct_orders(self)
        a = 1.0 - alpha
        if classes is not None:
            classes = classes + tuple(len(a) + c for c in classes)
        return setup.history.init(setup.kernel, jnp.concatenate([-a, a]), setup.steps, classes)

    def channel_orders(self, alpha):
        """Orders of the channels ``v`` (``−(1−α)``) and ``r̂ − r̂(0)`` (``1−α``)."""
        return np.concatenate([-(1.0 - alpha), 1.0 - alpha])

    def init(self, v0, i0, setup):
        hist = self._init_history(setup)
        r0 = self._r(jnp.zeros_like(v0))
        return _FracState(
            hist=hist, extra=r0, start=_empty_start(self, setup, 2 * len(v0), v0.dtype)
        )

    def prepare(self, state, n, setup):
        h = setup.history.history(state.hist, n)
        return h + _start_correction(self, setup, state.start, n), state.extra

    def _first_weights(self, setup):
        """``w_0`` of ``I^{1−α}`` and of ``D^{1−α}`` (1 and 1 for GL; their product is 1)."""
        a = 1.0 - self.alpha
        return setup.kernel.first_weight(-a), setup.kernel.first_weight(a)

    def _psi(self, v, pre, setup):
        h_all, _ = pre
        m = len(self.names)
        w0_int, _ = self._first_weights(setup)
        return jnp.power(setup.dt, 1.0 - self.alpha) * (w0_int * v + h_all[:m])

    def current(self, v, pre, setup):
        h_all, r0 = pre
        m = len(self.names)
        r = self._r(self._psi(v, pre, setup))
        _, w0_der = self._first_weights(setup)
        return jnp.power(setup.dt, self.alpha - 1.0) * (w0_der * (r - r0) + h_all[m:])

    def advance(self, state, v, pre, n, setup):
        _, r0 = pre
        r = self._r(self._psi(v, pre, setup))
        hist = setup.history.push(state.hist, n, jnp.concatenate([v, r - r0]))
        return _FracState(hist=hist, extra=state.extra, start=state.start)

    def block_currents(self, vb, state, setup):
        """The start block in matrix form: ``Ψ = h^{1−α} L_I v``, ``i = h^{α−1} L_D (r̂(Ψ) −
        r̂(0))`` with the corrected block convolutions `_block_operator` (rest for t ≤ 0)."""
        table = _start_table(self, setup)
        rows = table.block().astype(vb.dtype)
        k = len(self.names)
        beta = 1.0 - self.alpha
        psi = jnp.power(setup.dt, beta) * _apply_block(_block_operator(setup, -beta, rows[:k]), vb)
        rho = self._r(psi) - state.extra
        cur = jnp.power(setup.dt, -beta) * _apply_block(_block_operator(setup, beta, rows[k:]), rho)
        values = jnp.concatenate([vb, rho], axis=1)
        hist = _push_block(setup, state.hist, values)
        return cur, _FracState(hist=hist, extra=state.extra, start=values)

    def dc_current(self, v):
        raise RuntimeError("fractional memristors have no DC operating point; start from rest")

    # Adjoint of i = D^{1−α}[r̂(I^{1−α} v)]: the reverse order I^{1−α} ∘ r̂'(Ψ) ∘ D^{1−α},
    # each convolution read backwards in time (docs/design.md §5). In reversed time τ:
    #   ν[τ] = h^{α−1} (d_0 μ[τ] + Σ_{j≥1} d_j μ[τ−j]),   ζ[τ] = r̂'(Ψ)[τ] ν[τ],
    #   ι[τ] = h^{1−α} (a_0 ζ[τ] + Σ_{j≥1} a_j ζ[τ−j]),
    # with d the D^{1−α} weights, a the I^{1−α} weights and r̂'(Ψ_n) = g[n] / (a_0 d_0), g[n]
    # the recorded incremental conductance ∂i_n/∂v_n = d_0 r̂'(Ψ_n) a_0 (the h powers cancel;
    # a_0 d_0 = 1 for GL and FBDF2, whose weights for ±(1−α) are convolution inverses).
    def adjoint_init(self, setup):
        return _adjoint_state(self, setup, 2 * len(self.names))

    def adjoint_prepare(self, state, tau, setup):
        return _adjoint_history(self, setup, state, tau)

    def _adjoint_parts(self, mu, g, pre, setup):
        m = len(self.names)
        w0_int, w0_der = self._first_weights(setup)
        nu = jnp.power(setup.dt, self.alpha - 1.0) * (w0_der * mu + pre[m:])
        zeta = g / (w0_int * w0_der) * nu
        iota = jnp.power(setup.dt, 1.0 - self.alpha) * (w0_int * zeta + pre[:m])
        return zeta, iota

    def adjoint_current(self, mu, g, pre, setup):
        return self._adjoint_parts(mu, g, pre, setup)[1]

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        zeta, _ = self._adjoint_parts(mu, g, pre, setup)
        return _adjoint_push(self, setup, state, tau, jnp.concatenate([zeta, mu]))

    with_start_of = _with_start_of
    adjoint_with_sums_of = _adjoint_with_sums_of

    def row(self, k):
        return (
            f"g={float(self.g[k]):.6g} S alpha={float(self.alpha[k]):.6g} "
            f"law={self.law.describe(k)}"
        )


@branch_group
class CPEs(AbstractBranchGroup):
    r"""Constant-phase elements (fractional capacitors) ``i = C_α ᶜD^α v``, α ∈ (0, 1].

    Impedance ``1/(C_α s^α)``; α = 1 is a linear capacitor integrated by backward Euler.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    c: Array
    alpha: Array
    order_classes: tuple[int, ...] | None = eqx.field(static=True, default=None)
    letter: ClassVar[str] = "P"
    parameters: ClassVar[tuple[str, ...]] = ("c", "alpha")
    primary: ClassVar[str] = "c"
    fractional: ClassVar[bool] = True
    dc: ClassVar[str] = "open"
    linear: ClassVar[bool] = True

    def check(self):
        return _checked_orders(self)

    def _init_history(self, setup):
        alpha, classes = distinct_orders(self)
        return setup.history.init(setup.kernel, alpha, setup.steps, classes)

    def channel_orders(self, alpha):
        """The order ``α`` of each element's one channel."""
        return alpha

    def init(self, v0, i0, setup):
        start = _empty_start(self, setup, len(v0), v0.dtype)
        return _FracState(hist=self._init_history(setup), extra=v0, start=start)

    def prepare(self, state, n, setup):
        h = setup.history.history(state.hist, n)
        return h + _start_correction(self, setup, state.start, n), state.extra

    def current(self, v, pre, setup):
        h, v0 = pre
        w0 = setup.kernel.first_weight(self.alpha)
        return self.c * jnp.power(setup.dt, -self.alpha) * (w0 * (v - v0) + h)

    def advance(self, state, v, pre, n, setup):
        _, v0 = pre
        hist = setup.history.push(state.hist, n, v - v0)
        return _FracState(hist=hist, extra=state.extra, start=state.start)

    def block_currents(self, vb, state, setup):
        """The start block in matrix form: ``i = C h^{−α} L (v − v_0)`` with the corrected
        block convolution `_block_operator`."""
        rows = _start_table(self, setup).block().astype(vb.dtype)
        z = vb - state.extra
        cur = (
            self.c
            * jnp.power(setup.dt, -self.alpha)
            * _apply_block(_block_operator(setup, self.alpha, rows), z)
        )
        hist = _push_block(setup, state.hist, z)
        return cur, _FracState(hist=hist, extra=state.extra, start=z)

    # Adjoint of i_m = C h^{−α} Σ_k w_k v_{m−k}: the same convolution in reversed time,
    # ι[τ] = C h^{−α} (w_0 μ[τ] + Σ_{j≥1} w_j μ[τ−j]) = g (μ[τ] + Σ_{j≥1} w_j μ[τ−j] / w_0)
    # with g = C h^{−α} w_0 = ∂i_n/∂v_n recorded.
    def adjoint_init(self, setup):
        return _adjoint_state(self, setup, len(self.names))

    def adjoint_prepare(self, state, tau, setup):
        return _adjoint_history(self, setup, state, tau)

    def adjoint_current(self, mu, g, pre, setup):
        return g * (mu + pre / setup.kernel.first_weight(self.alpha))

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return _adjoint_push(self, setup, state, tau, mu)

    with_start_of = _with_start_of
    adjoint_with_sums_of = _adjoint_with_sums_of

    def row(self, k):
        return f"C_alpha={float(self.c[k]):.6g} alpha={float(self.alpha[k]):.6g}"
