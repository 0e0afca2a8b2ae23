r"""Variable internal steps with local-truncation-error control, for circuits whose elements
with memory are all integer-order capacitors and inductors.

The output grid ``t_n = n·dt`` stays fixed and every output point is an internal time point,
so no output is interpolated. Between two output points the run takes internal steps ``h``
(at most ``dt``, as SPICE's default maximum step TSTEP) chosen from an estimate of each
step's local truncation error, ending a step at every breakpoint of a source (the corners of
PULSE and PWL, `AbstractWaveform.breakpoints`) and restarting the multistep method there
with a backward-Euler step, as ngspice does (``dctran.c``: order 1 after a breakpoint).

**The estimate.** A method of order ``p`` (`AbstractMultistep.order`) has the local error
``C h^{p+1} x^{(p+1)}`` (``C`` = `AbstractMultistep.error_constant`: 1/2 for backward
Euler, 1/12 for the trapezoidal rule, 2/9 for Gear-2). The derivative is the divided
difference through the new point and the ``p + 1`` accepted points before it,
``x^{(p+1)} ≈ (p+1)!·x[t_n, …, t_{n−p−1}]`` (the divided-difference estimate of SPICE's
``CKTterr``; Nagel 1975, *SPICE2*, §5), applied, as in SPICE, to the quantities that the
method integrates: the state variables, i.e. the voltage of every capacitor and the current
of every inductor. (A node voltage that a source sets directly carries no integration error;
its divided differences across a kink of the source would only shrink the step.) The first
step after a (re)start has no such points: it is taken twice, as one step of ``h`` and as two
of ``h/2``, and the difference of the two results bounds the error of the second (step
doubling; Hairer, Nørsett & Wanner 1993, §II.4).

**The tolerance.** A step is accepted when, for every state variable, its estimated local
error is at most ``(h/T)·tol`` with ``T = steps·dt`` and ``tol = rtol·max_t|x| + atol``
(``atol_current`` for the inductor currents; ``max_t`` over a first run on the output grid
and the run so far, so that the relative tolerance has its scale from ``t = 0`` on): the
error per unit step, so that the sum of the local errors over the run, which bounds the
global error of a circuit whose errors are not amplified, stays within ``tol`` at every
output point. The sum is kept per state variable, and ``Trajectory.error_estimate`` is its
largest ratio to ``tol``. (The node voltages and source currents follow from the state
variables and the sources; in a linear circuit their errors are combinations of the state
variables' errors.) The next
step is ``h·min(2, max(0.2, 0.9·r^{−1/q}))`` with ``r`` the largest error over tolerance
and ``q`` the order of the error per unit step (``p``; 1 for the doubled first step); a
step whose Newton iteration fails is retried with ``h/8``. A step below ``dt·MIN_STEP`` or
more than ``max_attempts`` attempts within one output step stop the run with
``RESULTS.tolerance_not_met`` at that output step and a node of the element with the largest
error.

The loop is a `jax.lax.while_loop` inside a `jax.lax.scan` over the output steps: it runs
under `jax.jit` but is not reverse-differentiable, and the step sizes depend on the values;
`simulate` uses it only with concrete values (``substeps=None``).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit
from .._circuit.elements.base import StepSetup
from .._circuit.integration import AbstractMultistep
from .._custom_types import Array
from .._fractional.history.base import AbstractHistory
from .._fractional.kernels import AbstractKernel
from .._progress import AbstractProgress, NoProgress
from .mna import _split, _transient_mna
from .options import MIN_STEP, NewtonOptions, SaveAt
from .solution import RESULTS, Trajectory
from .stepper import AbstractAccumulator, TransientStepper, _Carry, assemble

#: The first internal step of a run, as a fraction of ``dt``.
FIRST_STEP = 1.0 / 16.0


def breakpoints(circuit: Circuit, tstop: float, dt: float) -> np.ndarray:
    """The sorted breakpoints in ``(0, tstop)`` of every source of ``circuit``; those within
    ``MIN_STEP·dt`` of an output point or of each other are one (at the output point)."""
    times = [
        w.breakpoints(tstop)
        for group in (circuit.vsources, circuit.isources)
        for w in group.waveforms
    ]
    t = np.concatenate([np.zeros((0,))] + [np.asarray(x, np.float64) for x in times])
    near = np.rint(t / dt)
    t = np.where(np.abs(t - near * dt) <= MIN_STEP * dt, near * dt, t)
    t = np.unique(t[(t > MIN_STEP * dt) & (t < tstop - MIN_STEP * dt)])
    if t.size > 1:
        t = t[np.concatenate([[True], np.diff(t) > MIN_STEP * dt])]
    return t


def _reactive(circuit: Circuit) -> list[tuple[int, str]]:
    """``(group index, letter)`` of the capacitor and inductor groups."""
    return [(k, g.letter) for k, g in enumerate(circuit.groups) if g.letter in ("C", "L")]


def state_variables(circuit: Circuit, x: Array, states: tuple) -> Array:
    """The voltage of every capacitor and the current of every inductor (from its newest
    flux, ``s(Φ)/L``), for the unknowns ``x`` and the groups' ``states``."""
    vb = _split(circuit.groups, _transient_mna(circuit).branch_voltages(x))
    parts = []
    for k, letter in _reactive(circuit):
        g = circuit.groups[k]
        parts.append(vb[k] if letter == "C" else g.law(states[k][0][0]) / g.l)
    return jnp.concatenate(parts)


def state_scale(circuit: Circuit, traj: Trajectory) -> Array:
    """``max_t`` of the magnitude of every state variable over a run on the output grid
    (``traj`` with branch currents saved), zero if that run failed."""
    vb = jax.vmap(_transient_mna(circuit).branch_voltages)(
        jnp.concatenate([traj.v, traj.i_vsrc], axis=-1)
    )
    parts = []
    for k, letter in _reactive(circuit):
        lo = sum(len(g) for g in circuit.groups[:k])
        source = vb if letter == "C" else traj.i_branch
        parts.append(jnp.max(jnp.abs(source[:, lo : lo + len(circuit.groups[k])]), axis=0))
    return jnp.where(traj.ok, jnp.concatenate(parts), 0.0)


def _state_nodes(circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """For every state variable: an unknown that names it (a node of its element), and
    whether it is a current."""
    nodes, currents = [], []
    for k, letter in _reactive(circuit):
        for a, b in circuit.groups[k].nodes:
            nodes.append(a if a >= 0 else b)
            currents.append(letter == "L")
    return np.asarray(nodes, np.int32), np.asarray(currents)


class _Loop(eqx.Module):
    """The state of the step-size loop."""

    carry: _Carry
    t: Array  # the time of the last accepted point
    h: Array  # the step to try next
    h_prev: Array  # the last accepted step
    since: Array  # accepted steps since the last (re)start; 0: the next step restarts
    zs: Array  # the last three accepted state variables, most recent first, (3, states)
    ts: Array  # their times
    corner: Array  # the index of the next breakpoint
    err: Array  # the sum of the local error estimates, per state variable
    ymax: Array  # max |z| so far, per state variable
    out: dict  # the outputs of the last accepted step
    iters: Array  # the most Newton iterations in this output step
    attempts: Array  # attempts in this output step
    accepted: Array  # accepted internal steps in all
    worst: Array  # the state variable of the largest error over tolerance in the last attempt


def _divided_difference(ts: Array, xs: Array) -> Array:
    """The divided difference ``x[t_0, …, t_k]`` of the rows of ``xs`` at times ``ts``."""
    table = list(xs)
    k = len(table)
    for level in range(1, k):
        table = [(table[i] - table[i + 1]) / (ts[i] - ts[i + level]) for i in range(k - level)]
    return table[0]


@eqx.filter_jit
def run_adaptive(
    circuit: Circuit,
    dt: Array,
    steps: int,
    kernel: AbstractKernel,
    history: AbstractHistory,
    rest: bool,
    newton: NewtonOptions,
    saveat: SaveAt,
    progress: AbstractProgress,
    accumulator: AbstractAccumulator | None,
    method: AbstractMultistep,
    rtol: float,
    atol: float,
    atol_current: float,
    corners: Array,
    max_attempts: int,
    scale: Array,
) -> Trajectory:
    """`simulate`'s run with variable internal steps (see the module notes); ``corners``
    are the breakpoints from `breakpoints`, ``max_attempts`` the attempts allowed per output
    step, ``scale`` the size of every state variable (`state_scale` of a run on the output
    grid) that the relative tolerance applies to."""
    dtype = dt.dtype
    circuit = dataclasses.replace(circuit, groups=tuple(g.check() for g in circuit.groups))
    grid = StepSetup(dt=dt, steps=steps, kernel=kernel, history=history, method=method)
    # The multistep rows are chosen by `nstep` ∈ {1, 2}: 1 restarts with backward Euler.
    base = TransientStepper(
        circuit, dataclasses.replace(grid, steps=max(steps, 2)), newton, saveat, NoProgress()
    )
    init, x0, ib0 = base.init(rest)
    mna = _transient_mna(circuit)
    if accumulator is not None:
        init = dataclasses.replace(init, acc=accumulator.init(mna.branch_voltages(x0), grid))
    names, is_current = _state_nodes(circuit)
    floor = jnp.asarray(np.where(is_current, atol_current, atol), dtype)
    p = int(method.order)
    factorial = float(np.prod(np.arange(1, p + 2)))
    total = dt * steps
    h_min = MIN_STEP * dt
    corners = jnp.concatenate([corners.astype(dtype), jnp.full((1,), jnp.inf, dtype)])

    def one(c, h, ratio, n, t):
        """One step of ``h`` ending at ``t``: ``(carry, outputs, state variables)``."""
        setup = dataclasses.replace(base.setup, dt=h, ratio=ratio)
        new, out = dataclasses.replace(base, setup=setup).step(c, jnp.asarray(n, jnp.int32), t)
        return new, out, state_variables(circuit, new.x, new.states)

    def single(s: _Loop, h, t_new):
        c, out, z = one(s.carry, h, h / s.h_prev, 2, t_new)
        points = jnp.concatenate([z[None], s.zs[: p + 1]], axis=0)
        times = jnp.concatenate([t_new[None], s.ts[: p + 1]])
        dd = _divided_difference(times, points)
        lte = method.error_constant * h ** (p + 1) * factorial * jnp.abs(dd)
        return c, out, z, lte, s.zs[0], c.result == RESULTS.successful

    def doubled(s: _Loop, h, t_new):
        unit = jnp.ones((), dtype)
        full, _, z_full = one(s.carry, h, unit, 1, t_new)
        half, _, z_mid = one(s.carry, h / 2, unit, 1, s.t + h / 2)
        c, out, z = one(half, h / 2, unit, 2, t_new)
        ok = (full.result == RESULTS.successful) & (c.result == RESULTS.successful)
        return c, out, z, jnp.abs(z_full - z), z_mid, ok

    def attempt(s: _Loop, target):
        # A breakpoint (numerically) behind us: restart there.
        passed = corners[s.corner] <= s.t + h_min
        s = dataclasses.replace(
            s,
            corner=jnp.where(passed, s.corner + 1, s.corner),
            since=jnp.where(passed, 0, s.since),
        )
        limit = jnp.minimum(target, corners[s.corner])
        remaining = limit - s.t
        h = jnp.minimum(s.h, dt)
        land = h >= remaining * (1 - 1e-12)
        # No sliver before the limit: two equal steps instead of a long and a short one.
        h = jnp.where(land, remaining, jnp.where(h > 0.5 * remaining, 0.5 * remaining, h))
        t_new = jnp.where(land, limit, s.t + h)
        restart = s.since == 0
        c, out, z, lte, z_mid, ok = jax.lax.cond(restart, doubled, single, s, h, t_new)
        finite = jnp.all(jnp.isfinite(c.x)) & jnp.all(jnp.isfinite(lte))
        ymax = jnp.maximum(s.ymax, jnp.abs(z))
        tol = (rtol * ymax + floor) * (h / total)
        ratios = jnp.where(finite, lte / tol, jnp.inf)
        r = jnp.max(ratios)
        q = jnp.where(restart, 1.0, float(p))
        factor = jnp.clip(0.9 * jnp.maximum(r, 1e-10) ** (-1.0 / q), 0.2, 2.0)
        ok = ok & finite
        accept = ok & (r <= 1.0)
        h_next = jnp.where(ok, h * factor, h / 8)
        corner_hit = accept & (t_new >= corners[s.corner])
        zs = jnp.where(restart, jnp.stack([z, z_mid, s.zs[0]]), jnp.stack([z, *s.zs[:2]]))
        ts = jnp.where(
            restart,
            jnp.stack([t_new, s.t + h / 2, s.t]),
            jnp.stack([t_new, s.ts[0], s.ts[1]]),
        )
        iters = out.get("iters", jnp.asarray(0, jnp.int32))
        taken = jnp.where(restart, 2, 1)

        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, old)

        new = _Loop(
            carry=keep(c, s.carry),
            t=keep(t_new, s.t),
            h=h_next,
            h_prev=keep(jnp.where(restart, h / 2, h), s.h_prev),
            since=jnp.where(corner_hit, 0, keep(s.since + taken, s.since)),
            zs=keep(zs, s.zs),
            ts=keep(ts, s.ts),
            corner=jnp.where(corner_hit, s.corner + 1, s.corner),
            err=keep(s.err + lte, s.err),
            ymax=keep(ymax, s.ymax),
            out=keep(out, s.out),
            iters=keep(jnp.maximum(s.iters, iters), s.iters).astype(s.iters.dtype),
            attempts=s.attempts + 1,
            accepted=s.accepted + jnp.where(accept, taken, 0),
            worst=jnp.argmax(ratios).astype(jnp.int32),
        )
        # A step that can no longer shrink (or too many tries) ends the run: the failure
        # is kept in the carry, located at a node of the element with the largest error.
        stuck = ~accept & ((h_next < h_min) | (new.attempts >= max_attempts))
        newton_failed = ~ok & (c.result != RESULTS.successful)
        code = RESULTS.where(newton_failed, c.result, RESULTS.tolerance_not_met)
        where = jnp.where(newton_failed, c.fail_index, jnp.asarray(names)[new.worst])
        carry = dataclasses.replace(
            new.carry,
            result=RESULTS.where(stuck, code, new.carry.result),
            fail_index=jnp.where(stuck, where, new.carry.fail_index).astype(jnp.int32),
        )
        return dataclasses.replace(new, carry=carry)

    def output_step(s: _Loop, nstep):
        target = nstep.astype(dtype) * dt
        zero = jnp.asarray(0, jnp.int32)
        s = dataclasses.replace(s, attempts=zero, iters=zero)

        def going(s):
            return (s.t < target) & (s.carry.result == RESULTS.successful)

        s = jax.lax.while_loop(going, lambda s: attempt(s, target), s)
        carry = s.carry
        failed_here = (carry.result != RESULTS.successful) & (carry.fail_step == 0)
        carry = dataclasses.replace(
            carry,
            fail_step=jnp.where(
                failed_here & (init.result == RESULTS.successful), nstep, carry.fail_step
            ).astype(jnp.int32),
        )
        if accumulator is not None:
            x = carry.x
            acc = accumulator.update_with_unknowns(
                carry.acc, x, mna.branch_voltages(x), nstep, grid
            )
            carry = dataclasses.replace(carry, acc=acc)
        progress.update(nstep, steps)
        out = dict(s.out)
        if "iters" in out:
            out["iters"] = s.iters
        return dataclasses.replace(s, carry=carry), out

    # The outputs' structure, from one abstract step.
    _, out_shape, _ = jax.eval_shape(lambda c: one(c, dt, jnp.ones((), dtype), 1, dt), init)
    out0 = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), out_shape)
    z0 = state_variables(circuit, x0, init.states)
    s0 = _Loop(
        carry=init,
        t=jnp.zeros((), dtype),
        h=FIRST_STEP * dt,
        h_prev=FIRST_STEP * dt,
        since=jnp.asarray(0, jnp.int32),
        zs=jnp.stack([z0, z0, z0]),
        ts=jnp.zeros((3,), dtype),
        corner=jnp.asarray(0, jnp.int32),
        err=jnp.zeros_like(z0),
        ymax=jnp.maximum(jnp.abs(z0), jnp.abs(scale).astype(dtype)),
        out=out0,
        iters=jnp.asarray(0, jnp.int32),
        attempts=jnp.asarray(0, jnp.int32),
        accepted=jnp.asarray(0, jnp.int32),
        worst=jnp.asarray(0, jnp.int32),
    )
    final, outs = jax.lax.scan(output_step, s0, jnp.arange(1, steps + 1, dtype=jnp.int32))
    estimate = jnp.max(final.err / (rtol * final.ymax + floor))
    traj = assemble(
        circuit,
        dt,
        steps,
        saveat,
        newton,
        x0,
        ib0,
        outs,
        final.carry,
        final.carry.fail_step,
        None,
        estimate,
    )
    return dataclasses.replace(traj, internal_steps=final.accepted)
