r"""Learning problems: a circuit, trainable parameters, sampled inputs, targets and the loss.

The loss over the time grid ``t_n = n·dt`` is the right-point rule of docs/design.md §5,

.. math::  J = \tfrac12 \sum_{n=1}^{N} dt \sum_k (v_k[n] - T_k[n])^2,

and the *filtered* loss that matches a contrast of order γ is

.. math::  J_\gamma = \tfrac12 \sum_{n=1}^{N} dt \sum_k \big((I^\gamma e_k)[n]\big)^2,
           \quad (I^\gamma e)[n] = h^\gamma \sum_{j=0}^{n} w^{(-\gamma)}_j e[n-j],

with ``e = v − T`` and Grünwald–Letnikov weights (``γ = 0`` gives ``J``). A learning problem
always starts from rest (every voltage, current and history zero at ``t = 0``), so the initial
state does not depend on the parameters.
"""

from __future__ import annotations

import fnmatch

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit, CircuitError, _with_order_classes
from .._circuit.elements.static import Resistors
from .._circuit.integration import AbstractMultistep, resolve_method
from .._custom_types import Array
from .._fractional.history.base import AbstractHistory
from .._fractional.history.resolve import resolve_history
from .._fractional.kernels import GL, AbstractKernel
from .._transient.options import SaveAt
from .._transient.simulate import simulate
from .._transient.solution import Trajectory
from .._transient.stepper import AbstractAccumulator, check_checkpoint
from .base import AbstractProblem


class LearningError(ValueError):
    """A mistake in the definition of a learning problem or its data."""


def _parse_selection(circuit: Circuit, trainable) -> tuple[tuple[str, str], ...]:
    """Resolve ``"NAME_GLOB"`` / ``"NAME_GLOB.param"`` patterns into (element, param) pairs."""
    if trainable is None:
        pairs = [(n, "g") for g in circuit.groups if g.kind == "Resistors" for n in g.names]
        if not pairs:
            raise LearningError(
                "the circuit has no linear resistors to train; pass trainable=[...] "
                "(element names or 'NAME.param' patterns)"
            )
        return tuple(pairs)
    if isinstance(trainable, str):
        trainable = [trainable]
    pairs: list[tuple[str, str]] = []
    for pattern in trainable:
        if isinstance(pattern, tuple) and len(pattern) == 2:
            # An already resolved (element, parameter) pair, as in `LearningProblem.trainable`.
            name, p = pattern
            try:
                circuit.get(name, p)
            except CircuitError as e:
                raise LearningError(f"trainable {pattern!r}: {e}") from None
            if pattern not in pairs:
                pairs.append(pattern)
            continue
        if not isinstance(pattern, str) or not pattern:
            raise LearningError(f"trainable entries must be strings; got {pattern!r}")
        glob, _, param = pattern.partition(".")
        matched = False
        for g in circuit.groups:
            names = [n for n in g.names if fnmatch.fnmatchcase(n.lower(), glob.lower())]
            if not names:
                continue
            p = param or g.primary
            for n in names:
                try:
                    circuit.get(n, p)
                except CircuitError as e:
                    raise LearningError(f"trainable {pattern!r}: {e}") from None
                if (n, p) not in pairs:
                    pairs.append((n, p))
                matched = True
        if not matched:
            raise LearningError(
                f"trainable selection {pattern!r} matches no element; the elements are "
                f"{', '.join(circuit.branch_names)}"
            )
    return tuple(pairs)


class LearningProblem(AbstractProblem):
    """A circuit to train, its inputs and outputs, the time grid and the trainable parameters.

    **Arguments**

    - ``circuit``: the network.
    - ``inputs``: names of the independent sources that carry the sampled inputs.
    - ``outputs``: names of the output nodes (their voltages are compared with the targets).
    - ``dt``, ``steps``: the time grid ``t_n = n·dt``, ``n = 0 … steps``.
    - ``trainable``: element-name patterns, optionally with a parameter (``"R*"``,
      ``"M1.alpha"``), or ``(element, parameter)`` pairs; default every linear resistor's
      conductance (the synapses).
    - ``kernel``, ``history``: as in `simulate` (a ``history`` name is resolved here, with
      this problem's ``steps``).
    - ``method``: the multistep method of the integer-order capacitors and inductors, as in
      `simulate`, but ``"euler"`` (backward Euler) by default: with the default `GL` kernel
      that is the Grünwald–Letnikov scheme of Kendall (2021), which the learning problem
      keeps unless told otherwise. ``"trap"`` and ``"gear"`` (second order) are available;
      every estimator follows the method chosen here.
    - ``checkpoint``: as in `simulate`: ``None`` (default) or the number of steps per
      rematerialised segment when the problem's runs are differentiated in reverse mode
      (`jax.grad` of `loss`, `Autodiff`); memory ~ (N/k)·state + k·residuals instead of
      N·residuals, for about one extra forward pass.
    - ``starting``: Lubich starting weights for the fractional elements, as in `simulate`
      (default ``False``: the uncorrected scheme of Kendall 2021, whose first steps are
      O(h^α) accurate). Not with trained orders α (the weights are precomputed from them).
      `Replay` includes the adjoint of the coupled start block and stays exact.

    Data: inputs of shape ``(len(inputs), steps + 1)`` and targets of shape
    ``(len(outputs), steps + 1)``, with an optional leading batch axis on both.
    """

    circuit: Circuit
    inputs: tuple[str, ...] = eqx.field(static=True)
    outputs: tuple[str, ...] = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    trainable: tuple[tuple[str, str], ...] = eqx.field(static=True)
    #: ``(group index, classes)`` for each fractional group (`Circuit.share_orders`).
    order_classes: tuple[tuple[int, tuple[int, ...] | None], ...] = eqx.field(static=True)
    kernel: AbstractKernel
    history: AbstractHistory
    checkpoint: int | None = eqx.field(static=True)
    method: AbstractMultistep
    starting: bool = eqx.field(static=True)

    def __init__(
        self,
        circuit: Circuit,
        *,
        inputs,
        outputs,
        dt: float,
        steps: int,
        trainable=None,
        kernel: AbstractKernel = GL(),
        history: AbstractHistory | str = "auto",
        checkpoint: int | None = None,
        starting: bool = False,
        method: AbstractMultistep | str = "euler",
    ):
        if isinstance(inputs, str):
            inputs = (inputs,)
        if isinstance(outputs, str):
            outputs = (outputs,)
        sources = {n.lower(): n for grp in (circuit.vsources, circuit.isources) for n in grp.names}
        for name in inputs:
            if name.lower() not in sources:
                raise LearningError(
                    f"input {name!r} is not an independent source of the circuit; sources are "
                    f"{', '.join(sources.values()) or '(none)'}"
                )
        outs = []
        for node in outputs:
            if not isinstance(node, str) or node.lower() not in circuit.node_names:
                raise LearningError(
                    f"output node {node!r} does not exist; the circuit's nodes are "
                    f"{', '.join(circuit.node_names)}"
                )
            outs.append(node.lower())
        if not outs:
            raise LearningError("a learning problem needs at least one output node")
        if not isinstance(steps, int | np.integer) or steps < 1:
            raise LearningError(f"steps={steps!r} must be a positive integer")
        if not (float(dt) > 0 and np.isfinite(float(dt))):
            raise LearningError(f"dt={dt!r} must be a positive number of seconds")
        check_checkpoint(checkpoint, int(steps), LearningError)
        try:
            method = resolve_method(method)
        except (ValueError, TypeError) as e:
            raise LearningError(str(e)) from None
        trainable = _parse_selection(circuit, trainable)
        # Orders that are not trained share their weights in this problem's runs
        # (`Circuit.share_orders`); trained ones keep one set per element, which their
        # per-element derivatives need.
        trained = {circuit._locate(name)[0] for name, p in trainable if p == "alpha"}
        shared = circuit.share_orders()
        self.order_classes = tuple(
            (i, None if i in trained else g.order_classes)
            for i, g in enumerate(shared.groups)
            if g.fractional
        )
        self.circuit = circuit
        self.inputs = tuple(sources[n.lower()] for n in inputs)
        self.outputs = tuple(outs)
        self.dt = float(dt)
        self.steps = int(steps)
        self.trainable = trainable
        self.kernel = kernel
        self.history = resolve_history(history, kernel, int(steps))
        self.checkpoint = None if checkpoint is None else int(checkpoint)
        self.starting = bool(starting)
        if self.starting and trained:
            raise LearningError(
                "starting=True needs concrete orders alpha (the starting weights are "
                "precomputed from them), but some alpha is trainable; pass starting=False"
            )
        self.method = method

    # -- parameters ------------------------------------------------------------------------
    def _leaf_getters(self):
        """For each trainable (element, param): its entry index and a getter of its leaf."""
        out = []
        for name, p in self.trainable:
            gi, g, k = self.circuit._locate(name)
            in_law = self.circuit._param_holder(g, p, name) is not g

            def where(c, gi=gi, in_law=in_law, p=p):
                grp = c.groups[gi]
                return getattr(grp.law if in_law else grp, p)

            out.append((k, where))
        return out

    def _spec(self):
        """Filter spec: True at the leaves that hold trainable parameters."""
        spec = jax.tree.map(lambda _: False, self.circuit)
        for _, where in self._leaf_getters():
            spec = eqx.tree_at(where, spec, True)
        return spec

    def params(self):
        """The trainable parameters as a pytree (the circuit with every other leaf ``None``)."""
        return eqx.filter(self.circuit, self._spec())

    def mask(self):
        """Same structure as `params`: 1 on selected entries, 0 on the others of a leaf."""
        mask = jax.tree.map(jnp.zeros_like, self.params())
        for k, where in self._leaf_getters():
            mask = eqx.tree_at(where, mask, replace_fn=lambda x, k=k: x.at[k].set(1.0))
        return mask

    def replace(self, **changes) -> LearningProblem:
        """A copy with some constructor arguments changed (``circuit``, ``trainable``, …).

        The trainable selection is kept, by element name, unless ``trainable`` is given.
        """
        kwargs = dict(
            circuit=self.circuit,
            inputs=self.inputs,
            outputs=self.outputs,
            dt=self.dt,
            steps=self.steps,
            trainable=self.trainable,
            kernel=self.kernel,
            history=self.history,
            checkpoint=self.checkpoint,
            starting=self.starting,
            method=self.method,
        )
        unknown = set(changes) - set(kwargs)
        if unknown:
            raise TypeError(f"LearningProblem.replace got unknown arguments {sorted(unknown)}")
        kwargs.update(changes)
        return LearningProblem(kwargs.pop("circuit"), **kwargs)

    def combine(self, params) -> Circuit:
        """The circuit with its trainable leaves replaced by ``params``.

        Its fractional elements whose orders α are not trained share their convolution
        weights (`Circuit.share_orders`, recorded when the problem was made), so these α
        cannot be differentiated through it.
        """
        _, static = eqx.partition(self.circuit, self._spec())
        circuit = eqx.combine(params, static)
        return _with_order_classes(circuit, dict(self.order_classes))

    # -- data ------------------------------------------------------------------------------
    def check_estimator(self, estimator) -> None:
        """Raise `LearningError` if ``estimator`` estimates linear-resistor conductances only
        (``synapses_only``) and something else is trainable."""
        if estimator.synapses_only:
            _check_synapses(self, type(estimator).__name__)

    def check_data(self, inputs, targets) -> tuple[Array, Array, bool]:
        """Validate shapes; returns ``(inputs, targets, batched)``."""
        u, t = jnp.asarray(inputs), jnp.asarray(targets)
        n = self.steps + 1
        want_u, want_t = (len(self.inputs), n), (len(self.outputs), n)
        if u.shape[-2:] != want_u or u.ndim not in (2, 3):
            raise LearningError(
                f"inputs have shape {u.shape}; expected {want_u} (inputs × time points, "
                f"steps={self.steps}) or (batch, {want_u[0]}, {n})"
            )
        if t.shape[-2:] != want_t or t.ndim not in (2, 3):
            raise LearningError(
                f"targets have shape {t.shape}; expected {want_t} (outputs × time points, "
                f"steps={self.steps}) or (batch, {want_t[0]}, {n})"
            )
        if u.ndim != t.ndim or (u.ndim == 3 and u.shape[0] != t.shape[0]):
            raise LearningError(
                f"inputs {u.shape} and targets {t.shape} must have the same batch size"
            )
        return u, t, u.ndim == 3

    # -- simulation and loss ---------------------------------------------------------------
    def simulate(self, params, inputs, circuit: Circuit | None = None, **kwargs) -> Trajectory:
        """Run the (possibly modified) circuit from rest with one example's inputs.

        The run is on the problem's fixed grid (``substeps=1`` unless given): its gradient
        estimators are compared with `jax.grad` of exactly this discrete run, and time-error
        control (`simulate` with ``substeps=None``) cannot run under `jax.grad`/`jax.vmap`.
        """
        c = self.combine(params) if circuit is None else circuit
        feeds = {name: inputs[k] for k, name in enumerate(self.inputs)}
        kwargs.setdefault("throw", False)
        kwargs.setdefault("substeps", 1)
        kwargs.setdefault("checkpoint", self.checkpoint)
        return simulate(
            c,
            dt=self.dt,
            steps=self.steps,
            kernel=self.kernel,
            method=self.method,
            history=self.history,
            starting=self.starting,
            uic=True,
            inputs=feeds,
            **kwargs,
        )

    def output_indices(self) -> np.ndarray:
        return np.asarray([self.circuit.node_names.index(k) for k in self.outputs])

    def loss_from_outputs(self, v_out: Array, targets: Array, order: float = 0.0) -> Array:
        """``J_γ`` from output traces ``(steps+1, outputs)`` and targets ``(outputs, steps+1)``."""
        e = v_out - targets.T
        if order != 0.0:
            e = fractional_integral(e, order, self.dt, self.kernel)
        return 0.5 * self.dt * jnp.sum(e[1:] ** 2)

    def loss(
        self,
        params,
        inputs,
        targets,
        order: float = 0.0,
        *,
        save_states: bool = True,
        dtype=None,
    ) -> Array:
        """``J`` (``order=0``) or ``J_γ``, averaged over a batch if there is one.

        With ``save_states=False`` (``order=0`` only), ``J`` is summed during the run by an
        accumulator and no trajectory is stored, so the forward pass needs memory
        independent of the number of steps (and, with the problem's ``checkpoint``,
        `jax.grad` needs ~ (N/k + k)). It equals the stored-trajectory value up to the order
        of summation (round-off). ``dtype`` is the floating dtype of the simulation.
        """
        u, t, batched = self.check_data(inputs, targets)
        if not save_states and order != 0.0:
            raise LearningError(
                f"loss(save_states=False) sums J online and supports order=0 only; got "
                f"order={order!r}. Use save_states=True for the filtered loss J_γ"
            )

        def one(u, t):
            if not save_states:
                acc = _OutputLoss(tuple(int(k) for k in self.output_indices()), t)
                traj = self.simulate(
                    params, u, accumulator=acc, saveat=SaveAt(states=False), dtype=dtype
                )
                return 0.5 * self.dt * traj.accumulated
            traj = self.simulate(params, u, dtype=dtype)
            return self.loss_from_outputs(traj.v[:, self.output_indices()], t, order)

        return jnp.mean(jax.vmap(one)(u, t)) if batched else one(u, t)


def _check_synapses(problem: LearningProblem, who: str):
    for name, p in problem.trainable:
        _, g, _ = problem.circuit._locate(name)
        if not (isinstance(g, Resistors) and p == "g"):
            raise LearningError(
                f"{who} estimates gradients of linear-resistor conductances only; trainable "
                f"({name!r}, {p!r}) is not one. Use Autodiff or FiniteDifference for it."
            )


class _OutputLoss(AbstractAccumulator):
    """``Σ_{n=1}^{N} Σ_k (v_k[n] − T_k[n])²`` over the output nodes, summed during the run."""

    outputs: tuple[int, ...] = eqx.field(static=True)
    targets: Array  # (outputs, steps + 1)

    def init(self, vb0, setup):
        return jnp.zeros((), vb0.dtype)

    def update(self, acc, vb, n, setup):
        raise NotImplementedError("_OutputLoss reads node voltages: use update_with_unknowns")

    def update_with_unknowns(self, acc, x, vb, n, setup):
        e = x[np.asarray(self.outputs, np.int32)] - self.targets[:, n].astype(x.dtype)
        return acc + jnp.sum(e**2)


def fractional_integral(x: Array, order: float, dt: float, kernel: AbstractKernel = GL()):
    """``(I^γ x)[n] = h^γ Σ_{j=0}^{n} w^{(−γ)}_j x[n−j]`` along axis 0 (causal, full history)."""
    steps = x.shape[0] - 1
    w = kernel.weights(jnp.asarray(-order, x.dtype), steps)
    conv = jax.vmap(lambda col: jnp.convolve(col, w)[: steps + 1], in_axes=1, out_axes=1)
    return dt**order * conv(x)


__all__ = ["LearningError", "LearningProblem", "fractional_integral"]
