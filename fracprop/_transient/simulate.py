r"""Transient analysis: modified nodal analysis, one implicit Newton solve per step, `lax.scan`.

Unknowns at step ``n`` are the node voltages and the currents of the voltage sources
(modified nodal analysis). Every two-terminal element contributes a branch current
``i_b(v_b)`` that depends on its branch voltage and its own history; Kirchhoff's current law
at every node and the source equations ``v[a] − v[b] = E(t_n)`` form the nonlinear system

.. math::  F(x_n) = \begin{pmatrix} A^\top i(A v_n) + B\, i_V + A_I^\top I(t_n) \\
                     B^\top v_n - E(t_n) \end{pmatrix} = 0,

solved by Newton's method with SPICE's junction limiting. The Jacobian is stamped from the
incremental conductances ``di_b/dv_b``.

Differentiation: the Newton iteration runs on stopped gradients; its converged value ``x*``
carries a custom JVP, ``ẋ = −J(x*)^{-1} ∂F/∂θ · θ̇``: exactly the implicit-function-theorem
derivative, at no cost when no derivative is taken. So `jax.grad`, `jax.jacfwd` and `jax.vmap`
all work without differentiating through the loop.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit
from .._circuit.elements.base import tree_dtype_cast
from .._circuit.integration import AbstractMultistep, resolve_method
from .._circuit.topology import check_dc_loops
from .._custom_types import ScalarLike
from .._fractional.history.base import AbstractHistory
from .._fractional.history.resolve import resolve_history
from .._fractional.kernels import FBDF2, AbstractKernel
from .._progress import AbstractProgress, NoProgress
from .adaptive import breakpoints, run_adaptive, state_scale
from .control import check_concrete, check_control, control, scheme_order
from .newton import _tolerances
from .options import TRIES_PER_SUBSTEP, NewtonOptions, SaveAt
from .solution import SimulationError, Trajectory, _error_if_failed
from .start import starting_tables
from .stepper import AbstractAccumulator, _run, check_checkpoint

# Keywords that `SaveAt` and `NewtonOptions` replaced, and what to pass instead.
_REPLACED = {
    "save_states": "saveat=SaveAt(states=...)",
    "save_currents": "saveat=SaveAt(currents=...)",
    "save_conductances": "saveat=SaveAt(conductances=...)",
    "max_newton": "newton=NewtonOptions(max_iter=...)",
}


def _check_keywords(removed: dict[str, Any]) -> None:
    for name in removed:
        if name in _REPLACED:
            raise TypeError(f"simulate() no longer takes {name}=; pass {_REPLACED[name]}")
        raise TypeError(f"simulate() got an unexpected keyword argument {name!r}")


def simulate(
    circuit: Circuit,
    *,
    dt: ScalarLike,
    steps: int,
    kernel: AbstractKernel = FBDF2(),
    method: AbstractMultistep | str = "trap",
    history: AbstractHistory | str = "auto",
    starting: bool = True,
    uic: bool = False,
    inputs: dict[str, Any] | None = None,
    throw: bool = True,
    saveat: SaveAt = SaveAt(),
    newton: NewtonOptions = NewtonOptions(),
    accumulator: AbstractAccumulator | None = None,
    progress: AbstractProgress = NoProgress(),
    dtype: Any = None,
    checkpoint: int | None = None,
    share_orders: bool = True,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    atol_current: float = 1e-12,
    substeps: int | None = None,
    max_substeps: int = 64,
    **removed: Any,
) -> Trajectory:
    """Transient analysis of ``circuit``, output on the uniform grid ``t_n = n·dt``,
    ``n = 0 … steps``, with control of the time-discretisation error.

    **Arguments**

    - ``circuit``: a `Circuit` (from `CircuitBuilder` or `parse_netlist`).
    - ``dt``: the time step in seconds (may be a traced array); ``steps``: number of steps
      (static).
    - ``kernel``: convolution quadrature of the fractional operators (CPEs, memristors):
      `FBDF2` (default, fractional BDF2, second order with starting weights) or `GL`
      (Grünwald–Letnikov, first order: the scheme of Kendall 2021).
    - ``starting``: Lubich starting weights for the fractional elements (default ``True``):
      the first steps are solved as one coupled block and every later step is corrected, so
      that the scheme keeps its order from the first step on for the ``t^α`` start of a
      fractional circuit (`fracprop._transient.start`, docs/design.md §2). They are computed
      from the concrete orders α; with traced α (α differentiated, or inside `jax.jit`) pass
      ``starting=False``, which is first order near ``t = 0`` (O(h^α) at the first step).
    - ``method``: the linear multistep method of the integer-order capacitors and inductors,
      as SPICE's ``.options method=``: ``"trap"`` (default, the trapezoidal rule, as in
      ngspice), ``"gear"`` (Gear-2, i.e. BDF2) or ``"euler"`` (backward Euler), or an
      `AbstractMultistep` (`resolve_method`). Each starts with one backward-Euler step, so
      ``"trap"`` and ``"gear"`` are second order on circuits of C, L, R and sources (from
      rest or from the DC operating point) as long as the sources are smooth for ``t > 0``.
      On a fixed grid (``substeps=k``) a source corner at some ``t > 0`` makes their error
      O(dt) after it; with variable steps (the default for circuits without fractional
      elements) every corner of a PULSE or PWL source is a breakpoint where a step ends and
      the method restarts with a backward-Euler step, as in SPICE. The trapezoidal rule does
      not damp modes much faster than the step (they flip sign every step); ``"gear"`` and
      ``"euler"`` do.
    - ``history``: the history backend: an `AbstractHistory` or one of ``"auto"`` (default:
      `Exact` up to 1024 steps, beyond that `SOE` for the `GL` kernel and `HLS` for any
      other), ``"exact"``, ``"dense"``, ``"hls"``, ``"soe"`` (see `resolve_history`).
    - ``uic``: start from rest instead of the DC operating point (SPICE's UIC). Circuits with
      fractional elements (memristors, CPEs) always start from rest: all voltages, currents
      and histories are zero for ``t ≤ 0``, and the sources act from the first step on.
    - ``inputs``: optional ``{source name: waveform or array}``; arrays of length
      ``steps + 1`` become `Sampled` sources on this grid. Batch with `jax.vmap` over them.
    - ``throw``: raise if the run fails. Outside `jax.jit` and `jax.vmap` this is a
      `SimulationError` naming the time, step and node and what to change; inside them it is
      the runtime error of `equinox.error_if` (under `jax.vmap`: if any lane failed), whose
      message names the kind of failure, the unknown and the step. Under `vmap`, pass
      ``throw=False`` to read ``Trajectory.result`` per lane instead.
    - ``saveat``: a `SaveAt` saying what to store at every step: node voltages
      (``states``, default on), branch currents (``currents``), incremental conductances
      (``conductances``).
    - ``newton``: a `NewtonOptions` with the Newton limits (``max_iter``, ``rtol``,
      ``atol``).
    - ``accumulator``: an `AbstractAccumulator` folded over the run.
    - ``progress``: a progress meter, e.g. `TextProgress()` (off by default).
    - ``dtype``: floating dtype of the run (default: JAX's default float).
    - ``checkpoint``: ``None`` (default) or a number of steps ``k``: rematerialise the time
      scan for reverse-mode differentiation in segments of ``k`` steps (`jax.checkpoint`).
      Without it, `jax.grad` stores every step's residuals, memory ~ N·R. With it, reverse
      mode stores the scan state at the ``⌊N/k⌋`` segment boundaries plus one segment's
      residuals, memory ~ (N/k)·S + k·R (S the part of the state that changes from step to
      step: unknowns and history buffers, not constant weights; R the residuals of one step),
      smallest near ``k ≈ √(N·S/R)``. It costs one extra forward pass in reverse mode (each
      segment is run again before its backward pass). Measured on the benchmark network
      (float64, N = 2048, CPU; ``benchmarks/gradients.py``): `jax.grad` 146 MB → 14.8 MB of
      temporary memory with k = 64, 1.41 s → 2.00 s (the forward pass: 0.89 s). The forward
      values are unchanged (the same step on the same carries; bitwise in the CPU tests),
      and a run that is not
      differentiated recomputes nothing. A ``k ≥ steps`` is ``None``. The per-step outputs
      chosen by ``saveat`` are still stored: pass ``saveat=SaveAt(states=False)`` with an
      ``accumulator`` for memory ~ (N/k + k).
      With a progress meter, the recomputed segments report their steps again.
    - ``share_orders``: fractional elements of equal order α share one set of convolution
      weights (`Circuit.share_orders`), when their α are concrete here (not traced), so
      that they cannot be differentiated in this call. ``False`` gives every element its
      own weights; the results agree to round-off.
    - ``substeps``: ``None`` (default): time-error control, so that the output points are
      within the tolerances below (docs/design.md §2):

      - circuits without fractional elements take **variable internal steps** of at most
        ``dt`` that end at every output point and at every breakpoint of a source (PULSE
        and PWL corners), chosen from a divided-difference estimate of the local truncation
        error of the capacitor voltages and inductor currents, with at most ``(h/T)·tol``
        per step of length ``h`` (``T = steps·dt``), so that the summed local errors,
        ``Trajectory.error_estimate`` (at most 1), stay within the tolerance
        (`fracprop._transient.adaptive`; ``Trajectory.internal_steps`` counts the steps,
        ``Trajectory.substeps`` is ``None``). A circuit with no capacitor or inductor is
        exact on the output grid and is run on it. The scale ``max_t|y|`` of the relative
        tolerance comes from a first run on the output grid.
      - circuits with fractional elements keep a uniform internal grid (their convolution
        weights need it): ``k`` internal steps of ``dt/k`` per output step, for
        ``k = 1, 2, 4, …``; Richardson's estimate ``|y_k − y_2k| / (2^p − 1)`` (``p`` from
        `scheme_order`: 1 for a circuit with fractional elements; 2 for ``"trap"`` and
        ``"gear"``, 1 for ``"euler"`` otherwise) of the error of the finer run at the output
        points is compared with the tolerance, and the first level that meets it gives the
        result: the run with ``2k`` internal steps (``Trajectory.substeps``, and
        ``Trajectory.error_estimate``, the largest estimated error over tolerance, at most
        1). This costs at least two runs, up to ``2·max_substeps`` times the work of one, and
        compiles each level once.

      Either needs concrete values: inside `jax.jit`, `jax.grad` or `jax.vmap` pass an
      integer ``substeps=k``: no control, a fixed internal step ``dt/k`` (e.g.
      ``traj.substeps`` of a concrete run; ``substeps=1`` is the plain grid).
      Outputs (states, currents, conductances, ``ts``) are kept at the output points only
      (conductances and Newton iterations: those of the last internal step before the
      point, and the most iterations since the previous one);
      the ``accumulator`` is folded at the output points (with the output step index and a
      `StepSetup` of the output grid); ``checkpoint`` and ``progress`` count output steps;
      sampled ``inputs`` are interpolated linearly between their samples at the internal
      times (`Sampled`).
    - ``rtol``, ``atol``, ``atol_current``: the tolerances of the time-error control (SPICE's
      RELTOL, VNTOL and ABSTOL): a node voltage must be within ``rtol·max_t|v| + atol``
      volts, a voltage-source current within ``rtol·max_t|i| + atol_current`` amperes, at
      every output point (the maxima over the run). Newton's tolerances are
      ``NewtonOptions(rtol=..., atol=...)``.
    - ``max_substeps``: with a uniform internal grid, the finest internal step of the
      control is ``dt/max_substeps`` (default 64); with variable steps, at most
      ``64·max_substeps`` tries (accepted and rejected steps) per output step, and no step
      below ``1e-9·dt``. When that does not meet the tolerance, the result is
      ``RESULTS.tolerance_not_met`` at the output step and unknown of the largest estimated
      error (with ``throw=True`` a `SimulationError` naming them).

    **Returns** a `Trajectory`.

    **Raises** `SimulationError` (outside `jax.jit`/`jax.vmap`; inside them equinox's runtime
    error) when ``throw=True`` and Newton fails, the state becomes non-finite, the DC
    operating point does not converge, or the time-error control does not meet its
    tolerance at ``max_substeps``; `ValueError` for bad arguments (an unknown ``method``, a
    tolerance that is not positive and finite, ``substeps`` not a positive integer,
    ``substeps=None`` with traced values or with ``SaveAt(states=False)``, starting weights
    with traced orders α); `TypeError` for an argument of the wrong type, or
    a keyword that `SaveAt` or `NewtonOptions` replaced (``save_states``, ``save_currents``,
    ``save_conductances``, ``max_newton``), naming what to pass instead.
    """
    _check_keywords(removed)
    method = resolve_method(method)
    if not isinstance(circuit, Circuit):
        raise TypeError(f"simulate expects a Circuit; got {type(circuit).__name__}")
    if not isinstance(saveat, SaveAt):
        raise TypeError(
            f"saveat={saveat!r} must be a SaveAt, e.g. SaveAt(states=True, currents=True)"
        )
    if not isinstance(newton, NewtonOptions):
        raise TypeError(
            f"newton={newton!r} must be a NewtonOptions, e.g. NewtonOptions(max_iter=100)"
        )
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    check_checkpoint(checkpoint, steps)
    rtol_t, atol_t, atol_i = check_control(rtol, atol, atol_current, substeps, max_substeps)
    if substeps is None:
        if not saveat.states:
            raise ValueError(
                "substeps=None (time-error control) compares the node voltages at every output "
                "point, which SaveAt(states=False) does not keep; pass substeps=k for a fixed "
                "internal step dt/k (substeps=1: the plain grid)"
            )
        check_concrete(dt, circuit, inputs)
    if dtype is None:
        dtype = jnp.result_type(float)
    if isinstance(dt, int | float | np.floating) and not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt!r} must be a positive finite number of seconds")
    # The step in seconds when it is known here, for the time in traced error messages.
    dt_known = None
    if not isinstance(dt, jax.core.Tracer) and np.ndim(dt) == 0:
        dt_known = float(dt)
    dt = jnp.asarray(dt, dtype=dtype)
    if inputs:
        for name, value in inputs.items():
            if not isinstance(value, eqx.Module):
                shape = jnp.shape(value)
                if shape != (steps + 1,):
                    raise ValueError(
                        f"inputs[{name!r}] has shape {shape}; a sampled input needs one value "
                        f"per time point, shape ({steps + 1},) for steps={steps}"
                    )
        circuit = circuit.with_sources(inputs, dt=dt)
    circuit = tree_dtype_cast(circuit, dtype).share_orders(share_orders)
    rest = bool(uic) or circuit.is_fractional
    if not rest:
        check_dc_loops(circuit)
    rtol, atol = _tolerances(dtype, newton.rtol, newton.atol)
    newton = NewtonOptions(max_iter=int(newton.max_iter), rtol=float(rtol), atol=float(atol))
    saveat = SaveAt(
        states=bool(saveat.states),
        currents=bool(saveat.currents),
        conductances=bool(saveat.conductances),
    )
    steps, checkpoint = int(steps), None if checkpoint is None else int(checkpoint)

    def run(k: int, saveat: SaveAt = saveat, pilot: bool = False) -> Trajectory:
        tables = None
        if starting and circuit.is_fractional:
            tables, _ = starting_tables(circuit, kernel, steps * k, dtype)  # StartingError
        return _run(
            circuit,
            dt,
            steps,
            kernel,
            resolve_history(history, kernel, steps * k),
            rest,
            newton,
            saveat,
            NoProgress() if pilot else progress,
            None if pilot else accumulator,
            checkpoint,
            k,
            tables,
            method,
        )

    if substeps is None and not circuit.is_fractional:
        if not any(g.letter in ("C", "L") for g in circuit.groups):
            # Nothing integrates over time: every step is exact, whatever its size.
            traj = dataclasses.replace(run(1), error_estimate=jnp.zeros((), dtype))
        else:
            tstop = float(dt) * steps
            # The size of every unknown, which the relative tolerance applies to, from a run
            # on the output grid (the error-per-unit-step criterion needs it from t = 0 on).
            pilot = run(1, SaveAt(states=True, currents=True), pilot=True)
            scale = state_scale(circuit, pilot)
            traj = run_adaptive(
                circuit,
                dt,
                steps,
                kernel,
                resolve_history(history, kernel, steps),
                rest,
                newton,
                saveat,
                progress,
                accumulator,
                method,
                rtol_t,
                atol_t,
                atol_i,
                jnp.asarray(breakpoints(circuit, tstop, float(dt)), dtype),
                TRIES_PER_SUBSTEP * int(max_substeps),
                scale,
            )
    elif substeps is None:
        traj = control(
            run,
            order=scheme_order(kernel, method, circuit),
            rtol=rtol_t,
            atol=atol_t,
            atol_current=atol_i,
            max_substeps=int(max_substeps),
        )
    else:
        traj = run(int(substeps))
    if throw:
        if traj.result.is_traced():
            # Under jit/vmap: a runtime check inside the traced computation.
            traj = _error_if_failed(traj, dt_known)
        elif not traj.ok:
            raise SimulationError(traj.message())
    return traj
