"""Memoryless two-terminal elements: linear resistors and junction diodes."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from ..._custom_types import Array
from .base import GMIN, VT_27C, AbstractBranchGroup, branch_group


@branch_group
class Resistors(AbstractBranchGroup):
    """Linear resistors ``i = g v``. The conductance ``g`` (siemens) is the trainable leaf."""

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    g: Array
    letter: ClassVar[str] = "R"
    parameters: ClassVar[tuple[str, ...]] = ("g",)
    primary: ClassVar[str] = "g"
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "conductor"
    linear: ClassVar[bool] = True

    def current(self, v, pre, setup):
        return self.g * v

    def dc_current(self, v):
        return self.g * v

    def row(self, k):
        g = float(self.g[k])
        r = f"{1.0 / g:.6g}" if g != 0 else "inf"
        return f"R={r} ohm (g={g:.6g} S)"


def pnjlim(v_new: Array, v_old: Array, vt: Array, vcrit: Array) -> Array:
    """SPICE's junction voltage limiting (``DEVpnjlim``) for one Newton update."""
    big_step = (v_new > vcrit) & (jnp.abs(v_new - v_old) > 2 * vt)
    arg = 1 + (v_new - v_old) / vt
    from_on = jnp.where(arg > 0, v_old + vt * jnp.log(jnp.maximum(arg, 1e-300)), vcrit)
    from_off = vt * jnp.log(jnp.maximum(v_new / vt, 1e-300))
    limited = jnp.where(v_old > 0, from_on, from_off)
    return jnp.where(big_step, limited, v_new)


@branch_group
class Diodes(AbstractBranchGroup):
    """Shockley diodes ``i = IS (exp(v/(N Vt)) − 1) + gmin v``, anode ``a``, cathode ``b``.

    ``Vt`` is SPICE's thermal voltage at 27 °C and ``gmin = 1e-12`` S is SPICE's parallel
    conductance. Newton steps are limited as SPICE's ``pnjlim`` does.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    is_: Array
    n: Array
    letter: ClassVar[str] = "D"
    parameters: ClassVar[tuple[str, ...]] = ("is_", "n")
    primary: ClassVar[str] = "is_"
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "conductor"

    def _i(self, v):
        nvt = self.n * VT_27C
        # The exponent is capped far above any converged operating point; pnjlim keeps Newton
        # iterates below it, so the cap only guards against overflow to inf.
        return self.is_ * jnp.expm1(jnp.minimum(v / nvt, 200.0)) + GMIN * v

    def current(self, v, pre, setup):
        return self._i(v)

    def dc_current(self, v):
        return self._i(v)

    def limit(self, v_new, v_old):
        nvt = self.n * VT_27C
        vcrit = nvt * jnp.log(nvt / (jnp.sqrt(2.0) * self.is_))
        return pnjlim(v_new, v_old, nvt, vcrit)

    def row(self, k):
        return f"IS={float(self.is_[k]):.6g} N={float(self.n[k]):.6g}"
