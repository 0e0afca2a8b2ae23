r"""Resistive networks at steady state: the DC operating point, at scale, with implicit derivatives.

A `ResistiveNetwork` is an edge list. Node 0 is ground; the *input* nodes are held at imposed
voltages (ideal voltage sources to ground, one value per input and example); every other node
is *free*. Linear edges are resistors ``i_e = g_e Δv_e`` (``Δv_e = v_src − v_dst``); optional
diode edges carry ``i_d = IS (exp(Δv_d/(N Vt)) − 1) + gmin Δv_d`` (SPICE's Shockley law with
``Vt`` at 27 °C and ``gmin = 1e-12`` S in parallel, docs/design.md §1).

Kirchhoff's current law at the free nodes is the residual this module solves,

.. math::  R(v) = A_F^\top\, i(A v) = 0,\qquad\text{linear case: } L_{FF} v_F = -L_{FI} u,
           \quad L = A^\top G A,

with ``A`` the edge–node incidence matrix and ``L`` the weighted graph Laplacian, restricted to
the free nodes (the grounded Laplacian, symmetric positive definite when every free node has a
path to ground or an input). Matrix–vector products are two segment sums over the edges, so a
product costs O(edges).

Linear solves are dense (`jnp.linalg.solve`, the small-network baseline) or Jacobi-
preconditioned conjugate gradients (a 25-line loop here rather than `lineax.CG`: the homotopy
logic needs the convergence flag as a plain boolean, warm starts and a bordered (clamped)
variant, and the derivative is supplied by the implicit function theorem, not by the solver).
Nonlinear networks use Newton's method on the SPICE companion model with junction limiting
(``pnjlim``); if plain Newton fails, gmin stepping, then source stepping (SPICE's homotopies).

Derivatives never unroll the iterations: the converged state carries a custom JVP,
``ẋ = −J(x)^{-1} ∂R/∂θ · θ̇`` (implicit function theorem), with the solve wrapped in
`jax.lax.custom_linear_solve` so that reverse mode transposes it into one adjoint solve
``Jᵀ λ = x̄`` (``J`` is symmetric: every element is a two-terminal conductance).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.elements.base import GMIN, VT_27C
from .._circuit.elements.static import pnjlim
from .._custom_types import Array
from .._transient.newton import implicit_solution, newton_iterate
from .network import ResistiveError, ResistiveNetwork


# -------------------------------------------------------------------------------- the solver
class DCSolver(eqx.Module):
    """How the DC operating point is found (all fields static).

    - ``method``: ``"dense"``, ``"cg"`` (Jacobi-preconditioned conjugate gradients) or
      ``"auto"`` (dense up to ``dense_max`` free nodes).
    - ``rtol``, ``atol``: Newton stops when every update ``|Δx| ≤ rtol·|x| + atol`` and no
      junction is being limited. ``cg_rtol``, ``cg_atol``, ``max_cg``: CG stops when
      ``‖r‖ ≤ max(cg_rtol·‖b‖, cg_atol)``.
    - ``max_newton``: Newton iterations per homotopy stage.
    - ``gmin_steps``: the shunt conductances (S, every free node to ground) of gmin stepping,
      ending with 0 implicitly. ``source_steps``: the source scales of source stepping, ending
      at 1.
    """

    method: str = eqx.field(static=True, default="auto")
    dense_max: int = eqx.field(static=True, default=300)
    rtol: float = eqx.field(static=True, default=1e-10)
    atol: float = eqx.field(static=True, default=1e-12)
    cg_rtol: float = eqx.field(static=True, default=1e-12)
    cg_atol: float = eqx.field(static=True, default=0.0)
    max_cg: int = eqx.field(static=True, default=5000)
    max_newton: int = eqx.field(static=True, default=100)
    gmin_steps: tuple[float, ...] = eqx.field(
        static=True, default=tuple(10.0**-k for k in range(2, 13))
    )
    source_steps: tuple[float, ...] = eqx.field(
        static=True, default=tuple(round(0.1 * k, 10) for k in range(1, 11))
    )

    def __check_init__(self):
        if self.method not in ("auto", "dense", "cg"):
            raise ResistiveError(f"DCSolver method={self.method!r}; use 'auto', 'dense' or 'cg'")
        if not self.source_steps or self.source_steps[-1] != 1.0:
            raise ResistiveError(f"source_steps={self.source_steps!r} must end at 1.0")

    def dense(self, n_free: int) -> bool:
        return self.method == "dense" or (self.method == "auto" and n_free <= self.dense_max)


class _Cfg(eqx.Module):
    """Static description of one solve: sizes, solver, perturbation kind."""

    n_free: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_diodes: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    clamped: bool = eqx.field(static=True)
    solver: DCSolver = eqx.field(static=True)

    @property
    def nz(self) -> int:
        return self.n_free + 1 + self.n_in

    @property
    def size(self) -> int:
        return self.n_free + (self.n_out if self.clamped else 0)


class _Idx(eqx.Module):
    """Edge end points and readout nodes as positions in ``z = [free, ground, inputs]``."""

    ea: Array
    eb: Array
    da: Array
    db: Array
    plus: Array
    minus: Array


def _index(net: ResistiveNetwork, plus, minus) -> _Idx:
    p = net.pos
    return _Idx(
        p[net.edges[:, 0]],
        p[net.edges[:, 1]],
        p[net.diodes[:, 0]],
        p[net.diodes[:, 1]],
        p[jnp.asarray(plus, jnp.int32)],
        p[jnp.asarray(minus, jnp.int32)],
    )


def _z(cfg: _Cfg, v, u):
    return jnp.concatenate([v, jnp.zeros((1,), v.dtype), u.astype(v.dtype)])


def _kcl(cfg: _Cfg, a, b, i):
    """Current leaving each free node through edges ``a → b`` carrying ``i``."""
    out = jax.ops.segment_sum(i, a, cfg.nz) - jax.ops.segment_sum(i, b, cfg.nz)
    return out[: cfg.n_free]


def _readout_t(cfg: _Cfg, idx: _Idx, c):
    """``Sᵀ c`` on the free nodes (``y = S z = z[plus] − z[minus]``)."""
    out = jnp.zeros((cfg.nz,), c.dtype).at[idx.plus].add(c).at[idx.minus].add(-c)
    return out[: cfg.n_free]


def _diode_i(theta, vd):
    nvt = theta["n"] * VT_27C
    return theta["is_"] * jnp.expm1(jnp.minimum(vd / nvt, 200.0)) + GMIN * vd


def _diode_g(theta, vd):
    nvt = theta["n"] * VT_27C
    return theta["is_"] / nvt * jnp.exp(jnp.minimum(vd / nvt, 200.0)) + GMIN


def _residual(cfg, idx, x, theta, shunt=0.0, scale=1.0, vl=None):
    """KCL at the free nodes (plus the clamp equations); ``vl`` linearises the diodes there."""
    v = x[: cfg.n_free]
    z = _z(cfg, v, scale * theta["u"])
    i_r = theta["g"] * (z[idx.ea] - z[idx.eb])
    f = _kcl(cfg, idx.ea, idx.eb, i_r) + shunt * v
    if cfg.n_diodes:
        vd = z[idx.da] - z[idx.db]
        i_d = (
            _diode_i(theta, vd)
            if vl is None
            else (_diode_i(theta, vl) + _diode_g(theta, vl) * (vd - vl))
        )
        f = f + _kcl(cfg, idx.da, idx.db, i_d)
    if cfg.n_out:
        y = z[idx.plus] - z[idx.minus]
        f = f + theta["beta"] * _readout_t(cfg, idx, y - scale * theta["target"])
        if cfg.clamped:
            f = f + _readout_t(cfg, idx, x[cfg.n_free :])
            return jnp.concatenate([f, y - scale * theta["clamp"]])
    return f


class _Jac(eqx.Module):
    """The (bordered) Jacobian at a point: per-edge conductances, shunt and nudge strength."""

    cfg: _Cfg = eqx.field(static=True)
    idx: _Idx
    gall: Array  # (E + D,) incremental conductance of every edge
    shunt: Array
    beta: Array

    def ends(self):
        """End points of every conducting edge (resistors, then diodes)."""
        idx = self.idx
        if not self.cfg.n_diodes:
            return idx.ea, idx.eb
        return jnp.concatenate([idx.ea, idx.da]), jnp.concatenate([idx.eb, idx.db])

    def k_matvec(self, v):
        cfg, idx = self.cfg, self.idx
        a, b = self.ends()
        z = _z(cfg, v, jnp.zeros((cfg.n_in,), v.dtype))
        out = _kcl(cfg, a, b, self.gall * (z[a] - z[b])) + self.shunt * v
        if cfg.n_out:
            out = out + self.beta * _readout_t(cfg, idx, z[idx.plus] - z[idx.minus])
        return out

    def k_diag(self):
        cfg, idx = self.cfg, self.idx
        a, b = self.ends()
        d = jax.ops.segment_sum(self.gall, a, cfg.nz) + jax.ops.segment_sum(self.gall, b, cfg.nz)
        d = d[: cfg.n_free] + self.shunt
        if cfg.n_out:
            ones = jnp.ones(idx.plus.shape, d.dtype)
            s2 = jnp.zeros((cfg.nz,), d.dtype).at[idx.plus].add(ones).at[idx.minus].add(ones)
            d = d + self.beta * s2[: cfg.n_free]
        return d

    def s_dense(self):
        """The readout ``S`` restricted to the free nodes, dense ``(n_out, n_free)``."""
        cfg, idx = self.cfg, self.idx
        rows = jnp.arange(cfg.n_out)
        s = jnp.zeros((cfg.n_out, cfg.nz), self.gall.dtype)
        return s.at[rows, idx.plus].add(1.0).at[rows, idx.minus].add(-1.0)[:, : cfg.n_free]

    def k_dense(self):
        cfg = self.cfg
        a, b = self.ends()
        g = self.gall
        k = jnp.zeros((cfg.nz, cfg.nz), g.dtype)
        k = k.at[a, a].add(g).at[b, b].add(g).at[a, b].add(-g).at[b, a].add(-g)
        k = k[: cfg.n_free, : cfg.n_free] + self.shunt * jnp.eye(cfg.n_free, dtype=g.dtype)
        if cfg.n_out:
            s = self.s_dense()
            k = k + self.beta * s.T @ s
        return k

    def matvec(self, x):
        cfg = self.cfg
        if not cfg.clamped:
            return self.k_matvec(x)
        v, j = x[: cfg.n_free], x[cfg.n_free :]
        z = _z(cfg, v, jnp.zeros((cfg.n_in,), v.dtype))
        top = self.k_matvec(v) + _readout_t(cfg, self.idx, j)
        return jnp.concatenate([top, z[self.idx.plus] - z[self.idx.minus]])

    def solve(self, rhs):
        """``J x = rhs``; returns ``(x, converged)``."""
        cfg = self.cfg
        if cfg.solver.dense(cfg.n_free):
            k = self.k_dense()
            if cfg.clamped:
                s = self.s_dense()
                zero = jnp.zeros((cfg.n_out, cfg.n_out), k.dtype)
                k = jnp.block([[k, s.T], [s, zero]])
            x = jnp.linalg.solve(k, rhs)
            return x, jnp.all(jnp.isfinite(x))
        dinv = 1.0 / self.k_diag()
        if not cfg.clamped:
            return _pcg(self.k_matvec, rhs, dinv, cfg.solver)
        # Bordered system [[K, Sᵀ], [S, 0]] by its Schur complement: K X = [r, Sᵀ].
        n = cfg.n_free
        r1, r2 = rhs[:n], rhs[n:]
        st = jax.vmap(lambda c: _readout_t(cfg, self.idx, c))(jnp.eye(cfg.n_out, dtype=rhs.dtype))
        cols = jnp.concatenate([r1[None], st], axis=0)
        sol, ok = jax.vmap(lambda b: _pcg(self.k_matvec, b, dinv, cfg.solver))(cols)
        kr, ks = sol[0], sol[1:]  # K⁻¹r1 and K⁻¹Sᵀ (rows)

        def s_of(v):
            z = _z(cfg, v, jnp.zeros((cfg.n_in,), v.dtype))
            return z[self.idx.plus] - z[self.idx.minus]

        schur = jax.vmap(s_of)(ks).T  # S K⁻¹ Sᵀ
        mu = jnp.linalg.solve(schur, s_of(kr) - r2)
        return jnp.concatenate([kr - ks.T @ mu, mu]), jnp.all(ok)

    def linear_solve(self, rhs):
        """``J⁻¹ rhs`` that JAX can differentiate and transpose (``J`` is symmetric)."""
        return jax.lax.custom_linear_solve(
            self.matvec, rhs, lambda _, b: self.solve(b)[0], symmetric=True
        )


def _pcg(matvec, b, dinv, solver: DCSolver):
    """Jacobi-preconditioned conjugate gradients from zero; returns ``(x, converged)``.

    Stops at ``‖r‖ ≤ max(rtol·‖b‖, atol)`` with ``rtol = max(cg_rtol, 100·eps)``, so that the
    float32 default is reachable.
    """
    rtol = max(solver.cg_rtol, 100 * float(jnp.finfo(b.dtype).eps))
    bound = jnp.maximum(rtol * jnp.linalg.norm(b), solver.cg_atol)

    def cond(s):
        k, _, r, _, _ = s
        return (k < solver.max_cg) & (jnp.linalg.norm(r) > bound)

    def body(s):
        k, x, r, p, rz = s
        q = matvec(p)
        alpha = rz / jnp.vdot(p, q)
        x, r = x + alpha * p, r - alpha * q
        zr = dinv * r
        rz_new = jnp.vdot(r, zr)
        return k + 1, x, r, zr + (rz_new / rz) * p, rz_new

    z0 = dinv * b
    init = (jnp.asarray(0), jnp.zeros_like(b), b, z0, jnp.vdot(b, z0))
    _, x, r, _, _ = jax.lax.while_loop(cond, body, init)
    return x, jnp.linalg.norm(r) <= bound


def _jacobian(cfg, idx, theta, x, shunt=0.0, scale=1.0, vl=None) -> _Jac:
    g = theta["g"]
    if cfg.n_diodes:
        if vl is None:
            z = _z(cfg, x[: cfg.n_free], scale * theta["u"])
            vl = z[idx.da] - z[idx.db]
        g = jnp.concatenate([g, _diode_g(theta, vl)])
    dt = g.dtype
    return _Jac(cfg, idx, g, jnp.asarray(shunt, dt), jnp.asarray(theta["beta"], dt))


# ------------------------------------------------------------------------ Newton + homotopy
def _newton(cfg, idx, theta, x0, shunt, scale):
    """Newton on the companion model with junction limiting; returns ``(x, converged)``."""
    solver = cfg.solver
    if not cfg.n_diodes:
        jac = _jacobian(cfg, idx, theta, x0, shunt, scale)
        r0 = _residual(cfg, idx, jnp.zeros_like(x0), theta, shunt, scale)
        x, ok = jac.solve(-r0)  # the residual is affine in x
        return x, ok & jnp.all(jnp.isfinite(x))
    nvt = theta["n"] * VT_27C
    vcrit = nvt * jnp.log(nvt / (jnp.sqrt(2.0) * theta["is_"]))
    eps = float(jnp.finfo(x0.dtype).eps)  # float32: tolerances no tighter than round-off
    rtol, atol = max(solver.rtol, 1e3 * eps), max(solver.atol, 1e-3 * eps)

    def vd_of(x):
        z = _z(cfg, x[: cfg.n_free], scale * theta["u"])
        return z[idx.da] - z[idx.db]

    def update(x, vl_old):
        vd = vd_of(x)
        vl = pnjlim(vd, vl_old, nvt, vcrit)
        r = _residual(cfg, idx, x, theta, shunt, scale, vl=vl)
        dx, ok = _jacobian(cfg, idx, theta, x, shunt, scale, vl=vl).solve(-r)
        unlimited = jnp.all(jnp.abs(vd - vl) <= rtol * jnp.abs(vd) + atol)
        return dx, vl, ok & unlimited

    x, done, _, _ = newton_iterate(
        update, x0, vd_of(x0), max_iter=solver.max_newton, rtol=rtol, atol=atol
    )
    return x, done


def _schedule(solver: DCSolver):
    """The homotopy stages as (shunt, scale) rows: plain, gmin stepping, source stepping."""
    gmins = list(solver.gmin_steps) + [0.0]
    rows = [(0.0, 1.0)] + [(s, 1.0) for s in gmins] + [(0.0, c) for c in solver.source_steps]
    return np.asarray(rows), len(gmins)


def _homotopy(cfg, idx, theta):
    """Plain Newton; if it fails gmin stepping; if that fails source stepping.

    Returns ``(x, code)``: ``code = −1`` on success, otherwise ``gmin_fail·S + source_fail``
    (indices of the first failing stage of each homotopy; see `_failure_messages`).
    """
    x0 = jnp.zeros((cfg.size,), theta["g"].dtype)
    if not cfg.n_diodes:
        x, ok = _newton(cfg, idx, theta, x0, 0.0, 1.0)
        return x, jnp.where(ok, -1, 0)
    rows, n_g = _schedule(cfg.solver)
    n_s = len(cfg.solver.source_steps)
    table = jnp.asarray(rows, x0.dtype)
    last_g, last = n_g, len(rows) - 1

    def cond(s):
        _, _, done, _, _ = s
        return ~done

    def body(s):
        i, x, _, g_fail, s_fail = s
        shunt, scale = table[i, 0], table[i, 1]
        x_new, ok = _newton(cfg, idx, theta, x, shunt, scale)
        in_gmin = (i >= 1) & (i <= last_g)
        in_src = i > last_g
        done = (ok & ((i == 0) | (i == last_g) | (i == last))) | (~ok & in_src)
        g_fail = jnp.where(~ok & in_gmin, i - 1, g_fail)
        s_fail = jnp.where(~ok & in_src, i - last_g - 1, s_fail)
        restart = ~ok & (i <= last_g)  # the next homotopy starts from zero
        nxt = jnp.where(~ok & in_gmin, last_g + 1, i + 1)
        x_next = jnp.where(restart, jnp.zeros_like(x), x_new)
        ok_final = ok & ((i == 0) | (i == last_g) | (i == last))
        return nxt, jnp.where(done, x_new, x_next), done, g_fail, jnp.where(ok_final, -1, s_fail)

    init = (jnp.asarray(0), x0, jnp.asarray(False), jnp.asarray(n_g), jnp.asarray(-1))
    _, x, _, g_fail, s_fail = jax.lax.while_loop(cond, body, init)
    code = jnp.where(s_fail < 0, -1, g_fail * n_s + s_fail)
    return x, code


def _failure_messages(cfg: _Cfg) -> list[str]:
    solver = cfg.solver
    if not cfg.n_diodes:
        return [
            f"the linear DC solve did not converge: conjugate gradients did not reach the "
            f"relative residual {solver.cg_rtol:g} in max_cg={solver.max_cg} iterations; raise "
            "DCSolver(max_cg=...), or check for conductances spanning many decades"
        ]
    gmins = list(solver.gmin_steps) + [0.0]
    out = []
    for gi in range(len(gmins) + 1):
        g_txt = (
            f"gmin stepping failed at gmin = {gmins[gi]:g} S"
            if gi < len(gmins)
            else "gmin stepping did not run"
        )
        for si, scale in enumerate(solver.source_steps):
            out.append(
                f"the nonlinear DC solve did not converge: plain Newton failed, {g_txt}, and "
                f"source stepping failed at stage {si + 1}/{len(solver.source_steps)} (sources "
                f"at {scale:g}× their values). Raise DCSolver(max_newton=...) (now "
                f"{solver.max_newton}), use more source_steps, or check the diodes' is_ and n "
                "and the input voltages"
            )
    return out


def _at_solution(cfg: _Cfg, x_star, idx, theta):
    """The converged state, carrying the implicit-function-theorem derivative
    (`implicit_solution`): the tangent is ``−J⁻¹ ∂R/∂θ · θ̇`` at ``x_star``."""

    # The index arrays travel with θ (as primals: they may be traced), never closed over.
    def residual(x, ctx):
        idx, theta = ctx
        return _residual(cfg, idx, x, theta)

    def solve(x, ctx, f):
        idx, theta = ctx
        return _jacobian(cfg, idx, theta, x).linear_solve(f)

    return implicit_solution(residual, solve, x_star, (idx, theta))


def _solve_state(cfg: _Cfg, idx: _Idx, theta: dict, throw: bool):
    """The operating point ``x = [v_free, clamp currents]``, differentiable in ``theta``."""
    x, code = _homotopy(cfg, idx, jax.lax.stop_gradient(theta))
    x = jax.lax.stop_gradient(x)
    if throw:
        msgs = _failure_messages(cfg)
        x = eqx.branched_error_if(x, code >= 0, jnp.maximum(code, 0), msgs)
    else:
        x = jnp.where(code >= 0, jnp.nan, x)
    return _at_solution(cfg, x, idx, theta)


def _theta(net: ResistiveNetwork, g, u, n_out, beta=0.0, target=None, clamp=None) -> dict:
    dt = jnp.result_type(float)
    zeros = jnp.zeros((n_out,), dt)
    return dict(
        g=jnp.asarray(g, dt),
        is_=net.is_.astype(dt),
        n=net.n.astype(dt),
        u=jnp.asarray(u, dt),
        beta=jnp.asarray(beta, dt),
        target=zeros if target is None else jnp.asarray(target, dt),
        clamp=zeros if clamp is None else jnp.asarray(clamp, dt),
    )


def _check_u(net: ResistiveNetwork, u):
    u = jnp.asarray(u)
    if u.shape != (len(net.inputs),):
        raise ResistiveError(
            f"input voltages have shape {u.shape}; expected ({len(net.inputs)},), one value per "
            f"input node {net.inputs} (use jax.vmap for a batch)"
        )
    return u


def node_voltages(net: ResistiveNetwork, x, u) -> Array:
    """All node voltages ``(n_nodes,)`` from the free-node solution and the inputs."""
    z = jnp.concatenate([x[: net.n_free], jnp.zeros((1,), x.dtype), jnp.asarray(u, x.dtype)])
    return z[net.pos]


def dc_solve(
    net: ResistiveNetwork, u, *, g=None, solver: DCSolver = DCSolver(), throw: bool = True
) -> Array:
    """The DC operating point: every node voltage, shape ``(n_nodes,)``.

    **Arguments**: ``net``; ``u`` the input voltages ``(len(net.inputs),)`` (vmap for a
    batch); ``g`` optional conductances replacing ``net.g``; ``solver`` a `DCSolver`;
    ``throw``: raise on non-convergence (default) or return NaN voltages (use under vmap to
    see which example failed).

    Differentiable in ``g``, ``u``, ``is_`` and ``n`` by the implicit function theorem.

    **Raises** an error naming the homotopy stage that failed when the solve does not converge.
    """
    u = _check_u(net, u)
    cfg = _Cfg(net.n_free, len(net.inputs), net.n_diodes, 0, False, solver)
    idx = _index(net, jnp.zeros((0,), jnp.int32), jnp.zeros((0,), jnp.int32))
    theta = _theta(net, net.g if g is None else g, u, 0)
    x = _solve_state(cfg, idx, theta, throw)
    return node_voltages(net, x, u)
