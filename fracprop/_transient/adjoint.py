"""The time-reversed replay (adjoint network) of a recorded transient run."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit
from .._circuit.elements.base import StepSetup
from .._progress import NoProgress
from .mna import _MNA, _transient_mna
from .options import NewtonOptions, SaveAt
from .stepper import TransientStepper, _block_residual


def replay(circuit: Circuit, setup: StepSetup, g_branch, drive, out_nodes, x_block=None):
    """Run the adjoint network of ``circuit`` backwards over the grid of ``setup``.

    **Arguments**: ``g_branch`` the forward run's incremental branch conductances
    ``(N + 1, branches)`` (`Trajectory.g_branch`); ``drive`` the error currents ``∂ℓ/∂v``
    injected from ground into the nodes ``out_nodes``, shape ``(N + 1, len(out_nodes))``;
    with starting weights in ``setup``, ``x_block`` the forward unknowns of steps ``1 … m``
    (the coupled start block), shape ``(m, size)``.

    With starting weights the replay runs the steps ``N … m + 1`` one at a time as without
    them, while each fractional element accumulates the adjoint of its starting terms
    (``Σ_n s_{n,j} p_n``, `fracprop._circuit.elements.fractional`). The start block is then
    one transposed system: its known part (the adjoint currents that the later steps send
    into steps ``1 … m``) comes from two passes of the replay over the block with zero adjoint
    voltages there (the second with the completed sums), and its matrix is the transposed
    Jacobian of the forward block (`fracprop._transient.stepper.TransientStepper.start`), each
    element's part of it local to the element.

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

    m = 0 if x_block is None else x_block.shape[0]
    states, mus = jax.lax.scan(step, states, jnp.arange(steps - m))
    mus = mus[::-1]  # forward order n = m + 1 … N
    if m:
        mus = jnp.concatenate(
            [_block_adjoint(circuit, setup, mna, g_branch, drive, states, x_block), mus]
        )
    return jnp.concatenate([jnp.zeros_like(mus[:1]), mus], axis=0)


def _block_adjoint(circuit, setup, mna, g_branch, drive, states, x_block):
    """The adjoint branch voltages of the start block, steps ``1 … m`` (forward order)."""
    steps, dtype = setup.steps, setup.dt.dtype
    groups = circuit.groups
    bounds = np.cumsum([0] + [len(g) for g in groups])
    m = x_block.shape[0]
    parts = list(zip(groups, bounds[:-1], bounds[1:]))

    def zero_pass(states):
        """The block in reversed order with zero adjoint voltages: the adjoint currents that
        the later steps send into each block step, and the states after (one `lax.scan`, so
        that tracing does not grow with ``m``)."""
        zero = jnp.zeros((len(mna.a),), dtype)

        def reversed_step(states, n):
            tau = steps - n
            g_now = g_branch[n]
            pres = tuple(g.adjoint_prepare(st, tau, setup) for g, st in zip(groups, states))
            known = jnp.concatenate(
                [
                    g.adjoint_current(zero[lo:hi], g_now[lo:hi], p, setup)
                    for (g, lo, hi), p in zip(parts, pres)
                ]
            )
            states = tuple(
                g.adjoint_advance(st, zero[lo:hi], g_now[lo:hi], p, tau, setup)
                for (g, lo, hi), st, p in zip(parts, states, pres)
            )
            return states, known

        states, known = jax.lax.scan(reversed_step, states, jnp.arange(m, 0, -1))
        return known[::-1], states

    # Pass 1 completes the sums of the starting terms over the block itself; pass 2 reads them.
    _, after = zero_pass(states)
    completed = tuple(g.adjoint_with_sums_of(a, b) for g, a, b in zip(groups, states, after))
    known, _ = zero_pass(completed)
    e_zero = jnp.zeros((len(circuit.vsources),), dtype)
    zero_x = jnp.zeros((mna.size,), dtype)
    f0 = jnp.stack([mna.residual(zero_x, known[k], e_zero, drive[k + 1]) for k in range(m)])
    jac = _block_jacobian(circuit, setup, x_block)
    lam = -jnp.linalg.solve(jac.T, f0.reshape(-1)).reshape(m, mna.size)
    return jax.vmap(mna.branch_voltages)(lam)


def _block_jacobian(circuit, setup, x_block):
    """The Jacobian of the forward start block's stacked residual at its solution."""
    stepper = TransientStepper(circuit, setup, NewtonOptions(), SaveAt(), NoProgress())
    init, _, _ = stepper.init(True)
    m = x_block.shape[0]
    dtype = setup.dt.dtype
    ctx = (
        circuit,
        init.states,
        setup,
        jnp.zeros((m, len(circuit.vsources)), dtype),
        jnp.zeros((m, len(circuit.isources)), dtype),
    )
    residual = functools.partial(_block_residual, _transient_mna(circuit), m)
    return jax.jacfwd(residual)(x_block.reshape(-1), ctx)
