r"""Time-error control of `simulate`: uniform refinement with Richardson's error estimate.

The output grid ``t_n = n·dt`` stays fixed; the run takes ``k`` internal steps of ``dt/k`` per
output step. For ``k = 1, 2, 4, …`` the controller compares the runs with ``k`` and ``2k``
internal steps at the output points. For a scheme of order ``p`` the global error of the
finer run is, to leading order (Richardson extrapolation; Hairer, Nørsett and Wanner 1993,
*Solving Ordinary Differential Equations I*, §II.4),

.. math::  e_{2k}(t_n) \approx \frac{|y_k(t_n) - y_{2k}(t_n)|}{2^p - 1},

since ``y_k − y ≈ C h^p`` and ``y_{2k} − y ≈ C (h/2)^p``. The estimate is compared per
unknown with a SPICE-style tolerance (Nagel 1975, *SPICE2*, RELTOL/VNTOL/ABSTOL): for a node
voltage ``rtol·max_t|v| + atol``, for a voltage-source current ``rtol·max_t|i| +
atol_current``, the maxima taken over the finer run. The first ``k`` whose estimate meets the
tolerance at every output point gives the result: the run with ``2k`` internal steps.

Step counts are static (history buffers and convolution weights are sized by them), so the
controller needs concrete values, and every level is compiled once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit
from .._circuit.integration import AbstractMultistep
from .._fractional.kernels import AbstractKernel
from .solution import RESULTS, Trajectory


def scheme_order(kernel: AbstractKernel, method: AbstractMultistep, circuit: Circuit) -> int:
    """The order ``p`` of the time discretisation used by Richardson's error estimate.

    Capacitors and inductors step with ``method``: backward Euler is order 1, the
    trapezoidal rule and Gear-2 order 2. For circuits with fractional elements the estimate
    uses ``p = 1`` whatever the kernel: `GL` is first order, and with `FBDF2` and Lubich
    starting weights the measured order of the largest error over the grid approaches 2
    only slowly for small orders α (1.78 for α = 0.3 and 1.44 for α = 0.2 at 2000 → 4000
    steps on the fractional RC, where it is 1.91–1.99 for α ≥ 0.5; docs/design.md §2).
    ``p = 1`` overestimates the error of a second-order run by at most a factor 3 (the safe
    side, at the cost of at most one more refinement).

    **Arguments**

    - ``kernel``: the kernel of the run (only its fractional elements use it).
    - ``method``: the multistep method of the capacitors and inductors.
    - ``circuit``: the circuit (only whether it has fractional elements matters).

    **Returns** ``1`` or ``2``.
    """
    if circuit.is_fractional:
        return 1
    return min(int(method.order), 2)


def _positive_finite(name: str, value: Any) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(
            f"{name}={value!r} must be a positive finite number, e.g. {name}=1e-3"
            if name == "rtol"
            else f"{name}={value!r} must be a positive finite number"
        )
    return float(value)


def check_control(
    rtol: Any, atol: Any, atol_current: Any, substeps: Any, max_substeps: Any
) -> tuple[float, float, float]:
    """Validate the options of the time-error control; returns ``(rtol, atol, atol_current)``.

    **Raises** `ValueError` naming the option when a tolerance is not a positive finite
    number, or ``substeps``/``max_substeps`` is not a positive integer.
    """
    rtol = _positive_finite("rtol", rtol)
    atol = _positive_finite("atol", atol)
    atol_current = _positive_finite("atol_current", atol_current)
    for name, value in (("substeps", substeps), ("max_substeps", max_substeps)):
        if value is None and name == "substeps":
            continue
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"{name}={value!r} must be a positive integer (internal steps per output "
                f"step)" + ("; or None for time-error control" if name == "substeps" else "")
            )
    if max_substeps < 2:
        raise ValueError(
            f"max_substeps={max_substeps!r} must be at least 2: the error estimate compares "
            f"runs with k and 2k internal steps. For a fixed grid pass substeps=k"
        )
    return rtol, atol, atol_current


_TRACED = (
    "simulate(substeps=None) chooses its internal step from concrete values and cannot run "
    "inside jax.jit, jax.grad or jax.vmap (dt, a circuit parameter or an input is traced "
    "here). Pass substeps=k for a fixed internal step dt/k: substeps=traj.substeps from a "
    "concrete run with the same tolerances, or substeps=1 for the plain grid t_n = n·dt"
)


def check_concrete(*trees: Any) -> None:
    """Raise `ValueError` (what to pass instead) when any leaf of ``trees`` is traced, or
    when this call is being staged by `jax.jit`."""
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(trees))
    # Under jax.jit every operation is staged, even on constants.
    traced = traced or isinstance(jnp.zeros(()) + 0, jax.core.Tracer)
    if traced:
        raise ValueError(_TRACED)


def richardson(
    coarse: Trajectory,
    fine: Trajectory,
    order: int,
    rtol: float,
    atol: float,
    atol_current: float,
) -> tuple[float, int, int]:
    """Richardson's estimate of the error of ``fine`` (twice the internal steps of
    ``coarse``) relative to its tolerance, at the output points.

    **Returns** ``(ratio, step, index)``: the largest ``error / tolerance`` over the output
    points, node voltages and voltage-source currents, and where it is (output step, unknown:
    node voltages, then voltage-source currents).
    """
    y_c = np.concatenate([np.asarray(coarse.v), np.asarray(coarse.i_vsrc)], axis=-1)
    y_f = np.concatenate([np.asarray(fine.v), np.asarray(fine.i_vsrc)], axis=-1)
    if y_f.size == 0:
        return 0.0, 0, 0
    n = fine.v.shape[-1]
    floor = np.where(np.arange(y_f.shape[-1]) < n, atol, atol_current)
    tol = rtol * np.max(np.abs(y_f), axis=0) + floor
    err = np.abs(y_c - y_f) / (2.0**order - 1.0)
    ratio = err / tol
    if not np.all(np.isfinite(ratio)):
        return math.inf, *np.unravel_index(np.argmax(~np.isfinite(ratio)), ratio.shape)
    step, index = np.unravel_index(np.argmax(ratio), ratio.shape)
    return float(ratio[step, index]), int(step), int(index)


def control(
    run: Callable[[int], Trajectory],
    *,
    order: int,
    rtol: float,
    atol: float,
    atol_current: float,
    max_substeps: int,
) -> Trajectory:
    """Refine ``k = 1, 2, 4, …`` until Richardson's estimate meets the tolerance.

    **Arguments**

    - ``run``: ``k ↦`` the `Trajectory` with ``k`` internal steps per output step.
    - ``order``: the order of the scheme (`scheme_order`).
    - ``rtol``, ``atol``, ``atol_current``: the tolerances (see the module notes).
    - ``max_substeps``: the finest level allowed.

    **Returns** the run with ``2k`` internal steps for the first ``k`` whose estimate meets the
    tolerance, with ``error_estimate`` set. When no level up to ``max_substeps`` meets it, the
    finest run, with result ``RESULTS.tolerance_not_met`` located at the worst output step and
    unknown (or the failure of that run, if Newton failed on it).
    """
    coarse, k = run(1), 1
    while True:
        fine = run(2 * k)
        ratio, step, index = math.inf, 0, 0
        if coarse.ok and fine.ok:
            ratio, step, index = richardson(coarse, fine, order, rtol, atol, atol_current)
        elif fine.ok:
            # The coarser run failed (Newton, say): no estimate; locate it there.
            step, index = int(coarse.fail_step), int(coarse.fail_index)
        if ratio <= 1.0 or 4 * k > max_substeps:
            break
        coarse, k = fine, 2 * k
    fine = dataclasses.replace(fine, error_estimate=jnp.asarray(ratio, fine.v.dtype))
    if fine.ok and ratio > 1.0:
        fine = dataclasses.replace(
            fine,
            result=RESULTS.tolerance_not_met,
            fail_step=jnp.asarray(step, jnp.int32),
            fail_index=jnp.asarray(index, jnp.int32),
        )
    return fine
