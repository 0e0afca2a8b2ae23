r"""Circuit elements, grouped by type into batched Equinox modules (struct of arrays).

Every group holds the parameters of all its elements as array leaves (so `jax.grad` reaches
them) and the topology as static tuples. A two-terminal *branch* group maps its branch voltages
``v_b = v[a] − v[b]`` to the branch currents flowing from ``a`` to ``b`` through the element;
the map is elementwise, so the incremental conductances come from one `jax.jvp`.

Transient laws on the grid ``t_n = n h`` (docs/design.md §1–§2):

* resistor ``i = g v``;
* diode ``i = IS (exp(v / (N Vt)) − 1) + gmin v`` (Shockley, SPICE's ``gmin = 1e-12`` S);
* capacitor ``q = C s(v)``, ``Σ_k a_k q_{n−k} = h Σ_k b_k i_{n−k}`` by the linear multistep
  method `StepSetup.method` (``fracprop._circuit.integration``; independent of the kernel):
  the trapezoidal rule, Gear-2 (BDF2) or backward Euler, each started by one backward-Euler
  step;
* inductor ``i = s(Φ) / L``, ``Σ_k a_k Φ_{n−k} = h Σ_k b_k v_{n−k}`` by the same method;
* fractional memristor (Kendall 2021, eqs. 12–15) ``i = ᶜD^{1−α}[r̂(I^{1−α} v)]`` with ``r̂ = g s``:
  ``Ψ_n = h^{1−α} Σ_k w^{(−(1−α))}_k v_{n−k}`` and
  ``i_n = h^{−(1−α)} Σ_k w^{(1−α)}_k (r̂(Ψ_{n−k}) − r̂(0))``;
* constant-phase element ``i = C_α ᶜD^α v``: ``i_n = C_α h^{−α} Σ_k w^{(α)}_k (v_{n−k} − v_0)``.

Every sum runs from ``k = 0``: the current step's term ``w_0 x_n`` (``w_0`` from
`AbstractKernel.first_weight`: 1 for `GL`, ``(3/2)^a`` for `FBDF2`) goes into the Newton
solve, and the history backend supplies the rest. The fractional elements start from rest
(``v = 0`` and empty history for ``t ≤ 0``). They use the kernel's weights without Lubich
starting weights, so under `FBDF2` they are first order, like `GL`, for solutions that
behave like ``t^α`` near ``t = 0``. ``fp.solve_linear_fde`` has the starting weights for
the scalar linear equation.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..._custom_types import Array
from ..._fractional.history.base import AbstractHistory
from ..._fractional.kernels import AbstractKernel
from ..integration import AbstractMultistep
from ..laws import Linear
from ..waveforms import AbstractWaveform

BOLTZMANN = 1.380649e-23


CHARGE = 1.602176634e-19


VT_27C = BOLTZMANN * (273.15 + 27.0) / CHARGE  # SPICE's default thermal voltage, 25.85 mV


GMIN = 1e-12


class StepSetup(eqx.Module):
    """What every group needs to know about the time grid: the step, the number of steps,
    the kernel and history backend of the fractional elements, and the multistep method of
    the integer-order capacitors and inductors."""

    dt: Array
    steps: int = eqx.field(static=True)
    kernel: AbstractKernel
    history: AbstractHistory
    method: AbstractMultistep
    #: Lubich starting weights of the fractional groups, by group letter
    #: (`fracprop._transient.start.StartTable`); ``None`` or empty: none.
    starting: dict | None = None
    #: ``h_n / h_{n−1}`` on a variable grid (`fracprop._transient.adaptive`), where ``dt`` is
    #: the step ``h_n`` being taken; ``None`` on a uniform grid.
    ratio: Array | None = None


class AbstractGroup(eqx.Module):
    """Elements of one type. ``nodes[k] = (a, b)`` are node indices; ground is ``-1``."""

    names: eqx.AbstractVar[tuple[str, ...]]
    nodes: eqx.AbstractVar[tuple[tuple[int, int], ...]]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def parameter_names(self) -> tuple[str, ...]:
        return tuple(
            k for k, v in vars(self).items() if k not in ("names", "nodes") and eqx.is_array(v)
        )


class AbstractBranchGroup(AbstractGroup):
    """Two-terminal elements whose current is a function of their own voltage and history."""

    #: The builder's one-letter kind of the element ("R", "D", "C", "L", "M", "P").
    letter: eqx.AbstractClassVar[str]
    #: The array fields that the builder fills, in constructor order (after names and nodes;
    #: a ``law`` field, where the class has one, comes last).
    parameters: eqx.AbstractClassVar[tuple[str, ...]]
    #: The parameter trained when a learning problem names the element without ``.param``.
    primary: eqx.AbstractClassVar[str]
    #: True for elements whose memory is a fractional convolution (they force a start from rest).
    fractional: eqx.AbstractClassVar[bool]
    #: How the element behaves at DC: "conductor", "open" or "short".
    dc: eqx.AbstractClassVar[str]

    @property
    def linear(self) -> bool:
        """True when the branch current is affine in the branch voltage at every step."""
        return isinstance(getattr(self, "law", None), Linear)

    def check(self) -> AbstractBranchGroup:
        """The group itself, with run-time checks of its traced parameters attached
        (`eqx.error_if`); the stepper calls it once per run. Default: no check."""
        return self

    def init(self, v0: Array, i0: Array | None, setup: StepSetup) -> Any:
        """Transient state at ``t = 0`` from the initial branch voltage (and current)."""
        return None

    def prepare(self, state: Any, n: Array, setup: StepSetup) -> Any:
        """Everything the current at step ``n`` needs from the past."""
        return None

    @abc.abstractmethod
    def current(self, v: Array, pre: Any, setup: StepSetup) -> Array:
        """Branch current at step ``n`` for branch voltage ``v`` (elementwise)."""

    def advance(self, state: Any, v: Array, pre: Any, n: Array, setup: StepSetup) -> Any:
        """State after step ``n`` has converged at branch voltage ``v``."""
        return state

    def block_currents(self, vb: Array, state: Any, setup: StepSetup) -> tuple[Array, Any]:
        """The currents of steps ``1 … m`` for the branch voltages ``vb`` of shape
        ``(m, len(self))``, and the state after step ``m``, starting from the state at
        ``t = 0``. The stepper solves these steps as one block when starting weights couple
        them (`fracprop._transient.start`). Default: `prepare`, `current` and `advance` step
        by step, for elements whose step ``n`` does not depend on later steps."""
        currents = []
        for k in range(vb.shape[0]):
            n = jnp.asarray(k + 1)
            pre = self.prepare(state, n, setup)
            currents.append(self.current(vb[k], pre, setup))
            state = self.advance(state, vb[k], pre, n, setup)
        return jnp.stack(currents), state

    def with_start_of(self, state: Any, final: Any) -> Any:
        """The state at ``t = 0`` given the block's stored starting values from ``final``, the
        state after the block (default: ``state``; fractional groups override it). With it,
        `prepare`, `current` and `advance` replay the block step by step."""
        return state

    def dc_current(self, v: Array) -> Array:
        """Current at DC (only for ``dc == "conductor"`` groups)."""
        raise NotImplementedError

    def limit(self, v_new: Array, v_old: Array) -> Array:
        """Newton voltage limiting (identity except for junctions)."""
        return v_new

    def row(self, k: int) -> str:
        """Parameter text of element ``k`` for listings."""
        return ""

    # -- time-reversed replay (adjoint network) ------------------------------------------
    # The replay runs in reversed step order τ = 0 … N−1 (forward step n = N − τ). Each
    # element sees its adjoint branch voltage μ and its own forward record ``g`` (the
    # incremental conductance ∂i_b[n]/∂v_b[n] at step n) and returns its adjoint current
    # ι[n] = Σ_{m ≥ n} (∂i_b[m]/∂v_b[n]) μ[m]. Static elements (resistors, diodes) use the
    # default ι = g μ; elements with memory override the four methods below.

    def adjoint_init(self, setup: StepSetup) -> Any:
        """Replay state before the first reversed step."""
        return None

    def adjoint_prepare(self, state: Any, tau: Array, setup: StepSetup) -> Any:
        """What the adjoint current at reversed step ``tau`` needs from the replay's past."""
        return None

    def adjoint_current(self, mu: Array, g: Array, pre: Any, setup: StepSetup) -> Array:
        """Adjoint current for adjoint branch voltage ``mu`` (linear in ``mu``)."""
        return g * mu

    def adjoint_advance(
        self, state: Any, mu: Array, g: Array, pre: Any, tau: Array, setup: StepSetup
    ) -> Any:
        """Replay state after reversed step ``tau``."""
        return state

    def adjoint_with_sums_of(self, state: Any, final: Any) -> Any:
        """``state`` with the accumulated adjoints of the starting terms taken from ``final``
        (a later replay state; default: ``state``). The replay of the start block needs it."""
        return state


class AbstractSourceGroup(AbstractGroup):
    """Independent sources; ``values(t)`` gives every source's value at time ``t``."""

    waveforms: eqx.AbstractVar[tuple[AbstractWaveform, ...]]

    def values(self, t: Array) -> Array:
        if not self.waveforms:
            return jnp.zeros((0,), dtype=jnp.asarray(t).dtype)
        return jnp.stack([jnp.asarray(w(t), dtype=jnp.asarray(t).dtype) for w in self.waveforms])

    def row(self, k):
        return self.waveforms[k].describe()


def tree_dtype_cast(tree, dtype):
    """Cast every floating array leaf to ``dtype``."""

    def cast(x):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)


#: Every concrete branch-group class by its ``letter``; `branch_group` fills it.
BRANCH_GROUPS: dict[str, type[AbstractBranchGroup]] = {}


def branch_group(cls: type[AbstractBranchGroup]) -> type[AbstractBranchGroup]:
    """Class decorator: register a concrete branch group under its ``letter``, so that the
    builder can compile entries of that kind and the topology checks know its DC behaviour."""
    if cls.letter in BRANCH_GROUPS:
        raise ValueError(f"two branch groups use the letter {cls.letter!r}")
    BRANCH_GROUPS[cls.letter] = cls
    return cls
