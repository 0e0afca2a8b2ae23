r"""Lubich starting weights inside the circuit stepper (docs/design.md §2).

A convolution quadrature of order ``p`` keeps that order only for operands that are smooth at
``t = 0``. The node voltages of a circuit with fractional elements are not: they expand in
powers :math:`t^\gamma` with exponents :math:`\gamma = \sum_i k_i \beta_i` (``k_i ≥ 0``
integers), where the :math:`\beta_i` are the orders of its fractional operators (α for a
CPE, 1 − α for a memristor's convolutions), plus integers unless every source is a `DC`
source (constant for ``t > 0``). Each exponent below ``p`` that the quadrature does not
integrate exactly leaves an error of order :math:`h^\gamma` at the first grid points (Lubich
1986). The stepper therefore adds, to every fractional channel of order ``a``, the correction

.. math::  h^{-a} \sum_{j=1}^{m} s_{n,j}\, x_j

with `starting_weights` ``s`` for the exponents below ``p``. The first ``m`` steps then depend
on one another (step ``n < m`` involves ``x_j``, ``j > n``): they are solved as one block
(`fracprop._transient.stepper.TransientStepper.start`); every later step uses the stored
``x_1 … x_m`` as known values.

The weights are host precomputation from the concrete orders; this module builds them.
"""

from __future__ import annotations

import functools
import itertools

import equinox as eqx
import jax
import numpy as np

from .._circuit.waveforms import DC
from .._custom_types import Array
from .._fractional.kernels import FBDF2, GL, AbstractKernel
from .._fractional.starting import starting_weights

#: The convergence order of each kernel's convolution quadrature on smooth operands.
KERNEL_ORDERS: dict[type, int] = {GL: 1, FBDF2: 2}

#: At most this many exponents: beyond it the Vandermonde system of `starting_weights` is too
#: ill-conditioned for float64 (its condition number grows geometrically with the count).
MAX_EXPONENTS = 6


class StartTable(eqx.Module):
    """Starting weights of one group's channels.

    ``weights[u, n, j]`` is :math:`s_{n,j+1}` for the ``u``-th distinct channel order, and
    channel ``c`` uses row ``index[c]``.
    """

    weights: Array
    index: tuple[int, ...] = eqx.field(static=True)

    @property
    def size(self) -> int:
        """``m``, the number of starting values."""
        return self.weights.shape[-1]

    def rows(self, n: Array) -> Array:
        """``s_{n, 1…m}`` for every channel, shape ``(channels, m)``."""
        rows = jax.lax.dynamic_index_in_dim(self.weights, n, axis=1, keepdims=False)
        return rows[np.asarray(self.index)]

    def block(self) -> Array:
        """``s_{n, j}`` for ``n, j = 1 … m`` and every channel, shape ``(channels, m, m)``."""
        m = self.size
        return self.weights[np.asarray(self.index), 1 : m + 1, :]


def singular_exponents(orders, top: float, integers: bool) -> tuple[float, ...]:
    r"""The exponents :math:`0 < \gamma < \mathrm{top}` of the form
    :math:`\sum_i k_i \beta_i + m` with ``β`` the given ``orders`` (in (0, 1]) and ``m`` an
    integer (``m = 0`` unless ``integers``), sorted, at most `MAX_EXPONENTS` (the smallest).

    Exponents that coincide to 1e-9 are one exponent."""
    base = sorted({round(float(b), 12) for b in orders if 0.0 < float(b) < top})
    if integers:
        base = sorted(set(base) | {1.0})
    found: set[float] = set()
    if base:
        counts = [int(np.ceil(top / b)) for b in base]
        for ks in itertools.product(*(range(c + 1) for c in counts)):
            g = sum(k * b for k, b in zip(ks, base))
            if 1e-9 < g < top - 1e-9:
                found.add(round(g, 9))
    return tuple(sorted(found))[:MAX_EXPONENTS]


def channel_orders(group) -> np.ndarray | None:
    """The operator order of every history channel of a fractional group (concrete), or
    ``None`` when its orders are traced."""
    try:
        alpha = np.asarray(group.alpha, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
    return np.asarray(group.channel_orders(alpha), dtype=np.float64).reshape(-1)


def base_orders(orders: np.ndarray) -> np.ndarray:
    """The nonzero operator orders' magnitudes (the β of `singular_exponents`)."""
    return np.abs(orders[orders != 0.0])


def sources_vary(circuit) -> bool:
    """Whether some independent source is not a `DC` source (then the solution has integer
    powers of ``t`` too). Decided by the sources' kinds, not their values, so that the scheme
    (and its linearity in the sources) does not depend on the values of the inputs."""
    return any(
        not isinstance(w, DC)
        for group in (circuit.vsources, circuit.isources)
        for w in group.waveforms
    )


@functools.lru_cache(maxsize=64)
def _cached_weights(kernel_type: type, order: float, gammas: tuple, steps: int) -> np.ndarray:
    """`starting_weights` of a stateless kernel, cached: learning loops call `simulate` with
    the same grid and orders many times."""
    out = starting_weights(kernel_type(), order, gammas, steps)
    out.setflags(write=False)
    return out


class StartingError(ValueError):
    """Starting weights cannot be built for this circuit (its orders are traced, or the
    kernel's order is unknown); `simulate` raises it as its `ValueError`."""


def starting_tables(
    circuit, kernel: AbstractKernel, steps: int, dtype
) -> tuple[dict[str, StartTable], tuple[float, ...]]:
    """``({group letter: StartTable}, exponents)`` for the fractional groups of ``circuit``.

    **Raises** `StartingError` when some fractional order is traced (under `jax.jit` or
    `jax.grad` with the orders among the traced arguments): the weights need concrete orders.
    """
    groups = [g for g in circuit.groups if g.fractional]
    if not groups:
        return {}, ()
    try:
        p = KERNEL_ORDERS[type(kernel)]
    except KeyError:
        raise StartingError(
            f"starting weights need the convergence order of the kernel {type(kernel).__name__}"
            f"; known: {', '.join(t.__name__ for t in KERNEL_ORDERS)}. Pass starting=False"
        ) from None
    orders = {}
    for g in groups:
        o = channel_orders(g)
        if o is None:
            raise StartingError(
                f"the starting weights of the {g.kind} ({', '.join(g.names)}) need concrete "
                "orders alpha, but they are traced here (inside jax.jit, or differentiated). "
                "Keep alpha out of the traced arguments, or pass starting=False (then the "
                "fractional elements are first order near t = 0)"
            )
        orders[g.letter] = o
    everything = np.concatenate([base_orders(o) for o in orders.values()])
    integers = sources_vary(circuit)
    gammas = singular_exponents(everything, float(p), integers)[:steps]
    tables = {}
    if not gammas:
        return tables, gammas
    for g in groups:
        o = orders[g.letter]
        distinct, index = np.unique(o, return_inverse=True)
        weights = np.stack(
            [_cached_weights(type(kernel), float(a), gammas, steps) for a in distinct], axis=0
        )
        tables[g.letter] = StartTable(
            weights=jax.numpy.asarray(weights, dtype),
            index=tuple(int(i) for i in index.reshape(-1)),
        )
    return tables, gammas
