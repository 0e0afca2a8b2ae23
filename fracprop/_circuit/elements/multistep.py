"""Integer-order elements with memory: capacitors and inductors, stepped by the kernel's
multistep weights (`AbstractKernel.integer_weights`)."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array
from ..._fractional.kernels import AbstractKernel
from ..laws import AbstractLaw
from .base import AbstractBranchGroup, StepSetup, branch_group


def _multistep_table(kernel: AbstractKernel) -> np.ndarray:
    """The kernel's `integer_weights` as a zero-padded array of shape ``(rows, p + 1)``."""
    rows = kernel.integer_weights()
    width = max(len(r) for r in rows)
    return np.asarray([tuple(r) + (0.0,) * (width - len(r)) for r in rows], dtype=np.float64)


def _multistep_weights(setup: StepSetup, n: Array, dtype) -> Array:
    """Weights ``w_0 … w_p`` of ``h·d/dt`` at forward step ``n`` (zero for ``n > steps``).

    Row ``min(n, rows) − 1`` of the kernel's `integer_weights`: the start for the first steps,
    then the multistep method. Steps beyond the run (``n > steps``, met by the replay) have no
    equation, so their weights are zero.
    """
    table = _multistep_table(setup.kernel)
    row = jnp.clip(n, 1, table.shape[0]) - 1
    w = jnp.asarray(table, dtype)[row]
    return jnp.where((n >= 1) & (n <= setup.steps), w, jnp.zeros_like(w))


def _adjoint_weights(setup: StepSetup, tau: Array, dtype) -> tuple[Array, Array]:
    """For reversed step ``tau`` (forward ``n = N − tau``): ``w^{(n)}_0`` and the lagged
    weights ``w^{(n+k)}_k``, ``k = 1 … p``, that couple step ``n`` to the steps after it."""
    n = setup.steps - tau
    p = _multistep_table(setup.kernel).shape[1] - 1
    w0 = _multistep_weights(setup, n, dtype)[0]
    lagged = jnp.stack([_multistep_weights(setup, n + k, dtype)[k] for k in range(1, p + 1)])
    return w0, lagged


def multistep_rate(x: Array, kernel: AbstractKernel, dt: Array) -> Array:
    """``dx/dt`` at every grid point by the kernel's multistep method, along the last axis.

    ``(Σ_k w^{(n)}_k x[n−k]) / h`` for ``n ≥ 1`` with ``x[m] = x[0]`` for ``m < 0`` (never used,
    the start is one-step), and ``0`` at ``n = 0``: the current a capacitor of 1 F would
    draw with the voltage ``x`` across it, as `Capacitors` steps it.
    """
    table = _multistep_table(kernel)
    steps = x.shape[-1] - 1
    n = np.arange(steps + 1)
    rows = table[np.clip(n, 1, table.shape[0]) - 1]  # (N+1, p+1)
    rows[0] = 0.0
    out = jnp.zeros_like(x)
    for k in range(table.shape[1]):
        lagged = jnp.concatenate([jnp.broadcast_to(x[..., :1], x.shape[:-1] + (k,)), x], -1)
        out = out + jnp.asarray(rows[:, k], x.dtype) * lagged[..., : steps + 1]
    return out / dt


def _shift_in(past: Array, x: Array) -> Array:
    """Past values ``(x[n−1], …, x[n−p])`` along axis 0, after ``x[n]`` arrives."""
    return jnp.concatenate([x[None], past[:-1]], axis=0)


@branch_group
class Capacitors(AbstractBranchGroup):
    r"""Nonlinear capacitors ``q = C s(v)``, ``i = dq/dt`` by the kernel's multistep method.

    ``i_n = (Σ_{k=0}^{p} w^{(n)}_k q_{n−k}) / h`` with the kernel's `integer_weights`:
    backward Euler ``[1, −1]`` for `GL`; BDF2 ``[3/2, −2, 1/2]`` after one backward-Euler step
    for `FBDF2`. Charges before ``t = 0`` never enter (the first step is backward Euler).
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
        # Past charges q_{n−1}, …, q_{n−p}; before t = 0 they equal q_0 (and are never used).
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.broadcast_to(self.charge(v0), (p,) + v0.shape)

    def prepare(self, state, n, setup):
        w = _multistep_weights(setup, n, state.dtype)
        return w[0], jnp.tensordot(w[1:], state, axes=1)

    def current(self, v, pre, setup):
        w0, past = pre
        return (w0 * self.charge(v) + past) / setup.dt

    def advance(self, state, v, pre, n, setup):
        return _shift_in(state, self.charge(v))

    # Adjoint of i_m = (Σ_k w^{(m)}_k q(v_{m−k}))/h: ι[n] = Σ_k (∂i_{n+k}/∂v_n) μ[n+k]
    #   = (q'(v_n)/h) Σ_{k=0}^{p} w^{(n+k)}_k μ[n+k]
    #   = g[n] (μ[n] + Σ_{k≥1} w^{(n+k)}_k μ[n+k] / w^{(n)}_0),
    # with g[n] = w^{(n)}_0 q'(v_n)/h the recorded incremental conductance. The state holds
    # μ[n+1], …, μ[n+p] (the replay's last p values).
    def adjoint_init(self, setup):
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.zeros((p, len(self.names)), setup.dt.dtype)

    def adjoint_prepare(self, state, tau, setup):
        w0, lagged = _adjoint_weights(setup, tau, state.dtype)
        return jnp.tensordot(lagged, state, axes=1) / w0

    def adjoint_current(self, mu, g, pre, setup):
        return g * (mu + pre)

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return _shift_in(state, mu)

    def row(self, k):
        return f"C={float(self.c[k]):.6g} F law={self.law.describe(k)}"


@branch_group
class Inductors(AbstractBranchGroup):
    r"""Nonlinear inductors ``i = s(Φ)/L``, ``dΦ/dt = v`` by the kernel's multistep method.

    ``Σ_{k=0}^{p} w^{(n)}_k Φ_{n−k} = h v_n`` with the kernel's `integer_weights` (backward
    Euler ``Φ_n = Φ_{n−1} + h v_n`` for `GL`; BDF2 after one backward-Euler step for `FBDF2`).
    At the DC operating point an inductor is a short whose current is an MNA unknown; the
    initial flux is ``Φ_0 = s⁻¹(L i_0)``.
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
        # Past fluxes Φ_{n−1}, …, Φ_{n−p}; before t = 0 they equal Φ_0 (and are never used).
        phi0 = jnp.zeros_like(v0) if i0 is None else self.law.inverse(self.l * i0)
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.broadcast_to(phi0, (p,) + v0.shape)

    def prepare(self, state, n, setup):
        w = _multistep_weights(setup, n, state.dtype)
        return w[0], jnp.tensordot(w[1:], state, axes=1)

    def _flux(self, v, pre, setup):
        w0, past = pre
        return (setup.dt * v - past) / w0

    def current(self, v, pre, setup):
        return self.law(self._flux(v, pre, setup)) / self.l

    def advance(self, state, v, pre, n, setup):
        return _shift_in(state, self._flux(v, pre, setup))

    # Adjoint of W Φ = h v, i = s(Φ)/L, with W lower triangular, W[m, m−k] = w^{(m)}_k:
    # ι = h W^{−T} diag(s'(Φ)/L) μ, i.e. back substitution in reversed time,
    #   ι[n] = g[n] μ[n] − Σ_{k≥1} w^{(n+k)}_k ι[n+k] / w^{(n)}_0,
    # with g[n] = h s'(Φ_n)/(L w^{(n)}_0) recorded. The state holds ι[n+1], …, ι[n+p].
    # (Backward Euler: ι[n] = g[n] μ[n] + ι[n+1], the running sum.)
    def adjoint_init(self, setup):
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.zeros((p, len(self.names)), setup.dt.dtype)

    def adjoint_prepare(self, state, tau, setup):
        w0, lagged = _adjoint_weights(setup, tau, state.dtype)
        return -jnp.tensordot(lagged, state, axes=1) / w0

    def adjoint_current(self, mu, g, pre, setup):
        return g * mu + pre

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return _shift_in(state, g * mu + pre)

    def row(self, k):
        return f"L={float(self.l[k]):.6g} H law={self.law.describe(k)}"
