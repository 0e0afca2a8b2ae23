r"""Gradient estimators with one call signature: ``estimator(problem, params, inputs, targets)``.

Each returns a pytree with the structure of ``problem.params()`` (so optax can use it), works
under `jax.jit` and `jax.vmap`, and averages over a leading batch axis of the data.

Two-phase local rules (`EP`, `CoupledLearning`, `Replay`) estimate gradients with respect to
linear-resistor conductances (the synapses); `Autodiff` and `FiniteDifference` handle any
parameter. See docs/design.md §5 for what each rule computes and where it can be trusted.
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._circuit.circuit import Circuit
from .._circuit.elements.base import StepSetup
from .._circuit.elements.multistep import Capacitors, multistep_rate
from .._circuit.elements.sources import ISources, VSources
from .._circuit.elements.static import Resistors
from .._circuit.integration import AbstractMultistep
from .._circuit.laws import Linear
from .._circuit.waveforms import AbstractWaveform, Sampled, sample_position
from .._custom_types import Array
from .._fractional.history.base import AbstractHistory
from .._transient.adjoint import replay
from .._transient.options import SaveAt
from .._transient.start import starting_tables
from .._transient.stepper import AbstractAccumulator
from .base import AbstractEstimator
from .problem import LearningError, LearningProblem


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def _check_positive(who: str, name: str, value) -> None:
    if not (_is_number(value) and float(value) > 0):
        raise LearningError(f"{who} {name}={value!r} must be a positive number")


def _check_order(who: str, order) -> None:
    if not (_is_number(order) and 0 <= float(order) <= 1):
        raise LearningError(
            f"{who} order={order!r} is not a recognised contrast order: it must lie in [0, 1] "
            "(0 pointwise, 0.5 the contrast of Kendall 2021)"
        )


def _synapse_branches(problem: LearningProblem) -> np.ndarray:
    """Branch index of every element of every resistor group (in group order)."""
    idx, start = [], 0
    for g in problem.circuit.groups:
        if isinstance(g, Resistors):
            idx.extend(range(start, start + len(g)))
        start += len(g)
    return np.asarray(idx, dtype=np.int32)


def _branch_grads_to_params(problem: LearningProblem, params, per_branch: jax.Array):
    """Scatter a per-resistor-branch gradient into the structure of ``params``."""
    grads = jax.tree.map(jnp.zeros_like, params)
    pos = 0
    for gi, g in enumerate(problem.circuit.groups):
        if isinstance(g, Resistors):
            chunk = per_branch[pos : pos + len(g)]
            pos += len(g)
            if getattr(grads.groups[gi], "g", None) is not None:
                grads = eqx.tree_at(lambda c, gi=gi: c.groups[gi].g, grads, chunk)
    return grads


# ----------------------------------------------------------------------------------- contrasts
class _Contrast(AbstractAccumulator):
    """Q_l = Σ_{n=1}^{N} dt c_l[n]², c = I^γ v_l on the synapse branches, accumulated online.

    γ = 0 keeps only the running sum (memory independent of N). γ > 0 needs the history of
    ``v_l``, kept by the problem's history backend.
    """

    branches: tuple[int, ...] = eqx.field(static=True)
    order: float = eqx.field(static=True)
    history: AbstractHistory

    def init(self, vb0, setup: StepSetup):
        q = jnp.zeros((len(self.branches),), vb0.dtype)
        if self.order == 0.0:
            return q
        # Every branch has the same order −γ: one set of weights for all of them.
        orders = jnp.full((1,), -self.order, vb0.dtype)
        classes = (0,) * len(self.branches)
        hist = setup.history.init(setup.kernel, orders, setup.steps, classes)
        hist = setup.history.push(hist, jnp.asarray(0), vb0[np.asarray(self.branches)])
        return q, hist

    def update(self, acc, vb, n, setup):
        v = vb[np.asarray(self.branches)]
        if self.order == 0.0:
            return acc + setup.dt * v**2
        q, hist = acc
        w0 = setup.kernel.first_weight(jnp.asarray(-self.order, v.dtype))
        c = setup.dt**self.order * (w0 * v + setup.history.history(hist, n))
        return q + setup.dt * c**2, setup.history.push(hist, n, v)


def _q(acc, order):
    return acc if order == 0.0 else acc[0]


class _SampledRow(AbstractWaveform):
    """Row ``row`` of ``scale · values`` as a `Sampled` waveform, without copying the row.

    `Sampled` holds a 1-D array, so handing it ``values[k]`` (or ``β·values[k]``) makes a copy
    of every sampled input and target inside a jitted estimator: an O(N) temporary per source.
    This waveform indexes the whole 2-D array (the estimator's argument buffer) at the step's
    sample instead, with the same linear interpolation as `Sampled`.
    """

    values: Array  # (rows, N + 1)
    dt: Array
    scale: Array
    row: int = eqx.field(static=True)

    def __call__(self, t):
        k, k1, frac = sample_position(t, self.dt, self.values.shape[1])
        lo, hi = self.values[self.row, k], self.values[self.row, k1]
        return self.scale * (lo + frac * (hi - lo))

    def describe(self):
        return f"SAMPLED(row {self.row} of {self.values.shape}, dt={float(self.dt):.6g})"


def _rows(values: Array, dt, scale=1.0) -> tuple[_SampledRow, ...]:
    """One `_SampledRow` per row of ``values``, all sharing the one array."""
    dtype = values.dtype
    dt, scale = jnp.asarray(dt, dtype), jnp.asarray(scale, dtype)
    return tuple(_SampledRow(values, dt, scale, k) for k in range(values.shape[0]))


def _with_targets(
    circuit: Circuit, outputs, targets, dt, kind: str, strength, method: AbstractMultistep
) -> Circuit:
    """Couple every output to its target by a nudge element of strength ``strength``.

    See docs/design.md §5.

    Written in Norton form, so no node is added: a resistor ``S`` from the output to a target
    voltage ``T`` is a conductance ``S`` to ground plus an injected current ``S·T``; a
    capacitor ``S`` to ``T`` (from rest, stepped like `Capacitors` by the multistep
    ``method``) is a capacitor ``S`` to ground plus an injected current ``S·(dT/dt)[n]``,
    the same multistep derivative of ``T`` (`multistep_rate`) with ``T[0]`` taken as 0 (the
    run starts from rest). The method is linear, so the capacitor's current splits exactly
    into these two parts, past currents of the trapezoidal rule included.
    The new groups go after the existing ones, so branch and node indices are unchanged.
    """
    k_out = len(outputs)
    names = tuple(f"__nudge_{k}" for k in range(k_out))
    pairs = tuple((circuit.node_names.index(o), -1) for o in outputs)
    values = jnp.full((k_out,), strength)
    if kind == "resistor":
        nudge = Resistors(names, pairs, values)
        drive = _rows(targets, dt, strength)  # reads the targets in place
    else:
        nudge = Capacitors(names, pairs, values, Linear())
        rate = multistep_rate(targets.at[:, 0].set(0.0), method, dt)
        drive = _rows(rate, dt, strength)
    isrc = circuit.isources
    sources = ISources(
        isrc.names + tuple(f"__IT{k}" for k in range(k_out)),
        isrc.nodes + tuple((-1, circuit.node_names.index(o)) for o in outputs),
        isrc.waveforms + drive,
    )
    return Circuit(
        circuit.node_names, circuit.groups + (nudge,), circuit.vsources, sources, circuit.title
    )


def _with_clamps(circuit: Circuit, outputs, values, dt) -> Circuit:
    """Hold every output node at the sampled voltage ``values[k]`` with a voltage source."""
    vs = circuit.vsources
    sources = VSources(
        vs.names + tuple(f"__VC{k}" for k in range(len(outputs))),
        vs.nodes + tuple((circuit.node_names.index(o), -1) for o in outputs),
        vs.waveforms + tuple(Sampled(values[k], dt) for k in range(len(outputs))),
    )
    return Circuit(circuit.node_names, circuit.groups, sources, circuit.isources, circuit.title)


# ----------------------------------------------------------------------------------------- EP
class EP(AbstractEstimator):
    r"""Two-phase equilibrium-propagation estimator of Kendall (2021), eq. 33.

    A free run (β = 0) and a nudged run in which each output ``k`` is coupled to its target
    ``T_k(t)`` by an element of strength β: a resistor of conductance ``β·G`` (default;
    Kendall (2021)'s first resolution of its imaginary unit) or a capacitor ``β·C`` (the
    paper's literal form with the imaginary unit dropped). Each synapse accumulates, online,

    .. math::  Q_l(β) = \sum_{n=1}^{N} dt\, \big((I^\gamma v_l)[n]\big)^2

    (γ = ½ is Kendall (2021)'s ∫(ᶜD^{1/2}Φ_l)² dt, γ = 0 the pointwise ∫v_l² dt), and

    .. math::  \hat g_l = \frac{Q_l(β) - Q_l(0)}{2 S β}  \quad\text{(one-sided)},\qquad
               \hat g_l = \frac{Q_l(β) - Q_l(-β)}{4 S β}  \quad\text{(symmetric)},

    with ``S = G`` (or ``C``). ``limit=True`` returns the exact β → 0 limit
    ``Q_l'(0) / (2S)``, a forward-mode derivative in β.

    With resistor nudging it estimates ``dJ_γ/dg_l``. It is exact only in the quasi-static
    limit (input frequency × node time constant ωτ → 0) and **biased when the dynamics are
    fast** (docs/design.md §5: cosine −0.70 at ωτ = 1): forward-in-time nudging yields the
    forward sensitivity, whereas the gradient needs the adjoint, which runs backwards in time. The
    one-sided error in β is O(β), the symmetric one O(β²).

    **Arguments**: ``beta`` (> 0), ``nudge`` (``"resistor"`` or ``"capacitor"``), ``order`` γ
    (≥ 0), ``symmetric``, ``limit``, ``strength`` (``G`` in siemens or ``C`` in farads).
    """

    synapses_only: ClassVar[bool] = True

    beta: float = eqx.field(static=True, default=1e-3)
    nudge: Literal["resistor", "capacitor"] = eqx.field(static=True, default="resistor")
    order: float = eqx.field(static=True, default=0.0)
    symmetric: bool = eqx.field(static=True, default=False)
    limit: bool = eqx.field(static=True, default=False)
    strength: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        _check_positive("EP", "beta", self.beta)
        if self.nudge not in ("resistor", "capacitor"):
            raise LearningError(
                f"EP nudge={self.nudge!r} is not recognised; use 'resistor' or 'capacitor'"
            )
        _check_order("EP", self.order)
        _check_positive("EP", "strength", self.strength)

    def contrast(self, problem, params, inputs, targets, beta):
        """Q_l(β) for every synapse, accumulated online (no trajectory is stored)."""
        circuit = problem.combine(params)
        nudged = _with_targets(
            circuit,
            problem.outputs,
            targets,
            problem.dt,
            self.nudge,
            beta * self.strength,
            problem.method,
        )
        acc = _Contrast(
            tuple(int(b) for b in _synapse_branches(problem)), float(self.order), problem.history
        )
        # The inputs as waveforms that read the argument in place (no per-source copy).
        feeds = _rows(jnp.asarray(inputs), problem.dt)
        traj = problem.simulate(
            params, feeds, circuit=nudged, accumulator=acc, saveat=SaveAt(states=False)
        )
        return _q(traj.accumulated, self.order)

    def one(self, problem, params, inputs, targets):
        dtype = jnp.result_type(float)
        s = self.strength
        if self.limit:

            def q_of(b):
                return self.contrast(problem, params, inputs, targets, b)

            _, dq = jax.jvp(q_of, (jnp.asarray(0.0, dtype),), (jnp.asarray(1.0, dtype),))
            g = dq / (2 * s)
        else:
            # Two physical runs. (Batching them as one vmap of two was measured slower on CPU.)
            lo = -self.beta if self.symmetric else 0.0
            q_hi = self.contrast(problem, params, inputs, targets, self.beta)
            q_lo = self.contrast(problem, params, inputs, targets, lo)
            g = (q_hi - q_lo) / (2 * s * (self.beta - lo))
        return _branch_grads_to_params(problem, params, g)


class CoupledLearning(AbstractEstimator):
    r"""Coupled learning (Stern et al. 2021): free run, then outputs clamped to v + η(T − v).

    Each synapse contrasts ``Q_l`` (pointwise, γ = 0, or of order γ) between the clamped and
    free runs: ``ĝ_l = (Q_l^clamped − Q_l^free) / (2η)``. For a single output in the
    quasi-static limit this is the gradient of ``J`` times the output's driving-point
    conductance (clamping moves the output by ``η e``, a current nudge by ``β G R e``); in
    general it is a preconditioned direction, not the gradient (Lin et al.
    2026 call it an instance of generalized EP). Its agreement is measured, not assumed.
    """

    synapses_only: ClassVar[bool] = True

    eta: float = eqx.field(static=True, default=1e-3)
    order: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        _check_positive("CoupledLearning", "eta", self.eta)
        _check_order("CoupledLearning", self.order)

    def one(self, problem, params, inputs, targets):
        circuit = problem.combine(params)
        branches = tuple(int(b) for b in _synapse_branches(problem))
        acc = _Contrast(branches, float(self.order), problem.history)
        free = problem.simulate(params, inputs, circuit=circuit, accumulator=acc)
        v_free = free.v[:, problem.output_indices()].T
        clamp = v_free + self.eta * (targets - v_free)
        clamped = _with_clamps(circuit, problem.outputs, clamp, problem.dt)
        held = problem.simulate(
            params, inputs, circuit=clamped, accumulator=acc, saveat=SaveAt(states=False)
        )
        q_c, q_f = _q(held.accumulated, self.order), _q(free.accumulated, self.order)
        return _branch_grads_to_params(problem, params, (q_c - q_f) / (2 * self.eta))


# ------------------------------------------------------------------------------------- Replay
class Replay(AbstractEstimator):
    r"""Time-reversed replay: the adjoint network (Director & Rohrer 1969; docs/design.md §5).

    The free run records, at every step and for every element, its own branch voltage and
    its incremental conductance ``g_b[n] = ∂i_b[n]/∂v_b[n]`` (what each element must record
    locally: resistors their voltage; diodes ``g_d(v)``; capacitors ``a_0 q'(v)/h``; inductors
    ``h·s'(Φ)/(a_0 L)``, with ``a_0`` the current-step weight of the problem's multistep
    method (1 for backward Euler and for every first step, 2 for the trapezoidal rule, 3/2
    for Gear-2); memristors ``r̂'(Ψ)``; CPEs nothing beyond their constant ``C h^{−α}``).
    Capacitors and inductors under the trapezoidal rule replay its past-current
    (past-voltage) recursion backwards as well (see their ``adjoint_*`` methods).
    The replay runs the same circuit in reversed time with its independent sources zeroed
    (V shorted, I open), driven at each output ``k`` by the injected error current
    ``∂J/∂v_k[n] = dt·(v_k[n] − T_k[n])``; every element applies its small-signal law along
    the reversed record (see ``adjoint_current`` of each element). Each synapse correlates its
    two traces:

    .. math::  \frac{dJ}{dg_l} = -\sum_{n=1}^{N} v_l[n]\, μ_l[n],

    where ``μ_l[n]`` is the replay's branch voltage read back in forward time. This is the
    exact discrete adjoint of the stepper: it equals `jax.grad` to round-off for linear
    circuits (fractional included) and to the Newton tolerance for nonlinear ones.

    ``order`` selects the filtered loss ``J_γ`` (its error drive is ``∂J_γ/∂v``, computed at
    the outputs from the error traces).
    """

    synapses_only: ClassVar[bool] = True

    order: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        _check_order("Replay", self.order)

    def one(self, problem, params, inputs, targets):
        circuit = problem.combine(params)
        traj = problem.simulate(params, inputs, circuit=circuit, saveat=SaveAt(conductances=True))
        out = problem.output_indices()
        v_out = traj.v[:, out]
        drive = jax.grad(lambda v: problem.loss_from_outputs(v, targets, self.order))(v_out)
        dtype = traj.g_branch.dtype
        tables = None
        if problem.starting:
            feeds = {name: inputs[k] for k, name in enumerate(problem.inputs)}
            driven = circuit.with_sources(feeds, dt=problem.dt)
            tables, _ = starting_tables(driven, problem.kernel, problem.steps, dtype)
        setup = StepSetup(
            dt=jnp.asarray(problem.dt, dtype),
            steps=problem.steps,
            kernel=problem.kernel,
            history=problem.history,
            starting=tables,
            method=problem.method,
        )
        m = max((t.size for t in (tables or {}).values()), default=0)
        x_block = None
        if m:
            x_block = jnp.concatenate([traj.v[1 : m + 1], traj.i_vsrc[1 : m + 1]], axis=1)
        mu = replay(circuit, setup, traj.g_branch, drive, out, x_block)
        a, b = circuit.incidence()
        v_aug = jnp.concatenate([traj.v, jnp.zeros((traj.v.shape[0], 1), traj.v.dtype)], 1)
        syn = _synapse_branches(problem)
        v_l = (v_aug[:, a] - v_aug[:, b])[:, syn]
        return _branch_grads_to_params(problem, params, -jnp.sum(v_l * mu[:, syn], axis=0))


# ------------------------------------------------------------------------------ references
class Autodiff(AbstractEstimator):
    """`jax.grad` of ``J_γ`` through the whole simulated trajectory (the reference)."""

    synapses_only: ClassVar[bool] = False
    order: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        _check_order("Autodiff", self.order)

    def one(self, problem, params, inputs, targets):
        return jax.grad(lambda p: problem.loss(p, inputs, targets, self.order))(params)


class FiniteDifference(AbstractEstimator):
    """Central differences ``(J(θ + h e_i) − J(θ − h e_i)) / 2h``, ``h = rel_step·|θ_i|``.

    The check on the reference: O(h²) truncation plus O(eps·J/h) round-off.
    """

    synapses_only: ClassVar[bool] = False
    rel_step: float = eqx.field(static=True, default=1e-5)
    order: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        _check_positive("FiniteDifference", "rel_step", self.rel_step)
        _check_order("FiniteDifference", self.order)

    def one(self, problem, params, inputs, targets):
        flat, unravel = ravel_pytree(params)
        h = self.rel_step * jnp.maximum(jnp.abs(flat), 1e-12)

        def loss_at(k, sign):
            p = unravel(flat.at[k].add(sign * h[k]))
            return problem.loss(p, inputs, targets, self.order)

        ks = jnp.arange(flat.size)
        plus = jax.vmap(lambda k: loss_at(k, 1.0))(ks)
        minus = jax.vmap(lambda k: loss_at(k, -1.0))(ks)
        return unravel((plus - minus) / (2 * h))
