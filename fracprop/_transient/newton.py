"""Newton's method with junction limiting, and the implicit-function-theorem derivative
of its converged point."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array
from .mna import _MNA, _concat, _split


def _stop(tree):
    return jax.tree.map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


def newton_iterate(
    update, x0: Array, state0, *, max_iter: int, rtol: float, atol: float, single: bool = False
):
    r"""Newton's method ``x ← x + dx``, shared by the transient step and the resistive solver.

    ``update(x, state) -> (dx, state, ok)`` computes one update from the current iterate and
    the method's own state (the limited junction voltages of the last update); ``ok`` is the
    update's own condition for convergence (no junction voltage limited, the linear solve
    converged). The iteration has converged when

    .. math::  |dx_i| ≤ \mathrm{rtol}·\max(|x_i + dx_i|, |x_i|) + \mathrm{atol} \quad ∀ i,

    ``ok`` holds and the new iterate is finite; it stops then, at the first non-finite iterate,
    or after ``max_iter`` updates. With ``single=True`` (a residual affine in ``x``, so that
    the first update solves the system up to round-off) exactly one update is taken and it has
    converged when it is finite and ``ok``.

    **Returns** ``(x, converged, iterations, ratio)``: ``ratio = |dx| / tolerance`` of the last
    update, from which a caller can name the unknown that moved most.
    """

    def step(x, state):
        dx, state, ok = update(x, state)
        x_new = x + dx
        tol = rtol * jnp.maximum(jnp.abs(x_new), jnp.abs(x)) + atol
        small = jnp.all(jnp.abs(dx) <= tol)
        return x_new, state, ok, small, jnp.all(jnp.isfinite(x_new)), jnp.abs(dx) / tol

    if single:
        x, _, ok, _, finite, ratio = step(x0, state0)
        return x, ok & finite, jnp.asarray(1), ratio

    def body(carry):
        k, x, state, _, _, _ = carry
        x_new, state, ok, small, finite, ratio = step(x, state)
        return k + 1, x_new, state, small & ok & finite, ~finite, ratio

    def cond(carry):
        k, _, _, done, failed, _ = carry
        return (k < max_iter) & ~done & ~failed

    init = (jnp.asarray(0), x0, state0, jnp.asarray(False), jnp.asarray(False), jnp.zeros_like(x0))
    k, x, _, done, _, ratio = jax.lax.while_loop(cond, body, init)
    return x, done, k, ratio


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def implicit_solution(residual, solve, x_star: Array, theta):
    r"""``x_star``, a solution of ``residual(x, theta) = 0``, with the derivative of the
    implicit function theorem, shared by the transient step and the resistive solver.

    The value is ``x_star`` itself (no extra work). The tangent is

    .. math::  \dot x = −J(x^*)^{-1}\, \frac{∂F}{∂θ}(x^*, θ)\, \dot θ,

    with ``solve(x, theta, f) = J(x, theta)^{-1} f`` (``J = ∂F/∂x``). So `jax.jvp`, `jax.grad`
    and `jax.vmap` see the converged point as a differentiable function of ``theta`` without
    differentiating through the iterations (Newton's loop runs on stopped gradients).
    """
    return x_star


@implicit_solution.defjvp
def _implicit_solution_jvp(residual, solve, primals, tangents):
    x_star, theta = primals
    _, dtheta = tangents
    _, df = jax.jvp(lambda th: residual(x_star, th), (theta,), (dtheta,))
    return x_star, -solve(x_star, theta, df)


def _newton(
    mna: _MNA,
    currents,
    limit,
    x0: Array,
    e: Array,
    i_src: Array,
    *,
    max_iter: int,
    rtol: float,
    atol: float,
    linear: bool = False,
):
    """`newton_iterate` on the MNA system with per-branch limiting. Returns ``(x, converged,
    iterations, worst)``, ``worst`` the node whose last update was largest relative to its
    tolerance.

    Each update solves the companion model: the branch currents and conductances are the
    tangent at the limited voltage, evaluated at the true voltage. With ``linear=True`` (every
    branch current affine in its voltage) one update is taken.
    """

    def update(x, vlim):
        vb_raw = mna.branch_voltages(x)
        v_use = limit(vb_raw, vlim)
        i, g = jax.jvp(currents, (v_use,), (jnp.ones_like(v_use),))
        f = mna.residual(x, i + g * (vb_raw - v_use), e, i_src)
        unlimited = jnp.all(jnp.abs(vb_raw - v_use) <= rtol * jnp.abs(vb_raw) + atol)
        return -mna.solve(g, f), v_use, unlimited

    x, done, k, ratio = newton_iterate(
        update,
        x0,
        mna.branch_voltages(x0),
        max_iter=max_iter,
        rtol=rtol,
        atol=atol,
        single=linear,
    )
    worst = jnp.argmax(jnp.where(jnp.isfinite(ratio), ratio, jnp.inf)[: mna.n_nodes])
    return x, done, k, worst


def _branch_limit(groups, v_new, v_old):
    """Newton voltage limiting of every branch (identity except for junctions)."""
    parts = zip(groups, _split(groups, v_new), _split(groups, v_old))
    return _concat([g.limit(a, b) for g, a, b in parts], v_new.dtype)


def _branch_currents(circuit, pres, setup, vb):
    """Every branch current of the transient step for branch voltages ``vb``."""
    gs = circuit.groups
    parts = zip(gs, _split(gs, vb), pres)
    return _concat([g.current(v, p, setup) for g, v, p in parts], vb.dtype)


def _converged(mna: _MNA, x_star, ctx):
    """The converged Newton solution of a transient step, with the implicit-function-theorem
    derivative (`implicit_solution`); ``ctx = (circuit, history, setup, E(t), I(t))`` holds
    everything the step's residual depends on besides ``x``."""

    def residual(x, ctx):
        circuit, pres, setup, e, i_src = ctx
        vb = mna.branch_voltages(x)
        return mna.residual(x, _branch_currents(circuit, pres, setup, vb), e, i_src)

    def solve(x, ctx, f):
        circuit, pres, setup, _, _ = ctx
        vb = mna.branch_voltages(x)
        currents = functools.partial(_branch_currents, circuit, pres, setup)
        _, g = jax.jvp(currents, (vb,), (jnp.ones_like(vb),))
        return mna.solve(g, f)

    return implicit_solution(residual, solve, x_star, ctx)


def _tolerances(dtype, rtol, atol):
    eps = float(jnp.finfo(dtype).eps)
    if rtol is None:
        rtol = max(1e-10, 1e3 * eps) if eps < 1e-10 else 1e-5
    if atol is None:
        atol = 1e-13 if eps < 1e-10 else 1e-7
    return rtol, atol
