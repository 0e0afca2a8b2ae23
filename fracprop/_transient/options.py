"""What `simulate` stores (`SaveAt`) and how its Newton solves stop (`NewtonOptions`)."""

from __future__ import annotations

import math

import equinox as eqx
import numpy as np


def _check_flag(owner: str, name: str, value) -> None:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{owner}({name}={value!r}): {name} must be True or False")


class SaveAt(eqx.Module):
    """Which per-step outputs `simulate` stores in its `Trajectory`.

    **Arguments**

    - ``states``: store the node voltages, the currents of the voltage sources and the
      Newton iteration counts at every step (default ``True``). ``False`` keeps only
      ``t = 0`` (``Trajectory.v`` has one row) and the largest iteration count, for runs
      whose result is an online ``accumulator``: memory then does not grow with the number
      of steps.
    - ``currents``: also store every branch current (``Trajectory.i_branch``, shape
      ``(steps + 1, branches)``) and every current source's current
      (``Trajectory.i_isrc``), for KCL and energy checks (default ``False``).
    - ``conductances``: also store every branch's incremental conductance ``∂i_b/∂v_b`` at
      the converged point (``Trajectory.g_branch``, shape ``(steps + 1, branches)``, row 0
      zero), the record that the time-reversed replay needs (default ``False``).

    **Raises** `TypeError` if a field is not a boolean.
    """

    states: bool = eqx.field(static=True, default=True)
    currents: bool = eqx.field(static=True, default=False)
    conductances: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        for name in ("states", "currents", "conductances"):
            _check_flag("SaveAt", name, getattr(self, name))


class NewtonOptions(eqx.Module):
    """When the Newton solve of each time step stops.

    A step has converged when every update satisfies ``|Δx| ≤ rtol·|x| + atol`` and no
    junction voltage was limited; it has failed after ``max_iter`` iterations without that.

    **Arguments**

    - ``max_iter``: the most Newton iterations per step (default 50).
    - ``rtol``: relative tolerance; ``None`` (default) is 1e-10 in float64 and 1e-5 in
      float32.
    - ``atol``: absolute tolerance (volts and amperes); ``None`` (default) is 1e-13 in
      float64 and 1e-7 in float32.

    **Raises** `TypeError` if ``max_iter`` is not an integer or a tolerance not a number;
    `ValueError` if ``max_iter < 1`` or a tolerance is negative or not finite.
    """

    max_iter: int = eqx.field(static=True, default=50)
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        m = self.max_iter
        if not isinstance(m, int | np.integer) or isinstance(m, bool | np.bool_):
            raise TypeError(f"NewtonOptions(max_iter={m!r}): max_iter must be an integer")
        if m < 1:
            raise ValueError(f"NewtonOptions(max_iter={m!r}): max_iter must be at least 1")
        for name in ("rtol", "atol"):
            tol = getattr(self, name)
            if tol is None:
                continue
            if not isinstance(tol, int | float | np.integer | np.floating) or isinstance(
                tol, bool | np.bool_
            ):
                raise TypeError(
                    f"NewtonOptions({name}={tol!r}): {name} must be None (the default for "
                    "the dtype) or a number"
                )
            if not (math.isfinite(tol) and tol >= 0):
                raise ValueError(
                    f"NewtonOptions({name}={tol!r}): {name} must be a finite number ≥ 0"
                )


#: Variable internal steps (`fracprop._transient.adaptive`): the smallest internal step, as a
#: fraction of the output step ``dt``.
MIN_STEP = 1e-9
#: Variable internal steps: at most this many tries per output step for every unit of
#: ``max_substeps`` (accepted and rejected steps together).
TRIES_PER_SUBSTEP = 64
