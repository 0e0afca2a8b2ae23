"""Integer-order elements with memory: capacitors and inductors, stepped by a linear
multistep method (`StepSetup.method`: trapezoidal, Gear-2 or backward Euler;
`fracprop._circuit.integration`)."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array
from ..integration import AbstractMultistep
from ..laws import AbstractLaw
from .base import AbstractBranchGroup, StepSetup, branch_group


def _row(table: np.ndarray, setup: StepSetup, n: Array, dtype) -> Array:
    """Row ``min(n, rows) − 1`` of ``table`` (``a^{(n)}`` or ``b^{(n)}``), zero unless
    ``1 ≤ n ≤ steps``.

    The start rows serve the first steps, the last row every step after them. Steps beyond
    the run (``n > steps``, met by the replay) have no equation, so their weights are zero.
    """
    row = jnp.clip(n, 1, table.shape[0]) - 1
    w = jnp.asarray(table, dtype)[row]
    return jnp.where((n >= 1) & (n <= setup.steps), w, jnp.zeros_like(w))


def _weights(setup: StepSetup, n: Array, dtype) -> tuple[Array, Array]:
    """``a^{(n)}_0 … a^{(n)}_{p_a}`` and ``b^{(n)}_0 … b^{(n)}_{p_b}`` at forward step ``n``;
    on a variable grid (``setup.ratio`` given) the ``a`` row of the steps after the first is
    the method's `variable_a` for that step ratio."""
    a, b = setup.method.tables()
    a_row, b_row = _row(a, setup, n, dtype), _row(b, setup, n, dtype)
    if setup.ratio is not None:
        variable = jnp.asarray(setup.method.variable_a(setup.ratio), dtype)
        a_row = jnp.where(n >= a.shape[0], variable, a_row)
    return a_row, b_row


def _adjoint_weights(setup: StepSetup, tau: Array, dtype) -> tuple[Array, Array, Array]:
    """For reversed step ``tau`` (forward ``n = N − tau``): ``a^{(n)}_0`` and the lagged
    weights ``a^{(n+k)}_k``, ``b^{(n+k)}_k``, ``k = 1 … p`` (``p = max(p_a, p_b)``, zero
    beyond a row's width), which couple step ``n`` to the steps after it."""
    n = setup.steps - tau
    a, b = setup.method.tables()
    p = _adjoint_lag(setup.method)
    a = np.pad(a, ((0, 0), (0, p + 1 - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, p + 1 - b.shape[1])))
    a0 = _row(a, setup, n, dtype)[0]
    a_lag = jnp.stack([_row(a, setup, n + k, dtype)[k] for k in range(1, p + 1)])
    b_lag = jnp.stack([_row(b, setup, n + k, dtype)[k] for k in range(1, p + 1)])
    return a0, a_lag, b_lag


def _adjoint_lag(method: AbstractMultistep) -> int:
    return max(method.a_lag, method.b_lag)


def multistep_rate(x: Array, method: AbstractMultistep, dt: Array) -> Array:
    """``dx/dt`` at every grid point by the multistep ``method``, along the last axis.

    ``r[n] = (Σ_k a^{(n)}_k x[n−k]) / h − Σ_{k≥1} b^{(n)}_k r[n−k]`` for ``n ≥ 1`` and
    ``r[0] = 0`` (values before ``t = 0`` never enter: the start is one-step): the current a
    capacitor of 1 F would draw with the voltage ``x`` across it, as `Capacitors` steps it
    from zero current.
    """
    a, b = method.tables()
    steps = x.shape[-1] - 1
    n = np.arange(steps + 1)
    rows = a[np.clip(n, 1, a.shape[0]) - 1]  # (N+1, p_a+1)
    rows[0] = 0.0
    out = jnp.zeros_like(x)
    for k in range(a.shape[1]):
        lagged = jnp.concatenate([jnp.broadcast_to(x[..., :1], x.shape[:-1] + (k,)), x], -1)
        out = out + jnp.asarray(rows[:, k], x.dtype) * lagged[..., : steps + 1]
    out = out / dt
    p = method.b_lag
    if p == 0:
        return out
    # The past rates enter through the lower-triangular b rows: forward substitution.
    b_rows = jnp.asarray(b[np.clip(n, 1, b.shape[0]) - 1, 1:], x.dtype)  # (N+1, p_b)

    def step(past, inputs):
        rhs, lag = inputs
        r = rhs - jnp.tensordot(lag, past, axes=1)
        return _shift_in(past, r), r

    past = jnp.zeros((p,) + x.shape[:-1], x.dtype)
    _, rates = jax.lax.scan(step, past, (jnp.moveaxis(out[..., 1:], -1, 0), b_rows[1:]))
    return jnp.concatenate([jnp.zeros_like(out[..., :1]), jnp.moveaxis(rates, 0, -1)], -1)


def _shift_in(past: Array, x: Array) -> Array:
    """Past values ``(x[n−1], …, x[n−p])`` along axis 0, after ``x[n]`` arrives."""
    if past.shape[0] == 0:
        return past
    return jnp.concatenate([x[None], past[:-1]], axis=0)


@branch_group
class Capacitors(AbstractBranchGroup):
    r"""Nonlinear capacitors ``q = C s(v)``, ``i = dq/dt`` by the multistep method
    `StepSetup.method`.

    ``Σ_{k=0}^{p} a^{(n)}_k q_{n−k} = h Σ_{k=0}^{p} b^{(n)}_k i_{n−k}`` (``b_0 = 1``), solved
    for ``i_n``: backward Euler ``i_n = (q_n − q_{n−1})/h``; the trapezoidal rule
    ``i_n = 2 (q_n − q_{n−1})/h − i_{n−1}``; Gear-2 ``i_n = ((3/2) q_n − 2 q_{n−1} +
    (1/2) q_{n−2})/h``. Every method's first step is backward Euler, so charges and currents
    before ``t = 0`` never enter. The state holds the past charges and, for the trapezoidal
    rule, the past currents.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    c: Array
    law: AbstractLaw
    letter: ClassVar[str] = "C"
    parameters: ClassVar[tuple[str, ...]] = ("c",)
    primary: ClassVar[str] = "c"
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "open"

    def charge(self, v):
        return self.c * self.law(v)

    def init(self, v0, i0, setup):
        # Past charges q_{n−1}, …, q_{n−p_a} and currents i_{n−1}, …, i_{n−p_b}. Before t = 0
        # they equal q_0 and 0 (a capacitor carries no current at DC or at rest); the first
        # step is backward Euler, so they are never used.
        method = setup.method
        q = jnp.broadcast_to(self.charge(v0), (method.a_lag,) + v0.shape)
        i = jnp.zeros((method.b_lag,) + v0.shape, v0.dtype)
        return q, i

    def prepare(self, state, n, setup):
        q, i = state
        a, b = _weights(setup, n, q.dtype)
        return a[0], jnp.tensordot(a[1:], q, axes=1), jnp.tensordot(b[1:], i, axes=1)

    def current(self, v, pre, setup):
        a0, q_past, i_past = pre
        return (a0 * self.charge(v) + q_past) / setup.dt - i_past

    def advance(self, state, v, pre, n, setup):
        q, i = state
        return _shift_in(q, self.charge(v)), _shift_in(i, self.current(v, pre, setup))

    # Adjoint. Over steps 1 … N the method reads S i = h⁻¹ (R q + r₀), with R and S lower
    # triangular, R[m, m−k] = a^{(m)}_k and S[m, m−k] = b^{(m)}_k (unit diagonal), and r₀
    # from the fixed q_0. So i = h⁻¹ S⁻¹ R q(v), ∂i/∂v = h⁻¹ S⁻¹ R diag(q'(v)), and
    #   ι = (∂i/∂v)ᵀ μ = h⁻¹ diag(q'(v)) Rᵀ ν,   Sᵀ ν = μ.
    # Sᵀ is upper triangular: ν is a back substitution in reversed time,
    #   ν[n] = μ[n] − Σ_{k≥1} b^{(n+k)}_k ν[n+k],
    # and ι[n] = (q'(v_n)/h) Σ_{k≥0} a^{(n+k)}_k ν[n+k]
    #          = g[n] (μ[n] + P[n]),  P[n] = Σ_{k≥1} (a^{(n+k)}_k / a^{(n)}_0 − b^{(n+k)}_k) ν[n+k],
    # with g[n] = a^{(n)}_0 q'(v_n)/h the recorded incremental conductance. The state holds
    # ν[n+1], …, ν[n+p]. (Backward Euler and Gear-2 have S = I, so ν = μ.)
    def adjoint_init(self, setup):
        return jnp.zeros((_adjoint_lag(setup.method), len(self.names)), setup.dt.dtype)

    def adjoint_prepare(self, state, tau, setup):
        a0, a_lag, b_lag = _adjoint_weights(setup, tau, state.dtype)
        nu_part = -jnp.tensordot(b_lag, state, axes=1)
        return jnp.tensordot(a_lag, state, axes=1) / a0 + nu_part, nu_part

    def adjoint_current(self, mu, g, pre, setup):
        return g * (mu + pre[0])

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return _shift_in(state, mu + pre[1])

    def row(self, k):
        return f"C={float(self.c[k]):.6g} F law={self.law.describe(k)}"


@branch_group
class Inductors(AbstractBranchGroup):
    r"""Nonlinear inductors ``i = s(Φ)/L``, ``dΦ/dt = v`` by the multistep method
    `StepSetup.method`.

    ``Σ_{k=0}^{p} a^{(n)}_k Φ_{n−k} = h Σ_{k=0}^{p} b^{(n)}_k v_{n−k}`` (``b_0 = 1``), solved
    for ``Φ_n``: backward Euler ``Φ_n = Φ_{n−1} + h v_n``; the trapezoidal rule
    ``Φ_n = Φ_{n−1} + (h/2)(v_n + v_{n−1})``; Gear-2 after one backward-Euler step. At the DC
    operating point an inductor is a short whose current is an MNA unknown; the initial flux
    is ``Φ_0 = s⁻¹(L i_0)``. The state holds the past fluxes and, for the trapezoidal rule,
    the past voltages.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    l: Array
    law: AbstractLaw
    letter: ClassVar[str] = "L"
    parameters: ClassVar[tuple[str, ...]] = ("l",)
    primary: ClassVar[str] = "l"
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "short"

    def init(self, v0, i0, setup):
        # Past fluxes Φ_{n−1}, …, Φ_{n−p_a} and voltages v_{n−1}, …, v_{n−p_b}; before t = 0
        # they equal Φ_0 and v_0 (and are never used: the first step is backward Euler).
        method = setup.method
        phi0 = jnp.zeros_like(v0) if i0 is None else self.law.inverse(self.l * i0)
        phi = jnp.broadcast_to(phi0, (method.a_lag,) + v0.shape)
        v = jnp.broadcast_to(v0, (method.b_lag,) + v0.shape)
        return phi, v

    def prepare(self, state, n, setup):
        phi, v = state
        a, b = _weights(setup, n, phi.dtype)
        return a[0], jnp.tensordot(a[1:], phi, axes=1), jnp.tensordot(b[1:], v, axes=1)

    def _flux(self, v, pre, setup):
        a0, phi_past, v_past = pre
        return (setup.dt * (v + v_past) - phi_past) / a0

    def current(self, v, pre, setup):
        return self.law(self._flux(v, pre, setup)) / self.l

    def advance(self, state, v, pre, n, setup):
        phi, vs = state
        return _shift_in(phi, self._flux(v, pre, setup)), _shift_in(vs, v)

    # Adjoint. Over steps 1 … N the method reads R Φ = h S v + r₀ (R, S as for `Capacitors`,
    # r₀ from the fixed Φ_0), and i = s(Φ)/L. So ∂i/∂v = diag(s'(Φ)/L) h R⁻¹ S and
    #   ι = (∂i/∂v)ᵀ μ = Sᵀ σ,   Rᵀ σ = h diag(s'(Φ)/L) μ:
    # a back substitution in reversed time followed by a banded product,
    #   σ[n] = g[n] μ[n] − Σ_{k≥1} a^{(n+k)}_k σ[n+k] / a^{(n)}_0,
    #   ι[n] = σ[n] + Σ_{k≥1} b^{(n+k)}_k σ[n+k],
    # with g[n] = h s'(Φ_n)/(L a^{(n)}_0) the recorded incremental conductance. The state
    # holds σ[n+1], …, σ[n+p]. (Backward Euler: ι[n] = σ[n] = g[n] μ[n] + ι[n+1], the
    # running sum.)
    def adjoint_init(self, setup):
        return jnp.zeros((_adjoint_lag(setup.method), len(self.names)), setup.dt.dtype)

    def adjoint_prepare(self, state, tau, setup):
        a0, a_lag, b_lag = _adjoint_weights(setup, tau, state.dtype)
        sigma_part = -jnp.tensordot(a_lag, state, axes=1) / a0
        return sigma_part + jnp.tensordot(b_lag, state, axes=1), sigma_part

    def adjoint_current(self, mu, g, pre, setup):
        return g * mu + pre[0]

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return _shift_in(state, g * mu + pre[1])

    def row(self, k):
        return f"L={float(self.l[k]):.6g} H law={self.law.describe(k)}"
