r"""Learning on resistive networks at steady state: the problem, the loss, and the estimators.

Loss (one example): ``J = ½ Σ_k (y_k − T_k)²`` with ``y_k = v_{p_k} − v_{m_k}`` the voltage
read at output ``k`` (a node against ground, ``m_k = 0``, or a node pair); a batch averages
``J`` over its leading axis.

**Energy function (co-content).** With the inputs held, the free node voltages are a
stationary point of

.. math::  E(v) = \sum_e \tfrac12 g_e Δv_e^2 + \sum_d \int_0^{Δv_d} i_d(s)\,ds ,

(``∂E/∂v_F = R(v)``, Kirchhoff's current law; each term is the element's co-content, and
``½ g_e Δv_e² = P_e/2`` is half the power the resistor dissipates). It is convex (resistors
and diodes are monotone), so the stationary point is the minimum. Note
``∂E/∂g_e = ½ Δv_e²``: this is the quantity every contrast below measures, per edge.

**Equilibrium propagation** (Scellier & Bengio 2017; for circuits Kendall et al. 2020).
Nudge: minimise ``F_β = E + β J``, i.e. inject the current ``β (T_k − y_k)`` at output
``k`` (a conductance β to a source at the target voltage, between the two nodes of a pair).
Differentiating ``∂F_β/∂v = 0`` in β at β = 0 and using the symmetry of the Hessian gives
``d/dβ ∂E/∂g_e (v^β) |₀ = dJ/dg_e``, so with ``Q_e = Δv_e²``

.. math::  \frac{dJ}{dg_e} = \lim_{β→0} \frac{Q_e(β) − Q_e(0)}{2β}
           = \lim_{β→0} \frac{Q_e(β) − Q_e(−β)}{4β},

one-sided with error O(β), symmetric with error O(β²). In terms of the dissipated power
``P_e = g_e Δv_e²`` the same estimate is ``(P_e(β) − P_e(0))/(2β g_e)``; the unnormalised
``(P_e(β) − P_e(0))/(2β)`` is the gradient with respect to ``log g_e``.

**Coupled learning** (Stern et al. 2021): clamp every output at ``y_k + η (T_k − y_k)``.
Clamping moves the outputs by ``−η e`` (``e = y − T``) where a nudge moves them by
``−β R e``, with ``R = S K⁻¹ Sᵀ`` the transfer resistance matrix between the outputs. So
``(Q_e(η) − Q_e(0))/(2η) → −Δv_e Δλ'_e`` with ``K λ' = Sᵀ R⁻¹ e``: the gradient formula with
the error preconditioned by ``R⁻¹`` — a descent direction (``R`` is positive definite) but
not the gradient, unless ``R`` is a multiple of the identity (for one output it is the
gradient times the output's driving-point conductance ``1/R``). Lin et al. (2026) call
both *generalized EP*: a contrast between a free and a perturbed state.

**Analytic gradient** (Lin et al. 2026; docs/design.md §5). With ``K`` the Jacobian of KCL at the
free state (``L_FF`` for a linear network), ``K λ = ∂J/∂v = Sᵀ e`` and

.. math::  \frac{dJ}{dg_e} = −Δv_e\, Δλ_e ,

because ``∂R/∂g_e = a_e Δv_e`` (``a_e`` the edge's incidence column) and
``dv/dg_e = −K⁻¹ a_e Δv_e``. ``λ`` is the voltage of the *adjoint network*: the same network
with its inputs shorted to ground, driven by the current ``e_k`` injected at output ``k``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array
from .._learning.base import AbstractEstimator, AbstractProblem
from .network import ResistiveError, ResistiveNetwork
from .solver import DCSolver, _Cfg, _index, _jacobian, _readout_t, _solve_state, _theta, _z


def _parse_outputs(net: ResistiveNetwork, outputs) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if isinstance(outputs, int | np.integer):
        outputs = [outputs]
    plus, minus = [], []
    for k, o in enumerate(outputs):
        pair = tuple(int(x) for x in (o if isinstance(o, tuple | list | np.ndarray) else (o, 0)))
        if len(pair) != 2:
            raise ResistiveError(f"outputs[{k}] = {o!r}: give a node or a (plus, minus) pair")
        for node in pair:
            if not 0 <= node < net.n_nodes:
                raise ResistiveError(
                    f"output node {node} (outputs[{k}] = {o!r}) is not in the graph; nodes are "
                    f"0 … {net.n_nodes - 1}"
                )
            if node in net.inputs:
                raise ResistiveError(
                    f"output node {node} (outputs[{k}] = {o!r}) is an input node: its voltage is "
                    "imposed, so it cannot be trained; read a free node"
                )
        if pair[0] == pair[1] or pair[0] == 0:
            raise ResistiveError(
                f"outputs[{k}] = {o!r} reads a constant voltage; the plus node must be a free "
                "node distinct from the minus node"
            )
        plus.append(pair[0])
        minus.append(pair[1])
    if not plus:
        raise ResistiveError("a resistive problem needs at least one output")
    return tuple(plus), tuple(minus)


class ResistiveProblem(AbstractProblem):
    r"""A resistive network to train at steady state: inputs, outputs, trainable conductances.

    **Arguments**

    - ``network``: a `ResistiveNetwork` (its ``inputs`` are the input nodes).
    - ``outputs``: output nodes (voltage against ground) and/or ``(plus, minus)`` node pairs
      (voltage difference ``v_plus − v_minus``).
    - ``trainable``: which resistors may change: ``None`` (all), a boolean ``(E,)`` mask or
      an array of edge indices. Estimators multiply their result by `mask` ``()``.
    - ``solver``: a `DCSolver`.

    **The interface a training loop uses** (``params``/``grads`` are ``{"g": (E,) array}``):

    - ``params()``; ``loss(params, inputs, targets)`` (``J`` averaged over the batch);
      ``predict(params, inputs) -> outputs``; ``accuracy(params, inputs, labels)``;
    - ``mask()`` (the trainable selection) or ``mask(fraction=p, seed=s)`` (a random
      fraction ``p`` of the trainable resistors, the rest 0; multiply gradients by it);
    - ``clip(params, g_min)`` keeps conductances positive after an update;
    - every estimator: ``estimator(problem, params, inputs, targets) -> grads``.

    Data: ``inputs`` ``(n_inputs,)`` or ``(batch, n_inputs)`` volts, ``targets``
    ``(n_outputs,)`` or ``(batch, n_outputs)`` volts.

    **Raises** `ResistiveError` for an output node not in the graph, an output that is an
    input or reads a constant, or a trainable selection that does not fit the edges.
    """

    network: ResistiveNetwork
    plus: tuple[int, ...] = eqx.field(static=True)
    minus: tuple[int, ...] = eqx.field(static=True)
    trainable: Array
    solver: DCSolver = eqx.field(static=True)

    def __init__(self, network: ResistiveNetwork, outputs, *, trainable=None, solver=DCSolver()):
        self.network = network
        self.plus, self.minus = _parse_outputs(network, outputs)
        e = network.n_edges
        if trainable is None:
            sel = np.ones(e, bool)
        else:
            t = np.asarray(trainable)
            if t.dtype == bool:
                if t.shape != (e,):
                    raise ResistiveError(f"trainable mask has shape {t.shape}; expected ({e},)")
                sel = t
            else:
                t = t.astype(np.int64).ravel()
                if t.size and (t.min() < 0 or t.max() >= e):
                    raise ResistiveError(
                        f"trainable edge indices must lie in 0 … {e - 1}; got {t.min()} … {t.max()}"
                    )
                sel = np.zeros(e, bool)
                sel[t] = True
        if not sel.any():
            raise ResistiveError("trainable selects no resistor")
        self.trainable = jnp.asarray(sel, jnp.result_type(float))
        self.solver = solver

    # -- parameters ------------------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        return len(self.plus)

    @property
    def n_inputs(self) -> int:
        return len(self.network.inputs)

    def params(self) -> dict:
        """``{"g": conductances (E,)}``, the pytree every estimator returns gradients for."""
        return {"g": self.network.g}

    def mask(self, fraction: float | None = None, *, seed: int = 0, key=None) -> dict:
        """0/1 pytree like `params`: the trainable resistors, or a random ``fraction`` of them.

        With ``fraction=p`` exactly ``round(p · n_trainable)`` of the trainable resistors,
        drawn without replacement by ``key`` (or ``jax.random.key(seed)``), are 1.
        """
        if fraction is None:
            return {"g": self.trainable}
        if not 0.0 <= float(fraction) <= 1.0:
            raise ResistiveError(f"mask fraction={fraction!r} must lie in [0, 1]")
        key = jax.random.key(seed) if key is None else key
        idx = np.flatnonzero(np.asarray(self.trainable) > 0)
        k = int(round(float(fraction) * idx.size))
        chosen = jax.random.choice(key, jnp.asarray(idx), (k,), replace=False)
        return {"g": jnp.zeros_like(self.trainable).at[chosen].set(1.0)}

    def clip(self, params: dict, g_min: float = 1e-6) -> dict:
        """``params`` with every conductance at least ``g_min`` (a projection after a step)."""
        return {"g": jnp.maximum(params["g"], g_min)}

    # -- data ------------------------------------------------------------------------------
    def check_data(self, inputs, targets):
        """Validate shapes; returns ``(inputs, targets, batched)``."""
        u, t = jnp.asarray(inputs), jnp.asarray(targets)
        if u.shape[-1:] != (self.n_inputs,) or u.ndim not in (1, 2):
            raise ResistiveError(
                f"inputs have shape {u.shape}; expected ({self.n_inputs},) (one voltage per "
                f"input node {self.network.inputs}) or (batch, {self.n_inputs})"
            )
        if t.shape[-1:] != (self.n_outputs,) or t.ndim not in (1, 2):
            raise ResistiveError(
                f"targets have shape {t.shape}; expected ({self.n_outputs},) or "
                f"(batch, {self.n_outputs})"
            )
        if u.ndim != t.ndim or (u.ndim == 2 and u.shape[0] != t.shape[0]):
            raise ResistiveError(f"inputs {u.shape} and targets {t.shape} must share the batch")
        return u, t, u.ndim == 2

    # -- states ----------------------------------------------------------------------------
    def _cfg(self, clamped: bool = False) -> _Cfg:
        net = self.network
        return _Cfg(net.n_free, len(net.inputs), net.n_diodes, self.n_outputs, clamped, self.solver)

    def _idx(self):
        return _index(self.network, self.plus, self.minus)

    def state(self, params, u, *, beta=0.0, target=None, clamp=None, throw=True):
        """The (perturbed) steady state of one example: ``x = [free voltages, clamp currents]``.

        ``beta``/``target``: the nudge ``F = E + β J``; ``clamp``: hold the outputs at these
        voltages (a voltage source across each output). Differentiable in every argument.
        """
        cfg = self._cfg(clamp is not None)
        theta = _theta(self.network, params["g"], u, self.n_outputs, beta, target, clamp)
        return _solve_state(cfg, self._idx(), theta, throw)

    def _z(self, x, u):
        return _z(self._cfg(), x[: self.network.n_free], jnp.asarray(u, x.dtype))

    def readout(self, x, u) -> Array:
        """Outputs ``y = v_plus − v_minus`` of a state."""
        idx, z = self._idx(), self._z(x, u)
        return z[idx.plus] - z[idx.minus]

    def edge_voltages(self, x, u) -> Array:
        """``Δv_e = v_src − v_dst`` of every resistor in a state."""
        idx, z = self._idx(), self._z(x, u)
        return z[idx.ea] - z[idx.eb]

    # -- prediction and loss ---------------------------------------------------------------
    def predict(self, params, inputs, *, throw: bool = True) -> Array:
        """Output voltages ``(n_outputs,)`` or ``(batch, n_outputs)`` at the free state."""
        u = jnp.asarray(inputs)
        one = lambda u: self.readout(self.state(params, u, throw=throw), u)  # noqa: E731
        return jax.vmap(one)(u) if u.ndim == 2 else one(u)

    def loss_one(self, params, u, t) -> Array:
        return 0.5 * jnp.sum((self.readout(self.state(params, u), u) - t) ** 2)

    def loss(self, params, inputs, targets) -> Array:
        """``J = ½ Σ_k (y_k − T_k)²``, averaged over a batch if there is one."""
        u, t, batched = self.check_data(inputs, targets)
        if batched:
            return jnp.mean(jax.vmap(lambda u, t: self.loss_one(params, u, t))(u, t))
        return self.loss_one(params, u, t)

    def accuracy(self, params, inputs, labels) -> Array:
        """Fraction of examples whose largest output is the one of their class label."""
        y = self.predict(params, jnp.atleast_2d(jnp.asarray(inputs)))
        return jnp.mean(jnp.argmax(y, axis=-1) == jnp.asarray(labels).reshape(-1))


# -------------------------------------------------------------------------------- estimators
#: The resistive estimators share `fracprop.AbstractEstimator`; this is its former name here.
AbstractDCEstimator = AbstractEstimator


def _check_strength(who: str, name: str, s) -> None:
    if isinstance(s, jax.core.Tracer):
        return
    if not (np.ndim(s) == 0 and np.isfinite(float(s)) and float(s) > 0):
        raise ResistiveError(f"{who} {name}={s!r} must be a positive number")


def _contrast(problem: ResistiveProblem, params, u, t, perturbation: str, s, y_free) -> Array:
    """``Q_e = Δv_e²`` of every resistor in the state perturbed with strength ``s``."""
    if perturbation == "nudge":
        x = problem.state(params, u, beta=s, target=t)
    else:
        x = problem.state(params, u, clamp=y_free + s * (t - y_free))
    return problem.edge_voltages(x, u) ** 2


def _generalized_ep(problem, params, u, t, perturbation, s, symmetric, limit) -> dict:
    """The contrast estimate of `GeneralizedEP` for one example (see its docstring)."""
    dt = jnp.result_type(float)
    x0 = problem.state(params, u)
    y_free = problem.readout(x0, u) if perturbation == "clamp" else None
    if limit:
        _, dq = jax.jvp(
            lambda s: _contrast(problem, params, u, t, perturbation, s, y_free),
            (jnp.asarray(0.0, dt),),
            (jnp.asarray(1.0, dt),),
        )
        return {"g": dq / 2}
    q_hi = _contrast(problem, params, u, t, perturbation, s, y_free)
    if symmetric:
        q_lo, lo = _contrast(problem, params, u, t, perturbation, -s, y_free), -s
    else:
        q_lo, lo = problem.edge_voltages(x0, u) ** 2, 0.0
    return {"g": (q_hi - q_lo) / (2 * (s - lo))}


class GeneralizedEP(AbstractEstimator):
    r"""Generalized equilibrium propagation: a contrast between a free and a perturbed state.

    Each resistor measures ``Q_e = Δv_e²`` (``2 ∂E/∂g_e``) in the free state and in the
    perturbed state(s); with strength ``s`` (β or η):

    - ``perturbation="nudge"`` (EP): inject ``s (T_k − y_k)`` at output ``k`` (state of
      ``E + s J``). ``(Q(s) − Q(0))/(2s)`` → ``dJ/dg_e`` with error O(s); ``symmetric=True``:
      ``(Q(s) − Q(−s))/(4s)``, error O(s²).
    - ``perturbation="clamp"`` (coupled learning): hold outputs at ``y_k + s (T_k − y_k)``;
      the same quotients tend to ``−Δv_e Δλ'_e`` with ``K λ' = Sᵀ R⁻¹ e``, the gradient
      preconditioned by the outputs' transfer conductance (module docstring).
    - ``limit=True``: the exact ``s → 0`` limit ``Q'(0)/2``, a forward-mode derivative in
      ``s`` through the implicit derivative of the perturbed state (linear response: one extra
      linear solve).

    The derivation of signs and factors is in the module docstring of `fracprop.resistive`.
    """

    perturbation: str = eqx.field(static=True, default="nudge")
    strength: float | Array = 1e-3  # a leaf: a JAX scalar sweeps strengths without retracing
    symmetric: bool = eqx.field(static=True, default=False)
    limit: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.perturbation not in ("nudge", "clamp"):
            raise ResistiveError(
                f"GeneralizedEP perturbation={self.perturbation!r}; use 'nudge' or 'clamp'"
            )
        _check_strength("GeneralizedEP", "strength", self.strength)

    def one(self, problem, params, u, t):
        return _generalized_ep(
            problem, params, u, t, self.perturbation, self.strength, self.symmetric, self.limit
        )


class EP(AbstractEstimator):
    r"""Equilibrium propagation on a resistive network: `GeneralizedEP` with
    ``perturbation="nudge"``, strength ``beta``.

    ``(Q(β) − Q(0))/(2β) → dJ/dg_e`` with error O(β); ``symmetric=True`` gives
    ``(Q(β) − Q(−β))/(4β)``, error O(β²); ``limit=True`` the exact β → 0 limit.
    """

    beta: float | Array = 1e-3  # a leaf: a JAX scalar sweeps β without retracing
    symmetric: bool = eqx.field(static=True, default=False)
    limit: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_strength("EP", "beta", self.beta)

    def one(self, problem, params, u, t):
        return _generalized_ep(
            problem, params, u, t, "nudge", self.beta, self.symmetric, self.limit
        )


class CoupledLearning(AbstractEstimator):
    r"""Coupled learning on a resistive network (Stern et al. 2021): `GeneralizedEP` with
    ``perturbation="clamp"``, strength ``eta``: outputs held at ``y_k + η (T_k − y_k)``.

    The quotient tends to the gradient preconditioned by the outputs' transfer conductance
    (a descent direction, not the gradient, for more than one output; module docstring).
    """

    eta: float | Array = 1e-3
    symmetric: bool = eqx.field(static=True, default=False)
    limit: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_strength("CoupledLearning", "eta", self.eta)

    def one(self, problem, params, u, t):
        return _generalized_ep(problem, params, u, t, "clamp", self.eta, self.symmetric, self.limit)


class Analytic(AbstractEstimator):
    r"""The analytic gradient of Lin et al. (2026): ``dJ/dg_e = −Δv_e Δλ_e``, ``K λ = Sᵀ e``.

    **What is measured**: only the outputs ``y_k`` of the free state (hence the errors
    ``e_k = y_k − T_k``). **What is computed from the known network** (topology,
    conductances ``g``, diode laws, applied inputs ``u``): the free-state edge voltages
    ``Δv_e`` (one solve of ``L v = b(g, u)``, or of the nonlinear KCL) and ``Δλ_e`` from
    one solve of ``K λ = Sᵀ e``, where ``K`` is the Jacobian of KCL at the free state (the
    grounded Laplacian ``L_FF`` for a linear network, plus each diode's incremental
    conductance otherwise). No replica, no second physical phase, and no measurement across
    every resistor. In this simulation ``y`` comes from the same model, so the estimate equals
    ``jax.grad`` of ``J`` up to the linear-solver tolerance.
    """

    def one(self, problem, params, u, t):
        x = problem.state(params, u)
        e = problem.readout(x, u) - t
        cfg, idx = problem._cfg(), problem._idx()
        theta = _theta(problem.network, params["g"], u, problem.n_outputs)
        jac = _jacobian(cfg, idx, theta, x)
        lam, _ = jac.solve(_readout_t(cfg, idx, e))
        # The adjoint network has its inputs shorted: λ = 0 at ground and at every input.
        dlam = problem.edge_voltages(lam, jnp.zeros((problem.n_inputs,), lam.dtype))
        return {"g": -problem.edge_voltages(x, u) * dlam}


class Autodiff(AbstractEstimator):
    """`jax.grad` of ``J`` through the implicit DC solve (the reference)."""

    def one(self, problem, params, u, t):
        return jax.grad(problem.loss_one)(params, u, t)


__all__ = [
    "AbstractDCEstimator",
    "Analytic",
    "Autodiff",
    "CoupledLearning",
    "EP",
    "GeneralizedEP",
    "ResistiveProblem",
]
