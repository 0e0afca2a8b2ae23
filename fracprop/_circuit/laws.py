"""Constitutive laws of the nonlinear elements.

Every nonlinear element in fracprop has the form ``y = a * s(x)``: an amplitude ``a`` (a
capacitance, an inverse inductance, a memristor's conductance) times a *shape* ``s`` with
``s(0) = 0`` and ``s'(0) = 1``. So the amplitude is always the small-signal value at the origin,
and the shape says how the element departs from linearity.

| law | s(x) | capacitor q = C s(v) | inductor i = s(Φ)/L | memristor r = g s(Ψ) |
|---|---|---|---|---|
| `Linear()` | x | linear | linear | a resistor (docs/design.md §1) |
| `Tanh(scale)` | scale·tanh(x/scale) | saturating charge | (soft: i saturates) | saturating |
| `Sinh(scale)` | scale·sinh(x/scale) | hardening | saturating core | expanding |
| `Cubic(scale)` | x·(1 + (x/scale)²) | hardening | saturating core | expanding |
| `Custom(fn)` | fn(x) | any | any | any |

The shapes act elementwise, so one law module with batched ``scale`` evaluates a whole group of
elements at once.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, ArrayLike


class AbstractLaw(eqx.Module):
    """A normalised elementwise shape ``s`` with ``s(0) = 0`` and ``s'(0) = 1``."""

    @abc.abstractmethod
    def __call__(self, x: Array) -> Array:
        """Evaluate the shape elementwise."""

    def derivative(self, x: Array) -> Array:
        """The incremental (small-signal) slope ``s'(x)``, elementwise."""
        _, dy = jax.jvp(self.__call__, (x,), (jnp.ones_like(x),))
        return dy

    def inverse(self, y: Array, iterations: int = 40) -> Array:
        """Solve ``s(x) = y`` elementwise by Newton's method (monotone shapes only).

        The result is differentiable by the implicit function theorem: the iteration runs on
        stopped gradients and one final Newton step carries the derivative.
        """
        y_const = jax.lax.stop_gradient(y)
        law_const = jax.lax.stop_gradient(self)

        def body(_, x):
            dx = (law_const(x) - y_const) / law_const.derivative(x)
            return x - jnp.clip(dx, -1e3 * (1 + jnp.abs(x)), 1e3 * (1 + jnp.abs(x)))

        x = jax.lax.fori_loop(0, iterations, body, y_const)
        x = jax.lax.stop_gradient(x)
        return x - (self(x) - y) / self.derivative(x)

    @property
    def label(self) -> str:
        return type(self).__name__.lower()

    def describe(self, i: int | None = None) -> str:
        return self.label

    def stack(self, others: list[AbstractLaw]) -> AbstractLaw:
        """Batch several laws of this class into one (parameters become vectors)."""
        return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), self, *others)


class Linear(AbstractLaw):
    """``s(x) = x``."""

    def __call__(self, x):
        return x

    def derivative(self, x):
        return jnp.ones_like(x)

    def inverse(self, y, iterations: int = 0):
        return y


def _check_scale(scale, name):
    scale = jnp.asarray(scale, dtype=float)
    if not isinstance(scale, jax.core.Tracer) and bool(jnp.any(scale <= 0)):
        raise ValueError(f"{name}(scale={scale}) must have scale > 0; pass a positive scale.")
    return scale


class Tanh(AbstractLaw):
    """``s(x) = scale · tanh(x / scale)``: saturates at ±scale."""

    scale: Array

    def __init__(self, scale: ArrayLike = 1.0):
        self.scale = _check_scale(scale, "Tanh")

    def __call__(self, x):
        return self.scale * jnp.tanh(x / self.scale)

    def inverse(self, y, iterations: int = 0):
        return self.scale * jnp.arctanh(y / self.scale)

    def describe(self, i=None):
        s = self.scale if i is None else self.scale[i]
        return f"tanh(scale={float(s):.4g})"


class Sinh(AbstractLaw):
    """``s(x) = scale · sinh(x / scale)``: grows exponentially beyond ±scale."""

    scale: Array

    def __init__(self, scale: ArrayLike = 1.0):
        self.scale = _check_scale(scale, "Sinh")

    def __call__(self, x):
        return self.scale * jnp.sinh(x / self.scale)

    def inverse(self, y, iterations: int = 0):
        return self.scale * jnp.arcsinh(y / self.scale)

    def describe(self, i=None):
        s = self.scale if i is None else self.scale[i]
        return f"sinh(scale={float(s):.4g})"


class Cubic(AbstractLaw):
    """``s(x) = x · (1 + (x / scale)²)``: a cubic hardening law."""

    scale: Array

    def __init__(self, scale: ArrayLike = 1.0):
        self.scale = _check_scale(scale, "Cubic")

    def __call__(self, x):
        return x * (1 + (x / self.scale) ** 2)

    def describe(self, i=None):
        s = self.scale if i is None else self.scale[i]
        return f"cubic(scale={float(s):.4g})"


class Custom(AbstractLaw):
    """A user-supplied elementwise shape ``fn``.

    ``fn`` must be a JAX-traceable elementwise function. The element multiplies it by its
    amplitude (for a memristor, ``r = g · fn(Ψ)``), so pass ``g=1`` to make ``fn`` the whole law.
    """

    fn: Callable[[Array], Array] = eqx.field(static=True)

    def __call__(self, x):
        return self.fn(x)

    def stack(self, others):
        return self

    @property
    def label(self):
        return f"custom({getattr(self.fn, '__name__', 'fn')})"


LAWS: dict[str, type[AbstractLaw]] = {
    "linear": Linear,
    "tanh": Tanh,
    "sinh": Sinh,
    "cubic": Cubic,
}


def law_group_key(law: AbstractLaw):
    """Laws of the same key can be stacked into one batched law."""
    if isinstance(law, Custom):
        return (Custom, law.fn)
    return (type(law),)
