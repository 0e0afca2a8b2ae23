r"""Built-in training tasks: each builds a learning problem, its initial parameters and its data.

A task is a frozen dataclass of options (what a YAML config's ``task:`` mapping holds, besides
``name``) with a ``build(seed)`` method that returns a `TaskData`. Every task is deterministic
in its options and the seed; its data are generated, or come from a dataset bundled with an
installed package (scikit-learn's ``digits`` and ``iris``); nothing is downloaded.

Dynamic tasks (transient, on `fracprop.LearningProblem`):

- ``teacher_student``: a random *teacher* network (`layered_network`, fractional memristor
  neurons) turns random multi-sine inputs into targets; the *student* has the same structure
  with every synapse conductance scaled by ``1 + perturbation·U(−1, 1)``.
- ``temporal``: the target is a filtered copy of the input that depends on its past: the
  output of a fractional low-pass filter ``T = u − E`` where ``E`` solves
  ``τ_T^α ᶜD^α T = u − T`` from rest (a fractional RC, docs/design.md §4), or a pure delay.

Static tasks (DC steady state, on `fracprop.resistive.ResistiveProblem`; Kendall
et al. 2020):

- ``allostery``, ``regression``, ``iris_resistive``: linear resistive networks (Lin et al. 2026);
- ``iris``, ``digits``: layered diode networks with ± input voltage pairs and outputs read as
  voltage differences (scikit-learn's bundled datasets, held-out test split).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._circuit.builder import CircuitBuilder
from .._learning.networks import NetworkSpec, layered_network, multisine
from .._learning.problem import LearningProblem
from .._transient.simulate import simulate
from .config import TaskError
from .registry import TRANSIENT_ESTIMATORS, transient_estimator


@dataclasses.dataclass
class TaskData:
    """What a training run needs from a task.

    - ``problem``: has ``loss(params, inputs, targets)`` (mean over a leading batch axis).
    - ``params``: the initial trainable parameters (a pytree; optax-ready).
    - ``train``, ``test``: ``(inputs, targets)`` with a leading example axis.
    - ``estimator(config)``: the gradient estimator for an `EstimatorConfig`, called as
      ``est(problem, params, inputs, targets) -> grads``.
    - ``labels``: ``(train_labels, test_labels)`` for classification tasks, else ``None``;
      then ``predict(params, inputs) -> labels``.
    - ``plot(params, path)``: optional; draws outputs against targets for some test examples.
    """

    problem: Any
    params: Any
    train: tuple[Any, Any]
    test: tuple[Any, Any]
    estimator: Callable[[Any], Any]
    labels: tuple[np.ndarray, np.ndarray] | None = None
    predict: Callable[[Any, Any], Any] | None = None
    plot: Callable[[Any, Any], None] | None = None


class AbstractTask:
    """Base of the task option dataclasses; subclasses set ``name`` and implement ``build``."""

    name: ClassVar[str]
    #: Estimator names the task supports (checked before building).
    estimators: ClassVar[tuple[str, ...]]

    def build(self, seed: int) -> TaskData:  # pragma: no cover - abstract
        raise NotImplementedError


TASKS: dict[str, type[AbstractTask]] = {}


def register_task(cls: type[AbstractTask]) -> type[AbstractTask]:
    """Make a task available to configs under ``cls.name`` (usable as a decorator)."""
    TASKS[cls.name] = cls
    return cls


def _time_grid(omega_tau: float, tau: float, steps: int, periods: float, min_horizon_tau: float):
    omega = omega_tau / tau
    horizon = max(periods * 2 * np.pi / omega, min_horizon_tau * tau)
    dt = horizon / steps
    return omega, dt, np.arange(steps + 1) * dt


def _inputs(n_examples: int, n_in: int, ts, omega, seed: int) -> jax.Array:
    return jnp.asarray(
        np.stack([multisine(n_in, ts, omega, seed=seed + k) for k in range(n_examples)])
    )


def _outputs(problem: LearningProblem, params, inputs) -> jax.Array:
    """Output traces ``(batch, outputs, steps+1)`` of the problem's circuit."""
    idx = problem.output_indices()
    return jax.vmap(lambda u: problem.simulate(params, u).v[:, idx].T)(inputs)


def _plotter(problem: LearningProblem, inputs, targets, examples: int = 2):
    ts = np.arange(problem.steps + 1) * problem.dt

    def plot(params, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = min(examples, inputs.shape[0])
        out = np.asarray(_outputs(problem, params, inputs[:n]))
        fig, axes = plt.subplots(n, 1, figsize=(7, 2.6 * n), squeeze=False)
        for k in range(n):
            ax = axes[k, 0]
            for j, node in enumerate(problem.outputs):
                ax.plot(ts, np.asarray(targets[k, j]), "k--", lw=1, label=f"target {node}")
                ax.plot(ts, out[k, j], lw=1.5, label=f"v({node})")
            ax.set_xlabel("time (s)")
            ax.set_ylabel("voltage (V)")
            ax.set_title(f"test example {k}")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return plot


def _check(cond: bool, message: str):
    if not cond:
        raise TaskError(message)


@dataclasses.dataclass(frozen=True)
class _NetworkOptions(AbstractTask):
    n_in: int = 2
    hidden: tuple[int, ...] = (4,)
    n_out: int = 1
    alpha: float = 0.5
    law: str = "tanh"
    tau: float = 1.0
    omega_tau: float = 1.0
    steps: int = 200
    periods: float = 1.0
    min_horizon_tau: float = 10.0
    train_examples: int = 16
    test_examples: int = 8
    trainable: tuple[str, ...] = ("R*",)

    def _problem(self, circuit, inputs, outputs, dt) -> LearningProblem:
        try:
            return LearningProblem(
                circuit,
                inputs=inputs,
                outputs=outputs,
                dt=dt,
                steps=self.steps,
                trainable=list(self.trainable),
            )
        except ValueError as e:
            raise TaskError(f"task.trainable: {e}") from None

    def _spec(self, seed: int) -> NetworkSpec:
        _check(self.omega_tau > 0, f"task.omega_tau={self.omega_tau} must be positive")
        _check(self.steps >= 2, f"task.steps={self.steps} must be at least 2")
        _check(
            self.train_examples >= 1 and self.test_examples >= 1,
            "task.train_examples and task.test_examples must be at least 1",
        )
        try:
            return NetworkSpec(
                n_in=self.n_in,
                hidden=tuple(self.hidden),
                n_out=self.n_out,
                alpha=self.alpha,
                law=self.law,
                tau=self.tau,
                seed=seed,
            )
        except ValueError as e:
            raise TaskError(f"task: {e}") from None


@register_task
@dataclasses.dataclass(frozen=True)
class TeacherStudent(_NetworkOptions):
    """Dynamic teacher–student regression (see the module docstring).

    ``perturbation`` scales the student's conductances: ``g_student = g_teacher·(1 + p·U(−1,1))``.
    """

    name: ClassVar[str] = "teacher_student"
    estimators: ClassVar[tuple[str, ...]] = TRANSIENT_ESTIMATORS
    perturbation: float = 0.3

    def build(self, seed: int) -> TaskData:
        _check(
            0 <= self.perturbation < 1,
            f"task.perturbation={self.perturbation} must lie in [0, 1)",
        )
        spec = self._spec(seed)
        circuit, inputs, outputs = layered_network(spec)
        omega, dt, ts = _time_grid(
            self.omega_tau, spec.tau, self.steps, self.periods, self.min_horizon_tau
        )
        problem = self._problem(circuit, inputs, outputs, dt)
        teacher = problem.params()
        rng = np.random.default_rng(seed + 1)
        student = jax.tree.map(
            lambda x: x * (1 + self.perturbation * jnp.asarray(rng.uniform(-1, 1, x.shape))),
            teacher,
        )
        n_train, n_test = self.train_examples, self.test_examples
        u = _inputs(n_train + n_test, spec.n_in, ts, omega, seed=1000 * (seed + 1))
        targets = _outputs(problem, teacher, u)
        train = (u[:n_train], targets[:n_train])
        test = (u[n_train:], targets[n_train:])
        return TaskData(
            problem=problem,
            params=student,
            train=train,
            test=test,
            estimator=transient_estimator,
            plot=_plotter(problem, *test),
        )


def fractional_lowpass(u: np.ndarray, dt: float, tau: float, alpha: float) -> jax.Array:
    """Output of a fractional RC low-pass driven by ``u`` from rest (rows are signals).

    A resistor ``R = 1`` into a constant-phase element ``C_α = τ^α`` (docs/design.md §1): the
    capacitor voltage ``y`` solves ``τ^α ᶜD^α y = u − y``, whose step response is
    ``1 − E_α(−(t/τ)^α)`` (docs/design.md §4). Simulated with fracprop's own GL stepper.
    """
    b = CircuitBuilder("fractional low-pass")
    b.vsource("V", "in", "0", 0.0)
    b.resistor("R", "in", "out", 1.0)
    b.cpe("P", "out", "0", c=tau**alpha, alpha=alpha)
    circuit = b.build()
    steps = u.shape[-1] - 1

    def one(row):
        # The learning problem's fixed grid (substeps=1), under jax.vmap.
        traj = simulate(
            circuit, dt=dt, steps=steps, uic=True, inputs={"V": row}, throw=False, substeps=1
        )
        return traj.node("out")

    return jax.vmap(one)(jnp.asarray(u))


@register_task
@dataclasses.dataclass(frozen=True)
class Temporal(_NetworkOptions):
    """Temporal filtering: each output's target is a filtered copy of one input's past.

    Output ``k`` follows input ``k mod n_in`` through ``filter``:

    - ``"fractional_lowpass"``: the fractional RC low-pass of order ``target_alpha`` and time
      constant ``target_tau`` (`fractional_lowpass`), a power-law memory;
    - ``"delay"``: ``T(t) = gain · u(t − target_tau)`` (zero before the delay).

    The network starts from the (seeded) random conductances of `layered_network`.
    """

    name: ClassVar[str] = "temporal"
    estimators: ClassVar[tuple[str, ...]] = TRANSIENT_ESTIMATORS
    n_in: int = 1
    hidden: tuple[int, ...] = (8,)
    filter: Literal["fractional_lowpass", "delay"] = "fractional_lowpass"
    target_alpha: float = 0.5
    target_tau: float = 3.0
    gain: float = 1.0

    def build(self, seed: int) -> TaskData:
        _check(self.target_tau > 0, f"task.target_tau={self.target_tau} must be positive")
        _check(
            0 < self.target_alpha <= 1,
            f"task.target_alpha={self.target_alpha} must lie in (0, 1]",
        )
        spec = self._spec(seed)
        circuit, inputs, outputs = layered_network(spec)
        omega, dt, ts = _time_grid(
            self.omega_tau, spec.tau, self.steps, self.periods, self.min_horizon_tau
        )
        problem = self._problem(circuit, inputs, outputs, dt)
        n_train, n_test = self.train_examples, self.test_examples
        u = _inputs(n_train + n_test, spec.n_in, ts, omega, seed=1000 * (seed + 1))
        src = u[:, np.arange(spec.n_out) % spec.n_in]  # (examples, n_out, N+1)
        if self.filter == "fractional_lowpass":
            flat = np.asarray(src).reshape(-1, ts.size)
            targets = fractional_lowpass(flat, dt, self.target_tau, self.target_alpha)
            targets = self.gain * targets.reshape(src.shape)
        else:
            lag = int(round(self.target_tau / dt))
            _check(
                0 < lag <= self.steps,
                f"task.target_tau={self.target_tau} is not a delay of 1 … steps time steps "
                f"(dt = {dt:.4g})",
            )
            targets = self.gain * jnp.pad(src, ((0, 0), (0, 0), (lag, 0)))[..., : ts.size]
        train = (u[:n_train], targets[:n_train])
        test = (u[n_train:], targets[n_train:])
        return TaskData(
            problem=problem,
            params=problem.params(),
            train=train,
            test=test,
            estimator=transient_estimator,
            plot=_plotter(problem, *test),
        )
