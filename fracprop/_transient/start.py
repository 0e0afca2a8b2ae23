r"""Lubich starting weights inside the circuit stepper (docs/design.md §2).

A convolution quadrature of order ``p`` keeps that order only for operands that are smooth at
``t = 0``. The node voltages of a circuit with fractional elements are not: they expand in
powers :math:`t^\gamma` with exponents :math:`\gamma = \sum_i k_i \beta_i` (``k_i ≥ 0``
integers), where the :math:`\beta_i` are the orders of its fractional operators (α for a
CPE, 1 − α for a memristor's convolutions), plus integers unless every source is a `DC`
source (constant for ``t > 0``). Each exponent below ``p`` that the quadrature does not
integrate exactly leaves an error of order :math:`h^\gamma` at the first grid points (Lubich
1986). The stepper therefore adds, to every fractional channel of order ``a``, the correction

.. math::  h^{-a} \sum_{j=1}^{M} s_{n,j}\, x_j

with `starting_weights` ``s`` for exponents below ``p`` and ``M`` starting values. The first
``M`` steps then depend on one another (step ``n < M`` involves ``x_j``, ``j > n``): they are
solved as one block (`fracprop._transient.stepper.TransientStepper.start`); every later step
uses the stored ``x_1 … x_M`` as known values.

**Which exponents, how many values** (`starting_plan`). The candidates are the exponents
below ``p`` (`singular_exponents`, the smallest `MAX_EXPONENTS`). The smallest ones are
corrected, as many as the conditioning allows: the longest prefix for which some ``M``
between its length ``m`` and ``3m`` keeps the condition number of the block's kernel matrix
``T + S`` (`block_condition`) at most `MAX_BLOCK_CONDITION` (1e6 in float64, 3e2 in float32)
for every channel order, with the smallest such ``M``; ``M`` is also at most `MAX_VALUES` and
a quarter of the steps. For ``M > m`` the weights are the minimum-norm solution of the
exactness conditions, much smaller than the square system's, and so is the block's condition
number (for α = 0.2 and its nine exponents 0.2 … 1.8: max |s| = 2.6e4, cond 9.4e9 with
``M = 9``; 2.1e2, 9.2e5 with ``M = 21``). For the fractional RC (R = C_α = 1, unit step) this
gives ``M = m`` for α ≥ 0.3 (six exponents at α = 0.3) and ``M = 21`` for α = 0.2, and in
float32 ``m = 6`` with ``M = 14`` (α = 0.2) and ``M = 11`` (α = 0.3). The bounds are
measured: in float64 Newton's iteration on a nonlinear block (a memristor whose channels have
the orders ±0.2, with a CPE) failed with the memristor's condition number at 7e6 and
converged at 3e6; in float32 the RC's error at α = 0.2 is at the round-off of the time
stepping (6e-7) up to 5.5e2 and grows beyond (2.5e-6 at 8.4e2, 6.8e-5 at 6.9e4).

**Measured** on the fractional RC against `pymittagleffler`, ``T = 4``, the largest error
over every grid point (float64), ``N = 2000 → 4000``: α = 0.2: 1.3e-9 → 4.8e-10 (order
1.44; 8.3e-8 → 4.1e-8, order 1.02, with six exponents and no extra values); α = 0.3:
2.2e-8 → 6.5e-9 (1.78); α = 0.5: 6.4e-7 → 1.7e-7 (1.91); α = 0.8: 3.7e-7 → 9.6e-8 (1.95);
α = 0.95: 4.4e-7 → 1.1e-7 (1.99). In float32 the error is now at the round-off of the time
stepping for α = 0.2 and 0.3 (6e-7 and 5e-7 at ``N = 4000``, against 6.8e-5 and 4.5e-6 with
six exponents, square).

**Why the order stays below 2 for small α.** For α = 0.2 and 0.3 the largest error is at
``t = h`` and the scheme itself converges there at order 2 only asymptotically: solving the
block in 60-digit arithmetic gives the orders 1.71, 1.78, 1.83, 1.88 (α = 0.3) and 1.39,
1.45, 1.51, 1.56 (α = 0.2, ``M = 18``) for ``N = 1000 → 2000 → … → 16000``. What is left
at ``t = h`` are the uncorrected powers :math:`t^\gamma`, γ ≥ 2 (:math:`O(h^\gamma)` each),
a series in :math:`h^\alpha` with alternating terms that decrease slowly when
:math:`h^\alpha` is not small (:math:`h^{0.2} = 0.25` at ``N = 4000``). Away from ``t = 0``
the error converges slowly too (α = 0.3, ``t = 1``: orders 1.35, 1.49, 1.60, 1.68), because
cancelling the kernel's smooth :math:`O(h^2)` error on the corrected powers with weights on
the first values leaves terms :math:`O(h^{2+\alpha})` on the uncorrected ones. Correcting
the exponents in [2, 2.5) as well makes the order at ``t = h`` 2.2 but the error at
``t = 4`` larger (α = 0.3: 7.9e-9 at ``N = 4000``, order 1.37); leaving the kernel's own
:math:`O(h^2)` error on the exponents in (1 + α, 2) after a time :math:`t_e` makes the
order about 2 but the error near :math:`t_e` larger (α = 0.3, :math:`t_e = 0.05`: 1.8e-8,
order 1.96; α = 0.2: 1.4e-8, order 1.88). Neither is used.

The weights are host precomputation from the concrete orders; this module builds them.
"""

from __future__ import annotations

import functools
import itertools
import math

import equinox as eqx
import jax
import numpy as np

from .._circuit.waveforms import DC
from .._custom_types import Array
from .._fractional.kernels import FBDF2, GL, AbstractKernel
from .._fractional.starting import exactness_system, starting_weights

#: The convergence order of each kernel's convolution quadrature on smooth operands.
KERNEL_ORDERS: dict[type, int] = {GL: 1, FBDF2: 2}

#: `singular_exponents` returns at most this many exponents (the smallest); `starting_plan`
#: decides how many of them are corrected.
MAX_EXPONENTS = 12

#: The largest condition number that `starting_plan` allows for the kernel part ``T + S`` of the
#: coupled first steps, by working precision: the round-off of the block's solution grows with
#: it (see the module notes for the measurements behind the values).
MAX_BLOCK_CONDITION = {"float64": 1e6, "float32": 3e2}

#: At most this many starting values per exponent, at most `MAX_VALUES` in all, and at most
#: the first ``1/BLOCK_FRACTION`` of the steps (at least one).
VALUES_PER_EXPONENT = 3
MAX_VALUES = 36
BLOCK_FRACTION = 4


class StartTable(eqx.Module):
    """Starting weights of one group's channels.

    ``weights[u, n, j]`` is :math:`s_{n,j+1}` for the ``u``-th distinct channel order, and
    channel ``c`` uses row ``index[c]``.
    """

    weights: Array
    index: tuple[int, ...] = eqx.field(static=True)

    @property
    def size(self) -> int:
        """``M``, the number of starting values (at least the number of exponents)."""
        return self.weights.shape[-1]

    def rows(self, n: Array) -> Array:
        """``s_{n, 1…M}`` for every channel, shape ``(channels, M)``."""
        rows = jax.lax.dynamic_index_in_dim(self.weights, n, axis=1, keepdims=False)
        return rows[np.asarray(self.index)]

    def block(self) -> Array:
        """``s_{n, j}`` for ``n, j = 1 … M`` and every channel, shape ``(channels, M, M)``."""
        m = self.size
        return self.weights[np.asarray(self.index), 1 : m + 1, :]


def singular_exponents(orders, top: float, integers: bool) -> tuple[float, ...]:
    r"""The exponents :math:`0 < \gamma < \mathrm{top}` of the form
    :math:`\sum_i k_i \beta_i + m` with ``β`` the given ``orders`` (in (0, 1]) and ``m`` an
    integer (``m = 0`` unless ``integers``), sorted, at most `MAX_EXPONENTS` (the smallest).

    Exponents that coincide to 1e-6 are one exponent (`_COINCIDE`)."""
    base = _merged(float(b) for b in orders if 0.0 < float(b) < top)
    if integers:
        base = _merged([*base, 1.0])
    found: list[float] = []
    if base:
        counts = [int(np.ceil(top / b)) for b in base]
        for ks in itertools.product(*(range(c + 1) for c in counts)):
            g = sum(k * b for k, b in zip(ks, base))
            if _COINCIDE < g < top - _COINCIDE:
                found.append(g)
    return _merged(found)[:MAX_EXPONENTS]


#: Exponents closer than this are one exponent: orders given in float32 (``0.6`` and ``3·0.2``
#: differ by 6e-8 there) would otherwise give two nearly equal exponents, whose Vandermonde
#: system is singular to working precision.
_COINCIDE = 1e-6


def _merged(values) -> tuple[float, ...]:
    """``values`` sorted, each run of values within `_COINCIDE` of the previous one kept once
    (the first), rounded to 9 digits."""
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > _COINCIDE:
            out.append(v)
    return tuple(round(v, 9) for v in out)


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
def _cached_weights(
    kernel_type: type, order: float, gammas: tuple, steps: int, values: int
) -> np.ndarray:
    """`starting_weights` of a stateless kernel, cached: learning loops call `simulate` with
    the same grid and orders many times."""
    out = starting_weights(kernel_type(), order, gammas, steps, values=values)
    out.setflags(write=False)
    return out


def block_condition(w: np.ndarray, rhs: np.ndarray, gammas: tuple, values: int) -> float:
    """The 2-norm condition number of ``T + S``, the kernel part of the coupled first steps:
    ``T`` the lower-triangular Toeplitz matrix of ``w_0 … w_{M−1}`` and ``S`` the starting
    weights ``s_{n,j}``, ``n, j = 1 … M`` (``M`` = ``values``), solved as `starting_weights`
    solves them from the kernel's weights ``w`` and the exactness right-hand sides ``rhs`` of
    the exponents ``gammas`` (`exactness_system`, at least ``M + 1`` rows)."""
    m, size = len(gammas), values
    vandermonde = np.arange(1, size + 1, dtype=np.float64)[None, :] ** np.asarray(gammas)[:, None]
    rows = rhs[1 : size + 1, :m].T
    if not (np.all(np.isfinite(rows)) and np.all(np.isfinite(vandermonde))):
        return math.inf  # no usable weights: never within a bound
    try:
        if size == m:
            s = np.linalg.solve(vandermonde, rows).T
        else:
            s = np.linalg.lstsq(vandermonde, rows, rcond=None)[0].T
    except np.linalg.LinAlgError:
        # Exponents too close together (orders near 0 or 1): a singular system.
        return math.inf
    lag = np.arange(size)[:, None] - np.arange(size)[None, :]
    toeplitz = np.where(lag >= 0, w[np.maximum(lag, 0)], 0.0)
    condition = float(np.linalg.cond(toeplitz + s))
    return condition if math.isfinite(condition) else math.inf


def max_block_condition(dtype) -> float:
    """`MAX_BLOCK_CONDITION` for the working precision ``dtype`` (10 below float32)."""
    return MAX_BLOCK_CONDITION.get(np.dtype(dtype).name, 10.0)


@functools.lru_cache(maxsize=64)
def starting_plan(
    kernel_type: type, orders: tuple, candidates: tuple, steps: int, max_condition: float
) -> tuple[tuple[float, ...], int]:
    """``(exponents, values)``: how many of the ``candidates`` (sorted) are corrected, and with
    how many starting values ``M``, for the channel ``orders`` of a run of ``steps`` steps.

    The rule: the longest prefix of ``candidates`` for which some ``M`` between its length and
    `VALUES_PER_EXPONENT` times it (at most `MAX_VALUES` and ``steps // BLOCK_FRACTION``) keeps
    `block_condition` at most ``max_condition`` for every order; with the smallest such ``M``.
    (Host precomputation: a few milliseconds, cached.)"""
    limit = min(MAX_VALUES, max(1, int(steps) // BLOCK_FRACTION))
    if not candidates:
        return (), 0
    kernel = kernel_type()
    # Rows n ≤ M do not depend on the length; one length for every run saves recompiling.
    systems = [exactness_system(kernel, a, candidates, MAX_VALUES) for a in orders]
    chosen, size = (), 0
    for m in range(1, len(candidates) + 1):
        gammas = candidates[:m]
        found = None
        for values in range(max(m, size), min(VALUES_PER_EXPONENT * m, limit) + 1):
            if all(block_condition(w, rhs, gammas, values) <= max_condition for w, rhs in systems):
                found = values
                break
        if found is None:
            break
        chosen, size = gammas, found
    return chosen, size


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
    candidates = singular_exponents(everything, float(p), integers)
    every_order = tuple(float(a) for a in np.unique(np.concatenate(list(orders.values()))))
    gammas, values = starting_plan(
        type(kernel), every_order, candidates, int(steps), max_block_condition(dtype)
    )
    tables = {}
    if not gammas:
        return tables, gammas
    for g in groups:
        o = orders[g.letter]
        distinct, index = np.unique(o, return_inverse=True)
        weights = np.stack(
            [_cached_weights(type(kernel), float(a), gammas, steps, values) for a in distinct],
            axis=0,
        )
        tables[g.letter] = StartTable(
            weights=jax.numpy.asarray(weights, dtype),
            index=tuple(int(i) for i in index.reshape(-1)),
        )
    return tables, gammas
