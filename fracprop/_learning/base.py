"""The estimator interface shared by transient and resistive learning problems."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array


class AbstractProblem(eqx.Module):
    """A learning problem: a physical system whose parameters are trained, the sources that
    carry its inputs, the outputs it is read at, and a loss.

    `LearningProblem` (transient circuits) and `fracprop.resistive.ResistiveProblem`
    (resistive networks at steady state) are its two kinds. Every `AbstractEstimator` works
    through this interface.
    """

    @abc.abstractmethod
    def params(self):
        """The trainable parameters: the pytree that estimators return gradients shaped like."""

    @abc.abstractmethod
    def mask(self):
        """Multipliers of the same structure as `params` (0 for parameters kept fixed)."""

    @abc.abstractmethod
    def check_data(self, inputs, targets) -> tuple[Array, Array, bool]:
        """``(inputs, targets, batched)`` as arrays, or a clear error for data of the wrong
        shape; ``batched`` when they carry a leading batch axis."""

    @abc.abstractmethod
    def loss(self, params, inputs, targets) -> Array:
        """The loss, averaged over a leading batch axis if there is one."""

    def check_estimator(self, estimator: AbstractEstimator) -> None:
        """Raise if ``estimator`` cannot estimate this problem's trainable parameters
        (before anything is traced). The default accepts every estimator."""


class AbstractEstimator(eqx.Module):
    """``estimator(problem, params, inputs, targets) -> grads``, shaped like ``params``.

    A leading batch axis on the data is averaged, and the result is multiplied by
    ``problem.mask()``. The same interface serves transient and resistive problems.
    """

    #: Whether only linear-resistor conductances can be estimated (checked by the problem).
    synapses_only: ClassVar[bool] = False

    @abc.abstractmethod
    def one(self, problem: AbstractProblem, params, u, t):
        """The estimate for one example (no batch axis)."""

    def __call__(self, problem: AbstractProblem, params, inputs, targets):
        problem.check_estimator(self)
        return masked_batch_mean(self.one, problem, params, inputs, targets)


def masked_batch_mean(one, problem, params, inputs, targets):
    """``one(problem, params, u, t)`` for one example, or its mean over a leading batch axis
    (under ``vmap``), times ``problem.mask()``: the shared call of every estimator."""
    u, t, batched = problem.check_data(inputs, targets)
    if batched:
        grads = jax.vmap(lambda u, t: one(problem, params, u, t))(u, t)
        grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)
    else:
        grads = one(problem, params, u, t)
    return jax.tree.map(lambda g, m: g * m, grads, problem.mask())
