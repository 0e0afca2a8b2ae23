"""The time-reversed replay (adjoint network) of a recorded transient run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit
from .._circuit.elements.base import StepSetup
from .mna import _MNA


def replay(circuit: Circuit, setup: StepSetup, g_branch, drive, out_nodes):
    """Run the adjoint network of ``circuit`` backwards over the grid of ``setup``.

    **Arguments**: ``g_branch`` the forward run's incremental branch conductances
    ``(N + 1, branches)`` (`Trajectory.g_branch`); ``drive`` the error currents ``∂ℓ/∂v``
    injected from ground into the nodes ``out_nodes``, shape ``(N + 1, len(out_nodes))``.

    **Returns** the adjoint branch voltages ``μ_b[n]`` in forward order, shape
    ``(N + 1, branches)`` (row 0 is zero).
    """
    steps = setup.steps
    dt = setup.dt
    n = circuit.n_nodes
    # Same topology; the only current sources are the error currents injected from ground
    # into the output nodes (the circuit's own current sources are open in the replay).
    mna = _MNA.from_pairs(
        n,
        [ab for g in circuit.groups for ab in g.nodes],
        circuit.vsources.nodes,
        [(-1, int(k)) for k in out_nodes],
    )
    groups = circuit.groups
    sizes = [len(g) for g in groups]
    bounds = np.cumsum([0] + sizes)
    states = tuple(g.adjoint_init(setup) for g in groups)
    e_zero = jnp.zeros((len(circuit.vsources),), dt.dtype)

    def step(states, tau):
        nstep = steps - tau
        g_now = g_branch[nstep]
        pres = tuple(g.adjoint_prepare(s, tau, setup) for g, s in zip(groups, states))

        def currents(mu_b):
            return jnp.concatenate(
                [
                    grp.adjoint_current(mu_b[lo:hi], g_now[lo:hi], p, setup)
                    for grp, p, lo, hi in zip(groups, pres, bounds[:-1], bounds[1:])
                ]
            )

        zero = jnp.zeros((mna.size,), dt.dtype)
        hist = currents(jnp.zeros((len(mna.a),), dt.dtype))
        f0 = mna.residual(zero, hist, e_zero, drive[nstep])
        lam = -mna.solve(g_now, f0)
        mu_b = mna.branch_voltages(lam)
        new = tuple(
            grp.adjoint_advance(s, mu_b[lo:hi], g_now[lo:hi], p, tau, setup)
            for grp, s, p, lo, hi in zip(groups, states, pres, bounds[:-1], bounds[1:])
        )
        return new, mu_b

    _, mus = jax.lax.scan(step, states, jnp.arange(steps))
    mus = mus[::-1]  # forward order n = 1 … N
    return jnp.concatenate([jnp.zeros_like(mus[:1]), mus], axis=0)
