"""The result of a transient run: `Trajectory`, its status `RESULTS` and `SimulationError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Int
from .options import MIN_STEP, TRIES_PER_SUBSTEP, NewtonOptions


class RESULTS(eqx.Enumeration):
    """The status of a `Trajectory`: ``successful``, ``newton_failed``, ``nonfinite`` or
    ``dc_failed``. Compare with ``traj.result == RESULTS.successful``; under `jax.vmap` the
    comparison gives one boolean per lane."""

    successful = "successful"
    newton_failed = (
        "Newton's method did not converge; reduce dt, or raise NewtonOptions(max_iter=...)"
    )
    nonfinite = (
        "the state became non-finite; reduce dt, or check for a parameter that makes the "
        "circuit unstable (a non-finite or negative conductance, for instance)"
    )
    dc_failed = (
        "the DC operating point did not converge; use uic=True to start from rest, or add a "
        "resistor to ground"
    )
    tolerance_not_met = (
        "the estimated time-discretisation error exceeds rtol/atol with the finest internal "
        "step allowed; pass a smaller dt, looser rtol/atol, a larger max_substeps, or "
        "substeps=k to accept a fixed grid"
    )


# Detailed messages by the integer value of each `RESULTS` item. ``{at}`` is the time and
# step, ``{where}`` the unknown, ``{max_iter}`` the Newton limit.
_DETAIL = {
    int(RESULTS.newton_failed._value): "Newton's method did not converge{at} on {where}; "
    "reduce dt, or raise NewtonOptions(max_iter=...) (now {max_iter})",
    int(RESULTS.nonfinite._value): "the state became non-finite{at} on {where}; "
    "reduce dt, or check for a parameter that makes the circuit unstable (a non-finite or "
    "negative conductance, for instance)",
    int(RESULTS.dc_failed._value): "the DC operating point did not converge (largest update "
    "on {where}); use uic=True to start from rest, or add a resistor to ground at that node",
    int(RESULTS.tolerance_not_met._value): "the estimated time-discretisation error exceeds "
    "the tolerance{at} on {where} at the finest internal step allowed (max_substeps); pass a "
    "smaller dt (TSTEP), a looser rtol, atol or atol_current (.options reltol, vntol, abstol), "
    "a larger "
    "max_substeps, or substeps=k to accept a fixed grid",
}
_N_CODES = len(RESULTS)


class SimulationError(RuntimeError):
    """Raised by `simulate` with ``throw=True`` when the run did not succeed (outside
    `jax.jit` and `jax.vmap`; inside them the error is raised by `equinox.error_if`)."""


def _where(node_names: Sequence[str], vsource_names: Sequence[str], index: int) -> str:
    n = len(node_names)
    if index < n:
        return f"node {node_names[index]!r}"
    k = index - n
    if k < len(vsource_names):
        return f"the current of {vsource_names[k]}"
    return f"unknown {index}"


def _describe(
    code: int,
    where: str,
    max_iter: int,
    step: int | None = None,
    t: float | None = None,
) -> str:
    if step is None:
        at = ""
    elif t is None:
        at = f" at step {step}"
    else:
        at = f" at t={t:.6g} s (step {step})"
    return _DETAIL[code].format(at=at, where=where, max_iter=max_iter)


class _FailureMessages(Sequence):
    """The messages of `eqx.branched_error_if` for a traced run, made on demand.

    Index ``code + K·(unknown + size·step)`` (``K`` the number of `RESULTS`) names the kind
    of failure, the unknown and the step; without steps (``steps=None``, when that index
    would overflow int32) it is ``code + K·unknown``.
    """

    def __init__(self, traj: Trajectory, size: int, steps: int | None, dt: float | None):
        self.traj, self.size, self.steps, self.dt = traj, size, steps, dt

    def __len__(self) -> int:
        return _N_CODES * self.size * (1 if self.steps is None else self.steps + 1)

    def __getitem__(self, index):
        code, rest = index % _N_CODES, index // _N_CODES
        unknown, step = rest % self.size, rest // self.size
        if code == int(RESULTS.successful._value):
            return RESULTS[RESULTS.successful]
        where = _where(self.traj.node_names, self.traj.vsource_names, unknown)
        max_iter = self.traj.newton.max_iter
        if code == int(RESULTS.dc_failed._value) or self.steps is None:
            return _describe(code, where, max_iter)
        t = None if self.dt is None else step * self.dt
        return _describe(code, where, max_iter, step, t)


def _error_if_failed(traj: Trajectory, dt: float | None = None) -> Trajectory:
    """``traj`` with a traced check that raises (via `eqx.branched_error_if`) when any lane
    failed; the message names the kind of failure, the unknown and, where the index fits
    in int32, the step (and the time when ``dt`` is known)."""
    size = len(traj.node_names) + len(traj.vsource_names)
    size = max(size, 1)
    steps = traj.ts.shape[-1] - 1
    if _N_CODES * size * (steps + 1) >= np.iinfo(np.int32).max:
        steps = None
    value = traj.result._value
    failed = traj.result != RESULTS.successful
    rest = traj.fail_index if steps is None else traj.fail_index + size * traj.fail_step
    index = jnp.where(failed, value + _N_CODES * rest, 0).astype(jnp.int32)
    return eqx.branched_error_if(traj, failed, index, _FailureMessages(traj, size, steps, dt))


class Trajectory(eqx.Module):
    """The result of `simulate`.

    Under `jax.vmap` every array field gains leading batch axes (``*batch`` below).

    **Fields**

    - ``ts``: times ``t_n = n·dt``, ``n = 0 … steps``.
    - ``v``: node voltages; column ``k`` is ``node_names[k]``. Every step with
      ``SaveAt(states=True)``; only ``t = 0`` (one row) with ``SaveAt(states=False)``.
    - ``i_vsrc``: currents of the voltage sources (SPICE sign: into the ``+`` node), at the
      same times as ``v``.
    - ``i_branch``: branch currents in ``branch_names`` order with ``SaveAt(currents=True)``,
      else ``None``.
    - ``i_isrc``: currents of the current sources with ``SaveAt(currents=True)``, else
      ``None``.
    - ``g_branch``: incremental conductances ``∂i_b[n]/∂v_b[n]`` of every branch at the
      converged point with ``SaveAt(conductances=True)`` (row 0 is zero), the local record
      of the time-reversed replay; else ``None``.
    - ``accumulated``: the state of an online accumulator, if one was given.
    - ``result``: a `RESULTS` item; ``fail_step`` and ``fail_index`` (the unknown: node
      voltages, then the currents of the voltage sources) locate the first failure.
    - ``newton_iterations``: Newton iterations per step (with ``SaveAt(states=False)`` only
      the maximum, one entry).
    - ``node_names``, ``vsource_names``, ``branch_names``: the names of the columns.
    - ``newton``: the `NewtonOptions` of the run, with its tolerances resolved.
    - ``substeps``: internal steps per output step (the internal step is ``dt/substeps``);
      chosen by the time-error control of `simulate`, or given as ``substeps=``; ``None``
      for variable internal steps (`simulate`'s control of circuits without fractional
      elements).
    - ``error_estimate``: with time-error control, the largest ratio of the estimated error
      to its tolerance over the output points, node voltages and voltage-source currents
      (Richardson's estimate, or with variable steps the sum of the local error estimates;
      see `simulate`): at most 1 when the tolerance is met. ``None`` on a fixed grid
      (``substeps=`` given).
    - ``internal_steps``: with variable internal steps, the number of accepted internal
      steps; else ``None``.
    """

    ts: Float[Array, "*batch times"]
    v: Float[Array, "*batch saved nodes"]
    i_vsrc: Float[Array, "*batch saved vsources"]
    i_branch: Float[Array, "*batch times branches"] | None
    i_isrc: Float[Array, "*batch times isources"] | None
    g_branch: Float[Array, "*batch times branches"] | None
    accumulated: Any
    result: RESULTS
    fail_step: Int[Array, "*batch"]
    fail_index: Int[Array, "*batch"]
    newton_iterations: Int[Array, "*batch saved"]
    node_names: tuple[str, ...] = eqx.field(static=True)
    vsource_names: tuple[str, ...] = eqx.field(static=True)
    branch_names: tuple[str, ...] = eqx.field(static=True)
    newton: NewtonOptions = eqx.field(static=True)
    substeps: int | None = eqx.field(static=True, default=1)
    error_estimate: Float[Array, "*batch"] | None = None
    internal_steps: Int[Array, "*batch"] | None = None

    def node(self, name: str) -> Float[Array, "*batch saved"]:
        """Voltage trace of one node (ground gives zeros)."""
        key = name.lower()
        if key in ("0", "gnd"):
            return jnp.zeros(self.v.shape[:-1], self.v.dtype)
        if key not in self.node_names:
            raise KeyError(f"unknown node {name!r}; nodes are {', '.join(self.node_names)}")
        return self.v[..., self.node_names.index(key)]

    @property
    def ok(self) -> bool:
        """Whether every lane succeeded (not under `jax.jit`)."""
        return bool(jnp.all(self.result == RESULTS.successful))

    def message(self) -> str:
        """A readable account of the status (first failing lane under `vmap`)."""
        result = np.asarray(self.result._value).reshape(-1)
        bad = np.nonzero(result != int(RESULTS.successful._value))[0]
        if bad.size == 0:
            return RESULTS[RESULTS.successful]
        lane = int(bad[0])
        code = int(result[lane])
        step = int(np.asarray(self.fail_step).reshape(-1)[lane])
        index = int(np.asarray(self.fail_index).reshape(-1)[lane])
        where = _where(self.node_names, self.vsource_names, index)
        if code == int(RESULTS.dc_failed._value):
            text = _describe(code, where, self.newton.max_iter)
        else:
            ts = np.asarray(self.ts)
            if ts.ndim > 1:
                ts = ts.reshape(-1, ts.shape[-1])[lane]
            t = float(ts[min(step, ts.shape[0] - 1)])
            text = _describe(code, where, self.newton.max_iter, step, t)
        if code == int(RESULTS.tolerance_not_met._value) and self.error_estimate is not None:
            ratio = float(np.asarray(self.error_estimate).reshape(-1)[lane])
            if self.substeps is None:
                text += (
                    f" (the internal step would fall below {MIN_STEP:g}·dt, or take more than "
                    f"{TRIES_PER_SUBSTEP}·max_substeps tries in one output step)"
                )
            else:
                step_size = float(ts[1] - ts[0]) / self.substeps
                text += (
                    f" (estimated error {ratio:.3g} times the tolerance with substeps="
                    f"{self.substeps}, internal step {step_size:.3g} s)"
                )
        if result.size > 1:
            text = f"batch lane {lane}: {text}"
        return text
