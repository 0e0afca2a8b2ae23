"""The result of a transient run: `Trajectory`, its status codes and `SimulationError`."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array


class RESULTS:
    """Status codes of a `Trajectory`."""

    successful = 0
    newton_failed = 1
    nonfinite = 2
    dc_failed = 3

    messages = {
        0: "successful",
        1: "Newton's method did not converge at t={t:.6g} s (step {step}) on {where}; "
        "reduce dt, or raise max_newton (now {max_newton})",
        2: "the state became non-finite at t={t:.6g} s (step {step}) on {where}; "
        "reduce dt, or check for a parameter that makes the circuit unstable",
        3: "the DC operating point did not converge (largest update on {where}); "
        "use uic=True to start from rest, or add a resistor to ground at that node",
    }


class SimulationError(RuntimeError):
    """Raised by `simulate` with ``throw=True`` when the run did not succeed."""


class Trajectory(eqx.Module):
    """The result of `simulate`.

    **Fields**

    - ``ts``: times ``t_n = n·dt``, shape ``(steps + 1,)``, ``t = 0`` included.
    - ``v``: node voltages, shape ``(steps + 1, nodes)``; column ``k`` is ``node_names[k]``.
    - ``i_vsrc``: currents of the voltage sources (SPICE sign: into the ``+`` node).
    - ``i_branch``: branch currents ``(steps + 1, branches)`` in ``branch_names`` order, or
      ``None`` unless ``save_currents=True``.
    - ``g_branch``: incremental conductances ``∂i_b[n]/∂v_b[n]`` of every branch at the
      converged point (``save_conductances=True``; row 0 is zero), the local record of the
      time-reversed replay.
    - ``accumulated``: the state of an online accumulator, if one was given.
    - ``newton_iterations``: Newton iterations per step (only the maximum, shape ``(1,)``, when
      ``save_states=False``).
    - ``result``: a `RESULTS` code; ``fail_step`` and ``fail_index`` locate the first failure.
    """

    ts: Array
    v: Array
    i_vsrc: Array
    i_branch: Array | None
    i_isrc: Array | None
    g_branch: Array | None
    accumulated: Any
    result: Array
    fail_step: Array
    fail_index: Array
    newton_iterations: Array
    node_names: tuple[str, ...] = eqx.field(static=True)
    vsource_names: tuple[str, ...] = eqx.field(static=True)
    branch_names: tuple[str, ...] = eqx.field(static=True)
    max_newton: int = eqx.field(static=True)

    def node(self, name: str) -> Array:
        """Voltage trace of one node (ground gives zeros)."""
        key = name.lower()
        if key in ("0", "gnd"):
            return jnp.zeros_like(self.ts)
        if key not in self.node_names:
            raise KeyError(f"unknown node {name!r}; nodes are {', '.join(self.node_names)}")
        return self.v[..., self.node_names.index(key)]

    @property
    def ok(self) -> bool:
        return bool(jnp.all(self.result == RESULTS.successful))

    def _where(self, index: int) -> str:
        n = len(self.node_names)
        if index < n:
            return f"node {self.node_names[index]!r}"
        k = index - n
        if k < len(self.vsource_names):
            return f"the current of {self.vsource_names[k]}"
        return f"unknown {index}"

    def message(self) -> str:
        """A readable account of the status (first failing lane under `vmap`)."""
        result = np.asarray(self.result).reshape(-1)
        bad = np.nonzero(result != RESULTS.successful)[0]
        if bad.size == 0:
            return RESULTS.messages[0]
        lane = int(bad[0])
        code = int(result[lane])
        step = int(np.asarray(self.fail_step).reshape(-1)[lane])
        index = int(np.asarray(self.fail_index).reshape(-1)[lane])
        ts = np.asarray(self.ts)
        if ts.ndim > 1:
            ts = ts.reshape(-1, ts.shape[-1])[lane]
        t = float(ts[min(step, ts.shape[0] - 1)])
        text = RESULTS.messages[code].format(
            t=t, step=step, where=self._where(index), max_newton=self.max_newton
        )
        if result.size > 1:
            text = f"batch lane {lane}: {text}"
        return text
