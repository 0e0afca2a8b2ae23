"""The DC operating point of a circuit: capacitors open, inductors shorted."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._circuit.circuit import Circuit
from .mna import _MNA, _concat, _split
from .newton import _branch_limit, _newton, _stop, _tolerances, implicit_solution


def _dc_mna(circuit: Circuit) -> tuple[_MNA, list, list]:
    cond = [g for g in circuit.groups if g.dc == "conductor"]
    shorts = [g for g in circuit.groups if g.dc == "short"]
    mna = _MNA.from_pairs(
        circuit.n_nodes,
        [ab for g in cond for ab in g.nodes],
        list(circuit.vsources.nodes) + [ab for g in shorts for ab in g.nodes],
        circuit.isources.nodes,
    )
    return mna, cond, shorts


def dc_operating_point(circuit: Circuit, t0, *, max_iter=200, rtol=None, atol=None):
    """DC operating point at ``t0``: capacitors open, inductors shorted.

    Returns ``(x, converged, worst)`` where ``x`` holds node voltages, voltage-source currents
    and inductor currents. Newton from zero with junction limiting; when that fails, source
    stepping (ramping every source from 0 to its value in 10 stages), as SPICE does.
    """
    mna, cond, shorts = _dc_mna(circuit)
    dtype = jnp.asarray(t0).dtype
    rtol, atol = _tolerances(dtype, rtol, atol)
    n_short = sum(len(g) for g in shorts)

    def sources(c, scale):
        e = jnp.concatenate([c.vsources.values(t0), jnp.zeros((n_short,), dtype)]) * scale
        return e, c.isources.values(t0) * scale

    def make(c):
        groups = [g for g in c.groups if g.dc == "conductor"]

        def currents(vb):
            return _concat([g.dc_current(v) for g, v in zip(groups, _split(groups, vb))], dtype)

        return currents, functools.partial(_branch_limit, groups)

    c_const = _stop(circuit)
    currents, limit = make(c_const)
    x0 = jnp.zeros((mna.size,), dtype)
    e, i_src = sources(c_const, 1.0)
    x, ok, _, worst = _newton(
        mna, currents, limit, x0, e, i_src, max_iter=max_iter, rtol=rtol, atol=atol
    )

    def source_stepping(_):
        def stage(carry, s):
            x, ok_all, _ = carry
            e_s, i_s = sources(c_const, s)
            x, ok_s, _, w = _newton(
                mna, currents, limit, x, e_s, i_s, max_iter=max_iter, rtol=rtol, atol=atol
            )
            return (x, ok_all & ok_s, w), None

        scales = jnp.linspace(0.1, 1.0, 10, dtype=dtype)
        (x, ok_all, w), _ = jax.lax.scan(stage, (x0, jnp.asarray(True), jnp.asarray(0)), scales)
        return x, ok_all, w

    x, ok, worst = jax.lax.cond(ok, lambda _: (x, ok, worst), source_stepping, None)
    x = jax.lax.stop_gradient(x)

    # The time t0 travels with the circuit (as a primal: it may be traced), never closed over.
    def residual(x, ctx):
        c, t = ctx
        e_c = jnp.concatenate([c.vsources.values(t), jnp.zeros((n_short,), dtype)])
        vb = mna.branch_voltages(x)
        return mna.residual(x, make(c)[0](vb), e_c, c.isources.values(t))

    def solve(x, ctx, f):
        vb = mna.branch_voltages(x)
        _, g = jax.jvp(make(ctx[0])[0], (vb,), (jnp.ones_like(vb),))
        return mna.solve(g, f)

    return implicit_solution(residual, solve, x, (circuit, t0)), ok, worst
