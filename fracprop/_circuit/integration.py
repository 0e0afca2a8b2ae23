r"""Linear multistep methods for the integer-order capacitors and inductors.

A method approximates ``dq/dt = i`` on the grid ``t_n = n h`` by

.. math::  \sum_{k=0}^{p} a^{(n)}_k q_{n-k} = h \sum_{k=0}^{p} b^{(n)}_k i_{n-k},
           \qquad b^{(n)}_0 = 1,

with coefficient rows that may change over the first steps (the start) and are constant
from then on. The names are SPICE's ``.options method=``: ``trap`` (the trapezoidal rule,
SPICE's default), ``gear`` (BDF2, Gear's method of order 2) and ``euler`` (backward Euler).

Every method here takes a backward-Euler first step. A transient starts from rest or from
the DC operating point, where the history before ``t = 0`` is held constant, while a source
that acts from ``t = 0+`` on makes the derivative jump at ``t = 0``; the current (or
voltage) at ``t = 0`` that the trapezoidal rule would average in is the one before the jump.
A one-step start needs no value before ``t = 0`` and no derivative at ``t = 0``, and its
local error O(h²) enters once, so the method keeps its order over the whole grid for
solutions smooth on ``t ≥ 0``. SPICE does the same: ngspice's transient loop
(``dctran.c``) sets the integration order to 1 at the start of a transient and cuts it to 1
at the first time point after every breakpoint of a source.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np


class AbstractMultistep(eqx.Module):
    r"""A linear multistep method for ``d/dt``:
    ``Σ_k a^{(n)}_k q_{n−k} = h Σ_k b^{(n)}_k i_{n−k}`` with ``b^{(n)}_0 = 1``.

    ``a_rows[r]`` and ``b_rows[r]`` are the coefficients used at step ``n = r + 1``; the last
    rows are used from then on. Row ``r`` reaches back at most ``r + 1`` steps, so no value
    before ``t = 0`` enters.
    """

    #: The name that `resolve_method` and ``.options method=`` accept.
    name: eqx.AbstractClassVar[str]
    #: The order of accuracy for solutions smooth on ``t ≥ 0``.
    order: eqx.AbstractClassVar[int]
    #: ``a^{(n)}_0, a^{(n)}_1, …`` for ``n = 1, 2, …``; the last row from then on.
    a_rows: eqx.AbstractClassVar[tuple[tuple[float, ...], ...]]
    #: ``b^{(n)}_0 = 1, b^{(n)}_1, …`` for ``n = 1, 2, …``; the last row from then on.
    b_rows: eqx.AbstractClassVar[tuple[tuple[float, ...], ...]]
    #: ``C`` of the local truncation error ``C h^{p+1} x^{(p+1)}`` of one step (constant step).
    error_constant: eqx.AbstractClassVar[float]

    def variable_a(self, ratio):
        """The ``a`` row of a step ``h_n = ratio · h_{n−1}`` after the start (variable-step
        runs, `fracprop._transient.adaptive`), padded as `tables` pads it. One-step methods
        (backward Euler, the trapezoidal rule) do not depend on the ratio."""
        a, _ = self.tables()
        return jnp.asarray(a[-1], jnp.result_type(ratio)) + 0 * ratio

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, B)``: the ``a`` and the ``b`` rows, each zero-padded to its own width,
        shapes ``(rows, p_a + 1)`` and ``(rows, p_b + 1)``."""

        def pad(rows):
            width = max(len(r) for r in rows)
            return np.asarray([tuple(r) + (0.0,) * (width - len(r)) for r in rows], np.float64)

        return pad(self.a_rows), pad(self.b_rows)

    @property
    def a_lag(self) -> int:
        """``p_a``: how many past values (charges, fluxes) the method reaches back."""
        return max(len(r) for r in self.a_rows) - 1

    @property
    def b_lag(self) -> int:
        """``p_b``: how many past derivatives (currents of a capacitor, voltages of an
        inductor) the method reaches back; 0 for backward Euler and BDF2."""
        return max(len(r) for r in self.b_rows) - 1

    def __check_init__(self):
        if len(self.a_rows) != len(self.b_rows):
            raise ValueError(f"{type(self).__name__}: a_rows and b_rows differ in length")
        if not all(r[0] == 1.0 for r in self.b_rows):
            raise ValueError(f"{type(self).__name__}: every b row must start with b_0 = 1")
        for r, (ra, rb) in enumerate(zip(self.a_rows, self.b_rows)):
            if max(len(ra), len(rb)) > r + 2:
                raise ValueError(
                    f"{type(self).__name__}: row {r} (step n = {r + 1}) reaches before t = 0"
                )


class BackwardEuler(AbstractMultistep):
    r"""Backward Euler, ``q_n − q_{n−1} = h i_n`` (order 1; SPICE's ``method=euler``).

    L-stable and free of ringing; the Grünwald–Letnikov scheme of Kendall (2021) steps its
    integer-order elements with it.
    """

    name: ClassVar[str] = "euler"
    order: ClassVar[int] = 1
    error_constant: ClassVar[float] = 1 / 2
    a_rows: ClassVar[tuple[tuple[float, ...], ...]] = ((1.0, -1.0),)
    b_rows: ClassVar[tuple[tuple[float, ...], ...]] = ((1.0,),)


class Trapezoidal(AbstractMultistep):
    r"""The trapezoidal rule, ``2(q_n − q_{n−1}) = h (i_n + i_{n−1})`` (order 2; SPICE's
    default ``method=trap``), after one backward-Euler step.

    For a capacitor ``i_n = 2 (q_n − q_{n−1})/h − i_{n−1}``. A-stable but not L-stable: a
    mode much faster than ``h`` is not damped but flips sign every step (SPICE's
    "trapezoidal ringing"); ``gear`` damps it. The backward-Euler first step keeps the
    current before ``t = 0`` out of the rule (see the module documentation).
    """

    name: ClassVar[str] = "trap"
    order: ClassVar[int] = 2
    error_constant: ClassVar[float] = 1 / 12
    a_rows: ClassVar[tuple[tuple[float, ...], ...]] = ((1.0, -1.0), (2.0, -2.0))
    b_rows: ClassVar[tuple[tuple[float, ...], ...]] = ((1.0,), (1.0, 1.0))


class Gear2(AbstractMultistep):
    r"""Gear's method of order 2 (BDF2), ``(3/2) q_n − 2 q_{n−1} + (1/2) q_{n−2} = h i_n``
    (SPICE's ``method=gear`` with ``maxord=2``), after one backward-Euler step.

    L-stable. The backward-Euler start is Lubich's starting correction for ``γ = 1``: BDF2
    applied to ``z = q − q_0`` (zero for ``t ≤ 0``) is exact for ``z = t`` at every
    ``n ≥ 2`` but gives ``3/2`` instead of ``1`` at ``n = 1``, an O(h) error that a start
    whose derivative jumps at ``t = 0`` would otherwise carry.
    """

    name: ClassVar[str] = "gear"
    order: ClassVar[int] = 2
    error_constant: ClassVar[float] = 2 / 9
    a_rows: ClassVar[tuple[tuple[float, ...], ...]] = ((1.0, -1.0), (1.5, -2.0, 0.5))
    b_rows: ClassVar[tuple[tuple[float, ...], ...]] = ((1.0,), (1.0,))

    def variable_a(self, ratio):
        r"""BDF2 on a variable grid, ``ω = h_n/h_{n−1}``:
        ``((1+2ω)/(1+ω)) q_n − (1+ω) q_{n−1} + (ω²/(1+ω)) q_{n−2} = h_n i_n``, exact for
        quadratics in ``t`` (Hairer & Wanner 1996, *Solving ODEs II*, §III.5); ``ω = 1`` gives
        the constant-step row."""
        return jnp.stack([(1 + 2 * ratio) / (1 + ratio), -(1 + ratio), ratio**2 / (1 + ratio)])


#: The methods by name, with aliases.
METHODS: dict[str, type[AbstractMultistep]] = {
    "trap": Trapezoidal,
    "trapezoidal": Trapezoidal,
    "gear": Gear2,
    "bdf2": Gear2,
    "euler": BackwardEuler,
    "be": BackwardEuler,
}

#: The names of `METHODS` that SPICE's ``.options method=`` uses.
METHOD_NAMES: tuple[str, ...] = ("trap", "gear", "euler")


def resolve_method(method: AbstractMultistep | str) -> AbstractMultistep:
    """The multistep method for ``method``: an `AbstractMultistep` (returned as is) or a
    name, case-insensitive: ``"trap"`` (alias ``"trapezoidal"``), ``"gear"`` (alias
    ``"bdf2"``) or ``"euler"`` (alias ``"be"``).

    **Raises** `ValueError` for an unknown name, `TypeError` for anything else.
    """
    if isinstance(method, AbstractMultistep):
        return method
    if isinstance(method, str):
        cls = METHODS.get(method.strip().lower())
        if cls is None:
            raise ValueError(
                f"method={method!r} is not a known integration method; use one of "
                f"{', '.join(repr(m) for m in METHOD_NAMES)} (or an AbstractMultistep)"
            )
        return cls()
    raise TypeError(
        f"method={method!r} must be a name ({', '.join(repr(m) for m in METHOD_NAMES)}) or an "
        "AbstractMultistep such as Trapezoidal()"
    )
