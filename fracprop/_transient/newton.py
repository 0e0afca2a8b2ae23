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
    """Newton's method with per-branch limiting. Returns (x, converged, iterations, worst).

    With ``linear=True`` (every branch current affine in its voltage, so the residual is
    affine in ``x`` and the Jacobian constant) the first update solves the system exactly, up
    to round-off: it is the only one taken, instead of a second that would confirm it.
    """

    def cond(carry):
        k, _, _, done, _ = carry
        return (k < max_iter) & ~done

    def body(carry):
        k, x, vlim, _, _ = carry
        vb_raw = mna.branch_voltages(x)
        v_use = limit(vb_raw, vlim)
        i, g = jax.jvp(currents, (v_use,), (jnp.ones_like(v_use),))
        # Companion model: the tangent at the limited voltage, evaluated at the true voltage.
        f = mna.residual(x, i + g * (vb_raw - v_use), e, i_src)
        dx = mna.solve(g, f)
        x_new = x - dx
        scale = rtol * jnp.maximum(jnp.abs(x_new), jnp.abs(x)) + atol
        small = jnp.all(jnp.abs(dx) <= scale)
        unlimited = jnp.all(jnp.abs(vb_raw - v_use) <= rtol * jnp.abs(vb_raw) + atol)
        done = small & unlimited & jnp.all(jnp.isfinite(x_new))
        # Report the node voltage that moved most (relative to its tolerance).
        ratio = jnp.abs(dx) / scale
        worst = jnp.argmax(jnp.where(jnp.isfinite(ratio), ratio, jnp.inf)[: mna.n_nodes])
        return k + 1, x_new, v_use, done, worst

    vlim0 = mna.branch_voltages(x0)
    init = (jnp.asarray(0), x0, vlim0, jnp.asarray(False), jnp.asarray(0))
    if linear:
        k, x, _, _, worst = body(init)
        return x, jnp.all(jnp.isfinite(x)), k, worst
    k, x, _, done, worst = jax.lax.while_loop(cond, body, init)
    return x, done, k, worst


def _implicit_step(mna: _MNA, currents, x_star, e, i_src):
    """One differentiable Newton step at the converged point (implicit function theorem)."""
    vb = mna.branch_voltages(x_star)
    i, g = jax.jvp(currents, (vb,), (jnp.ones_like(vb),))
    f = mna.residual(x_star, i, e, i_src)
    return x_star - mna.solve(g, f)


def _branch_limit(groups, v_new, v_old):
    """Newton voltage limiting of every branch (identity except for junctions)."""
    parts = zip(groups, _split(groups, v_new), _split(groups, v_old))
    return _concat([g.limit(a, b) for g, a, b in parts], v_new.dtype)


def _branch_currents(circuit, pres, setup, vb):
    """Every branch current of the transient step for branch voltages ``vb``."""
    gs = circuit.groups
    parts = zip(gs, _split(gs, vb), pres)
    return _concat([g.current(v, p, setup) for g, v, p in parts], vb.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _converged(mna: _MNA, x_star, ctx):
    """The converged Newton solution, with the implicit-function-theorem derivative.

    The value is ``x_star`` itself (no extra solve). The tangent is
    ``−J(x*)^{-1} ∂F/∂ctx · ctx'`` where ``ctx = (circuit, history, setup, E(t), I(t))``
    holds everything the step's residual depends on besides ``x``.
    """
    return x_star


@_converged.defjvp
def _converged_jvp(mna, primals, tangents):
    x_star, ctx = primals
    _, dctx = tangents
    vb = mna.branch_voltages(x_star)

    def residual(ctx):
        circuit, pres, setup, e, i_src = ctx
        return mna.residual(x_star, _branch_currents(circuit, pres, setup, vb), e, i_src)

    _, df = jax.jvp(residual, (ctx,), (dctx,))
    circuit, pres, setup, _, _ = ctx
    _, g = jax.jvp(lambda v: _branch_currents(circuit, pres, setup, v), (vb,), (jnp.ones_like(vb),))
    return x_star, -mna.solve(g, df)


def _tolerances(dtype, rtol, atol):
    eps = float(jnp.finfo(dtype).eps)
    if rtol is None:
        rtol = max(1e-10, 1e3 * eps) if eps < 1e-10 else 1e-5
    if atol is None:
        atol = 1e-13 if eps < 1e-10 else 1e-7
    return rtol, atol
