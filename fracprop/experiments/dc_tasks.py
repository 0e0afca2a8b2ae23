"""Training tasks on resistive networks at steady state."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from .registry import DC_ESTIMATORS, dc_estimator
from .tasks import AbstractTask, TaskData, TaskError, register_task


def _dc_task_data(task) -> TaskData:
    problem = task.problem
    labels, predict = None, None
    if task.labels is not None:
        labels = tuple(np.asarray(x) for x in task.labels)

        def predict(params, inputs):
            return jnp.argmax(problem.predict(params, inputs), axis=-1)

    return TaskData(
        problem=problem,
        params=task.params,
        train=task.train,
        test=task.test,
        estimator=dc_estimator,
        labels=labels,
        predict=predict,
    )


def _build_dc(builder, **kwargs) -> TaskData:
    from ..resistive.network import ResistiveError

    try:
        return _dc_task_data(builder(**kwargs))
    except ResistiveError as e:
        raise TaskError(f"task: {e}") from None


@register_task
@dataclasses.dataclass(frozen=True)
class Allostery(AbstractTask):
    """Allostery (`fracprop.resistive.allostery`): trained voltage differences at output pairs
    of a random linear network with one fixed input (a single example; use ``batch_size: 1``)."""

    name: ClassVar[str] = "allostery"
    estimators: ClassVar[tuple[str, ...]] = DC_ESTIMATORS
    n_nodes: int = 64
    n_edges: int = 192
    n_pairs: int = 2
    target_range: float = 0.3

    def build(self, seed: int) -> TaskData:
        from .. import resistive as rn

        return _build_dc(
            rn.allostery,
            n_nodes=self.n_nodes,
            n_edges=self.n_edges,
            n_pairs=self.n_pairs,
            target_range=self.target_range,
            seed=seed,
        )


@register_task
@dataclasses.dataclass(frozen=True)
class Regression(AbstractTask):
    """Linear regression ``y = W x`` with a random linear resistive network
    (`fracprop.resistive.linear_regression`)."""

    name: ClassVar[str] = "regression"
    estimators: ClassVar[tuple[str, ...]] = DC_ESTIMATORS
    n_features: int = 3
    n_targets: int = 2
    n_hidden: int = 32
    n_edges: int | None = None
    n_train: int = 64
    n_test: int = 64
    weight_scale: float = 0.1

    def build(self, seed: int) -> TaskData:
        from .. import resistive as rn

        return _build_dc(
            rn.linear_regression,
            n_features=self.n_features,
            n_targets=self.n_targets,
            n_hidden=self.n_hidden,
            n_edges=self.n_edges,
            n_train=self.n_train,
            n_test=self.n_test,
            weight_scale=self.weight_scale,
            seed=seed,
        )


@register_task
@dataclasses.dataclass(frozen=True)
class IrisResistive(AbstractTask):
    """Iris with a *linear* resistive network (`fracprop.resistive.iris`; Lin et al. 2026)."""

    name: ClassVar[str] = "iris_resistive"
    estimators: ClassVar[tuple[str, ...]] = DC_ESTIMATORS
    hidden: tuple[int, ...] = ()
    amplitude: float = 1.0
    target: float = 0.1
    test_fraction: float = 0.3

    def build(self, seed: int) -> TaskData:
        from .. import resistive as rn

        return _build_dc(
            rn.iris,
            hidden=tuple(self.hidden),
            amplitude=self.amplitude,
            target=self.target,
            test_fraction=self.test_fraction,
            seed=seed,
        )


@dataclasses.dataclass(frozen=True)
class _DiodeClassifier(AbstractTask):
    hidden: tuple[int, ...] = (32,)
    amplitude: float = 2.0
    target: float = 0.1
    test_fraction: float = 0.3
    is_: float = 1e-14

    def build(self, seed: int) -> TaskData:
        from .. import resistive as rn

        return _build_dc(
            rn.diode_classifier,
            dataset=self.name,
            hidden=tuple(self.hidden),
            amplitude=self.amplitude,
            target=self.target,
            test_fraction=self.test_fraction,
            is_=self.is_,
            seed=seed,
        )


@register_task
@dataclasses.dataclass(frozen=True)
class Digits(_DiodeClassifier):
    """scikit-learn's bundled 8×8 digits with a layered diode network at DC (Kendall et al.
    2020 style: ± input voltage pairs, outputs read as voltage differences;
    `fracprop.resistive.diode_classifier`)."""

    name: ClassVar[str] = "digits"
    estimators: ClassVar[tuple[str, ...]] = DC_ESTIMATORS


@register_task
@dataclasses.dataclass(frozen=True)
class Iris(_DiodeClassifier):
    """scikit-learn's bundled iris with a layered diode network at DC (as `Digits`)."""

    name: ClassVar[str] = "iris"
    estimators: ClassVar[tuple[str, ...]] = DC_ESTIMATORS
