"""The transient stepper: one implicit step per time point, driven by `lax.scan`."""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit
from .._circuit.elements.base import StepSetup
from .._circuit.integration import AbstractMultistep, Trapezoidal
from .._custom_types import Array
from .._fractional.history.base import AbstractHistory
from .._fractional.kernels import AbstractKernel
from .._progress import AbstractProgress, NoProgress
from .dc import dc_operating_point
from .mna import _concat, _split, _transient_mna
from .newton import (
    _branch_currents,
    _branch_limit,
    _converged,
    _newton,
    _stop,
    implicit_solution,
    newton_iterate,
)
from .options import NewtonOptions, SaveAt
from .solution import RESULTS, Trajectory


class _Carry(eqx.Module):
    x: Array
    states: tuple
    result: RESULTS
    fail_step: Array
    fail_index: Array
    acc: Any
    max_iters: Array


class AbstractAccumulator(eqx.Module):
    """Accumulates a quantity online during the scan (memory independent of the step count)."""

    @abc.abstractmethod
    def init(self, vb0: Array, setup: StepSetup) -> Any:
        """Accumulator state at t = 0 from the initial branch voltages."""

    @abc.abstractmethod
    def update(self, acc: Any, vb: Array, n: Array, setup: StepSetup) -> Any:
        """Fold in the converged branch voltages of step ``n``."""

    def update_with_unknowns(
        self, acc: Any, x: Array, vb: Array, n: Array, setup: StepSetup
    ) -> Any:
        """Fold in step ``n`` given also its unknowns ``x`` (node voltages, then the currents of
        the voltage sources). `simulate` calls this; the default defers to `update`."""
        return self.update(acc, vb, n, setup)


def _passed_through(body, init) -> list[bool]:
    """For each leaf of the carry ``init``: whether ``body`` returns it unchanged (traced
    once, abstractly; nothing is computed)."""
    flags: list[bool] = []

    def probe(carry):
        new, _ = body(carry, None)
        flags.extend(a is b for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(carry)))

    jax.eval_shape(probe, init)
    return flags


def _scan_steps(body, init, steps: int, checkpoint: int | None):
    """``lax.scan(body, init, None, length=steps)``, optionally rematerialised in segments.

    With ``checkpoint=k`` the first ``(steps // k)·k`` steps run as an outer scan over
    segments whose body is a `jax.checkpoint`-ed inner scan of ``k`` steps, so reverse mode
    keeps the carry at each segment boundary and recomputes one segment's residuals at a
    time. The remaining ``steps mod k`` steps run last as a plain scan (their residuals are
    no more than one segment's, and recomputing them would save nothing). The forward values
    are those of the single scan: the same step function runs on the same carries.
    """
    if checkpoint is None or checkpoint >= steps:
        return jax.lax.scan(body, init, None, length=steps)
    segments, remainder = divmod(steps, checkpoint)

    # Carry leaves that the step passes through unchanged (e.g. a history backend's weights)
    # are closed over rather than carried, so that the segment boundaries do not store them.
    leaves, treedef = jax.tree.flatten(init)
    fixed = _passed_through(body, init)
    moving = [leaf for leaf, f in zip(leaves, fixed) if not f]

    def merge(moving):
        it = iter(moving)
        return jax.tree.unflatten(treedef, [x if f else next(it) for x, f in zip(leaves, fixed)])

    def inner(moving, _):
        new, out = body(merge(moving), None)
        return [x for x, f in zip(jax.tree.leaves(new), fixed) if not f], out

    def segment(moving, _):
        return jax.lax.scan(inner, moving, None, length=checkpoint)

    # `prevent_cse=False`: the checkpointed function is a scan body, which already keeps XLA
    # from merging the recomputation with the forward pass (see `jax.checkpoint`).
    moving, outs = jax.lax.scan(
        jax.checkpoint(segment, prevent_cse=False), moving, None, length=segments
    )
    carry = merge(moving)
    outs = jax.tree.map(lambda a: a.reshape((segments * checkpoint,) + a.shape[2:]), outs)
    if remainder:
        carry, tail = jax.lax.scan(body, carry, None, length=remainder)
        outs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), outs, tail)
    return carry, outs


def _first_failure(carry: _Carry, finite: Array, converged: Array, step: Array, index: Array):
    """``(result, fail_step, fail_index)`` after a step: the first failure is kept (a
    non-finite state, else Newton's), with the step and the unknown where it happened."""
    code = RESULTS.where(
        finite,
        RESULTS.where(converged, RESULTS.successful, RESULTS.newton_failed),
        RESULTS.nonfinite,
    )
    fresh = (carry.result == RESULTS.successful) & (code != RESULTS.successful)
    result = RESULTS.where(fresh, code, carry.result)
    fail_step = jnp.where(fresh, jnp.asarray(step).astype(jnp.int32), carry.fail_step)
    fail_index = jnp.where(fresh, jnp.asarray(index).astype(jnp.int32), carry.fail_index)
    return result, fail_step, fail_index


def _block_currents(circuit: Circuit, states: tuple, setup: StepSetup, vb: Array):
    """Every branch current of the start block, shape ``(m, branches)``, for branch voltages
    ``vb`` of that shape, and every group's state after the block."""
    currents, new_states, lo = [], [], 0
    for g, state in zip(circuit.groups, states):
        i, state = g.block_currents(vb[:, lo : lo + len(g)], state, setup)
        currents.append(i.astype(vb.dtype))
        new_states.append(state)
        lo += len(g)
    return jnp.concatenate(currents, axis=1), tuple(new_states)


def _block_residual(mna, m: int, x: Array, ctx) -> Array:
    """The stacked residual of steps ``1 … m`` for the stacked unknowns ``x`` (``m·size``)."""
    circuit, states, setup, e, i_src = ctx
    xs = x.reshape(m, mna.size)
    vb = jax.vmap(mna.branch_voltages)(xs)
    currents, _ = _block_currents(circuit, states, setup, vb)
    return jax.vmap(mna.residual)(xs, currents, e, i_src).reshape(-1)


def _block_solve(mna, m: int, x: Array, ctx, f: Array) -> Array:
    """``J⁻¹ f`` with ``J`` the dense Jacobian of `_block_residual` (``m·size`` square)."""
    jac = jax.jacfwd(functools.partial(_block_residual, mna, m))(x, ctx)
    return jnp.linalg.solve(jac, f)


class TransientStepper(eqx.Module):
    """The transient stepper as a state machine: `init` gives the state at ``t = 0`` (the DC
    operating point, or rest), `step` advances it by one time step. `_run` drives it with
    `lax.scan` (`_scan_steps`); the adjoint replay (`fracprop._transient.adjoint`) runs the
    same circuit backwards with the same `StepSetup`."""

    circuit: Circuit
    setup: StepSetup
    newton: NewtonOptions = eqx.field(static=True)
    saveat: SaveAt = eqx.field(static=True)
    progress: AbstractProgress
    accumulator: AbstractAccumulator | None = None

    def _parts(self):
        circuit = self.circuit
        return (
            circuit,
            circuit.groups,
            _transient_mna(circuit),
            self.setup,
            self.setup.dt,
            self.setup.dt.dtype,
        )

    def init(self, rest: bool):
        """``(state, x0, ib0)``: the state at ``t = 0`` from rest (``rest=True``) or from the DC
        operating point, with the unknowns ``x0`` and branch currents ``ib0`` at ``t = 0``."""
        (circuit, groups, mna, setup, dt, dtype) = self._parts()
        newton, accumulator = self.newton, self.accumulator
        rtol, atol = newton.rtol, newton.atol
        # ---- initial state ----
        if rest:
            x0 = jnp.zeros((mna.size,), dtype)
            vb0 = jnp.zeros((len(mna.a),), dtype)
            i_short = None
            dc_ok, dc_finite, dc_worst = jnp.asarray(True), jnp.asarray(True), jnp.asarray(0)
            ib0 = jnp.zeros((len(mna.a),), dtype)
        else:
            xdc, dc_ok, dc_worst = dc_operating_point(
                circuit, jnp.zeros((), dtype), rtol=rtol, atol=atol
            )
            # A non-finite operating point (a NaN parameter, say) is reported as such at step 0.
            dc_finite = jnp.all(jnp.isfinite(xdc))
            dc_worst = jnp.where(dc_finite, dc_worst, jnp.argmax(~jnp.isfinite(xdc)))
            x0 = xdc[: mna.size]
            i_short = xdc[mna.size :]
            vb0 = mna.branch_voltages(x0)
            ib_parts, start_short = [], 0
            for g, v in zip(groups, _split(groups, vb0)):
                if g.dc == "conductor":
                    ib_parts.append(g.dc_current(v))
                elif g.dc == "short":
                    ib_parts.append(i_short[start_short : start_short + len(g)])
                    start_short += len(g)
                else:
                    ib_parts.append(jnp.zeros_like(v))
            ib0 = _concat(ib_parts, dtype)

        states, start_short = [], 0
        for g, v in zip(groups, _split(groups, vb0)):
            i0 = None
            if g.dc == "short" and i_short is not None:
                i0 = i_short[start_short : start_short + len(g)]
                start_short += len(g)
            states.append(g.init(v, i0, setup))

        ok0 = dc_ok
        init = _Carry(
            x=x0,
            states=tuple(states),
            result=RESULTS.where(
                ok0,
                RESULTS.successful,
                RESULTS.where(dc_finite, RESULTS.dc_failed, RESULTS.nonfinite),
            ),
            fail_step=jnp.asarray(0, jnp.int32),
            fail_index=jnp.asarray(dc_worst, jnp.int32),
            acc=None if accumulator is None else accumulator.init(vb0, setup),
            max_iters=jnp.asarray(0, jnp.int32),
        )
        return init, x0, ib0

    @property
    def block_size(self) -> int:
        """``m``, the number of first steps solved as one block (0 without starting weights)."""
        tables = self.setup.starting or {}
        return max((t.size for t in tables.values()), default=0)

    def start(self, carry: _Carry):
        """Steps ``1 … m`` as one block: with starting weights, step ``n ≤ m`` depends on the
        values of every step of the block (`fracprop._transient.start`), so Newton's method
        runs on the stacked unknowns, with the dense Jacobian of the stacked residual, and
        the implicit-function derivative of the block (`implicit_solution`). Returns the
        carry after step ``m``, the block's per-step outputs (as `step` stacks them) and its
        unknowns, shape ``(m, size)``."""
        (circuit, groups, mna, setup, dt, dtype) = self._parts()
        newton, saveat, m = self.newton, self.saveat, self.block_size
        ns = jnp.arange(1, m + 1)
        ts = ns.astype(dtype) * dt
        e = jax.vmap(circuit.vsources.values)(ts)
        i_src = jax.vmap(circuit.isources.values)(ts)
        ctx = (circuit, carry.states, setup, e, i_src)
        residual = functools.partial(_block_residual, mna, m)
        solve = functools.partial(_block_solve, mna, m)
        stopped = _stop(ctx)

        def update(x, state):
            return -solve(x, stopped, residual(x, stopped)), state, jnp.asarray(True)

        x_star, conv, iters, ratio = newton_iterate(
            update,
            jnp.tile(jax.lax.stop_gradient(carry.x), m),
            None,
            max_iter=newton.max_iter,
            rtol=newton.rtol,
            atol=newton.atol,
            single=all(g.linear for g in groups),
        )
        x = implicit_solution(residual, solve, jax.lax.stop_gradient(x_star), ctx)
        xs = x.reshape(m, mna.size)
        vb = jax.vmap(mna.branch_voltages)(xs)
        block = functools.partial(_block_currents, circuit, carry.states, setup)
        currents, states = block(vb)
        finite = jnp.all(jnp.isfinite(x))
        bad = jnp.where(
            finite,
            jnp.argmax(jnp.where(jnp.isfinite(ratio), ratio, jnp.inf)),
            jnp.argmax(~jnp.isfinite(x)),
        )
        result, fail_step, fail_index = _first_failure(
            carry, finite, conv, bad // mna.size + 1, bad % mna.size
        )
        out = {}
        if saveat.states:
            out["x"] = xs
            out["iters"] = jnp.broadcast_to(iters, (m,))
        if saveat.currents:
            out["i"] = currents
        if saveat.conductances:
            # What `step` records: the local ∂i_b[n]/∂v_b[n] with the history and the stored
            # starting values fixed. Replaying the block step by step with the block's
            # starting values gives its currents, and these conductances.
            # (One `lax.scan` over the block's steps, so that tracing does not grow with m.)
            seq = tuple(g.with_start_of(a, b) for g, a, b in zip(groups, carry.states, states))

            def record(seq, n_vb):
                n, v_n = n_vb
                pres = tuple(g.prepare(st, n, setup) for g, st in zip(groups, seq))
                local = functools.partial(_branch_currents, circuit, pres, setup)
                g_n = jax.jvp(local, (v_n,), (jnp.ones_like(v_n),))[1]
                seq = tuple(
                    g.advance(st, v, p, n, setup)
                    for g, st, v, p in zip(groups, seq, _split(groups, v_n), pres)
                )
                return seq, g_n

            _, out["g"] = jax.lax.scan(record, seq, (ns, vb))
        acc = carry.acc
        if self.accumulator is not None:

            def fold_in(acc, step):
                n, x_n, v_n = step
                return self.accumulator.update_with_unknowns(acc, x_n, v_n, n, setup), None

            acc, _ = jax.lax.scan(fold_in, acc, (ns, xs, vb))
        for k in range(m):
            self.progress.update(ns[k], setup.steps)
        new = _Carry(
            xs[-1],
            states,
            result,
            fail_step,
            fail_index,
            acc,
            jnp.maximum(carry.max_iters, iters).astype(carry.max_iters.dtype),
        )
        return new, out, xs

    def step(self, carry: _Carry, nstep, t=None):
        """One time step: Newton on the step's residual, the implicit-function derivative of
        its solution, the elements' new states, the status and the per-step outputs.

        ``nstep`` selects the multistep rows of the capacitors and inductors (and the history
        slot of the fractional elements); the step ends at ``t`` (default ``nstep·dt``)."""
        (circuit, groups, mna, setup, dt, dtype) = self._parts()
        newton, saveat, steps = self.newton, self.saveat, self.setup.steps
        max_newton, rtol, atol = newton.max_iter, newton.rtol, newton.atol
        save_states, save_currents = saveat.states, saveat.currents
        save_conductances = saveat.conductances
        linear = all(g.linear for g in groups)
        accumulator, progress = self.accumulator, self.progress
        if t is None:
            t = nstep.astype(dtype) * dt
        e = circuit.vsources.values(t)
        i_src = circuit.isources.values(t)
        pres = tuple(g.prepare(s, nstep, setup) for g, s in zip(groups, carry.states))
        c_const, pres_const = _stop(circuit), _stop(pres)
        x_star, conv, iters, worst = _newton(
            mna,
            functools.partial(_branch_currents, c_const, pres_const, setup),
            functools.partial(_branch_limit, c_const.groups),
            jax.lax.stop_gradient(carry.x),
            jax.lax.stop_gradient(e),
            jax.lax.stop_gradient(i_src),
            max_iter=max_newton,
            rtol=rtol,
            atol=atol,
            linear=linear,
        )
        x = _converged(mna, jax.lax.stop_gradient(x_star), (circuit, pres, setup, e, i_src))
        vb = mna.branch_voltages(x)
        new_states = tuple(
            g.advance(s, v, p, nstep, setup)
            for g, s, v, p in zip(groups, carry.states, _split(groups, vb), pres)
        )
        finite = jnp.all(jnp.isfinite(x))
        first_bad = jnp.argmax(~jnp.isfinite(x))
        where = jnp.where(finite, worst, first_bad)
        result, fail_step, fail_index = _first_failure(carry, finite, conv, nstep, where)
        out = {}
        if save_states:
            out["x"] = x
            out["iters"] = iters
        if save_currents or save_conductances:
            currents = functools.partial(_branch_currents, circuit, pres, setup)
            i_b, g_b = jax.jvp(currents, (vb,), (jnp.ones_like(vb),))
            if save_currents:
                out["i"] = i_b
            if save_conductances:
                out["g"] = g_b
        acc = carry.acc
        if accumulator is not None:
            acc = accumulator.update_with_unknowns(acc, x, vb, nstep, setup)
        progress.update(nstep, steps)
        new = _Carry(
            x,
            new_states,
            result,
            fail_step,
            fail_index,
            acc,
            jnp.maximum(carry.max_iters, iters).astype(carry.max_iters.dtype),
        )
        return new, out


@eqx.filter_jit
def _run(
    circuit: Circuit,
    dt: Array,
    steps: int,
    kernel: AbstractKernel,
    history: AbstractHistory,
    rest: bool,
    newton: NewtonOptions,
    saveat: SaveAt,
    progress: AbstractProgress,
    accumulator: AbstractAccumulator | None = None,
    checkpoint: int | None = None,
    substeps: int = 1,
    starting: dict | None = None,
    method: AbstractMultistep = Trapezoidal(),
) -> Trajectory:
    """The jitted run behind `simulate`: `TransientStepper` driven by `lax.scan`; ``newton``
    has its tolerances resolved.

    The output grid is ``t_n = n·dt``, ``n = 0 … steps``; the stepper takes ``substeps``
    internal steps of ``dt/substeps`` per output step (its `StepSetup` has that step and
    ``steps·substeps`` steps, for the history backends and the convolution weights). An outer
    `lax.scan` over the output steps runs the internal steps in a nested scan and keeps only
    the output points, so the stored outputs are O(steps) whatever ``substeps``. The
    ``accumulator`` is folded at the output points only, with the output step index ``n`` and
    a `StepSetup` of the output grid (``dt``, ``steps``), so that it sees the same points and
    indices whatever ``substeps``; ``progress`` counts output steps; ``checkpoint`` counts
    output steps per rematerialised segment. ``fail_step`` is the output step whose
    interval ``((n−1)·dt, n·dt]`` holds the first failing internal step.
    """
    circuit = dataclasses.replace(circuit, groups=tuple(g.check() for g in circuit.groups))
    setup = StepSetup(
        dt=dt, steps=steps, kernel=kernel, history=history, method=method, starting=starting
    )
    grid, setup = setup, _internal_setup(setup, substeps)
    # The accumulator and the progress meter act at the output points (in `output_step`).
    stepper = TransientStepper(circuit, setup, newton, saveat, NoProgress(), None)
    init, x0, ib0 = stepper.init(rest)
    mna = _transient_mna(circuit)
    if accumulator is not None:
        init = dataclasses.replace(init, acc=accumulator.init(mna.branch_voltages(x0), grid))

    def internal_step(carry_j, _):
        carry, j, iters = carry_j
        new, out = stepper.step(carry, j)
        if "iters" in out:
            iters = jnp.maximum(iters, out["iters"]).astype(iters.dtype)
        return (new, j + 1, iters), None

    def fold(carry, x, nstep):
        """The accumulator and the progress meter at output step ``nstep`` (unknowns ``x``)."""
        if accumulator is not None:
            acc = accumulator.update_with_unknowns(
                carry.acc, x, mna.branch_voltages(x), nstep, grid
            )
            carry = dataclasses.replace(carry, acc=acc)
        progress.update(nstep, steps)
        return carry

    def finish_output(carry, j, count, nstep):
        """Internal steps ``j … j + count − 1``, the last of which is output step ``nstep``."""
        iters = jnp.asarray(0, jnp.int32)
        if count > 1:
            # Every internal step but the last, keeping the most Newton iterations of them.
            (carry, j, iters), _ = jax.lax.scan(
                internal_step, (carry, j, iters), None, length=count - 1
            )
        new, out = stepper.step(carry, j)
        if count > 1 and "iters" in out:
            out["iters"] = jnp.maximum(out["iters"], iters).astype(out["iters"].dtype)
        return fold(new, new.x, nstep), out

    # The step indices ride in the carry rather than as scanned `jnp.arange(1, steps + 1)`,
    # which XLA materialises: an O(N) buffer in runs whose memory is otherwise O(1) in N.
    def output_step(carry_n, _):
        carry, nstep = carry_n
        j = (nstep - 1) * substeps + 1  # the first internal step of this output step
        new, out = finish_output(carry, j, substeps, nstep)
        return (new, nstep + 1), out

    # With starting weights the first m internal steps are one block (`TransientStepper.start`):
    # the output steps inside it are read from the block, and the output step that the block
    # ends inside is finished by its remaining internal steps.
    m = stepper.block_size
    first, head = 1, []
    if m:
        init, block, xs_block = stepper.start(init)
        inside, rest_of = divmod(m, substeps)
        picks = np.arange(1, inside + 1) * substeps - 1
        head.append({key: v[picks] for key, v in block.items()})
        for k in range(inside):  # the output points inside the block
            init = fold(init, xs_block[picks[k]], jnp.asarray(k + 1))
        first = inside + 1
        if rest_of and first <= steps:
            init, out = finish_output(
                init, jnp.asarray(m + 1), (inside + 1) * substeps - m, jnp.asarray(first)
            )
            head.append(jax.tree.map(lambda v: v[None], out))
            first += 1

    (final, _), outs = _scan_steps(
        output_step, (init, jnp.asarray(first)), steps - first + 1, checkpoint
    )
    if head:
        outs = {
            key: jnp.concatenate([*(h[key].astype(v.dtype) for h in head), v], axis=0)
            for key, v in outs.items()
        }
    fail_step = final.fail_step
    if substeps > 1:
        fail_step = (fail_step + substeps - 1) // substeps
    return assemble(circuit, dt, steps, saveat, newton, x0, ib0, outs, final, fail_step, substeps)


def assemble(
    circuit: Circuit,
    dt: Array,
    steps: int,
    saveat: SaveAt,
    newton: NewtonOptions,
    x0: Array,
    ib0: Array,
    outs: dict,
    final: _Carry,
    fail_step: Array,
    substeps: int | None,
    error_estimate: Array | None = None,
) -> Trajectory:
    """The `Trajectory` of a run from its values at ``t = 0`` and its stacked per-output-step
    outputs ``outs`` (steps ``1 … steps``)."""
    dtype = dt.dtype
    n = circuit.n_nodes
    nv = len(circuit.vsources)
    save_states, save_currents = saveat.states, saveat.currents
    save_conductances = saveat.conductances
    if save_states:
        xs = jnp.concatenate([x0[None], outs["x"]], axis=0)
        iters = jnp.concatenate([jnp.zeros((1,), outs["iters"].dtype), outs["iters"]])
    else:
        # Nothing per step is kept, so memory does not grow with the number of steps.
        xs = x0[None]
        iters = final.max_iters[None]
    i_branch = None
    if save_currents:
        i_branch = jnp.concatenate([ib0[None], outs["i"]], axis=0)
    g_branch = None
    if save_conductances:
        g_branch = jnp.concatenate([jnp.zeros_like(outs["g"][:1]), outs["g"]], axis=0)
    ts = jnp.arange(steps + 1, dtype=dtype) * dt
    i_isrc = jax.vmap(circuit.isources.values)(ts) if save_currents else None
    return Trajectory(
        ts=ts,
        v=xs[:, :n],
        i_vsrc=xs[:, n : n + nv],
        i_branch=i_branch,
        i_isrc=i_isrc,
        g_branch=g_branch,
        accumulated=final.acc,
        result=final.result,
        fail_step=fail_step,
        fail_index=final.fail_index,
        newton_iterations=iters,
        node_names=circuit.node_names,
        vsource_names=circuit.vsources.names,
        branch_names=circuit.branch_names,
        newton=newton,
        substeps=substeps,
        error_estimate=error_estimate,
    )


def _internal_setup(setup: StepSetup, substeps: int) -> StepSetup:
    """The `StepSetup` of the internal grid: ``substeps`` steps of ``dt/substeps`` per output
    step (``setup`` itself for ``substeps = 1``)."""
    if substeps == 1:
        return setup
    return dataclasses.replace(setup, dt=setup.dt / substeps, steps=setup.steps * substeps)


def check_checkpoint(checkpoint: Any, steps: int, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` unless ``checkpoint`` is ``None`` or a positive integer (steps per
    rematerialised segment); the message suggests about √steps."""
    if checkpoint is not None and (
        not isinstance(checkpoint, int | np.integer)
        or isinstance(checkpoint, bool)
        or checkpoint < 1
    ):
        raise error(
            f"checkpoint={checkpoint!r} must be None (no rematerialisation) or a positive "
            f"integer number of steps per segment, e.g. checkpoint={max(1, math.isqrt(steps))} "
            f"(about √steps for steps={steps})"
        )
