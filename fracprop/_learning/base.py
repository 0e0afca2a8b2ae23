"""The estimator interface shared by transient and resistive learning problems."""

from __future__ import annotations

import abc
import math
import numbers
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .problem import LearningError, LearningProblem, _check_synapses


class AbstractEstimator(eqx.Module):
    """``estimator(problem, params, inputs, targets) -> grads`` (structure of ``params``)."""

    #: Whether only linear-resistor conductances can be estimated.
    synapses_only: ClassVar[bool] = True

    @abc.abstractmethod
    def one(self, problem: LearningProblem, params, inputs, targets):
        """The estimate for one example (inputs ``(n_in, N+1)``, targets ``(n_out, N+1)``)."""

    def __call__(self, problem: LearningProblem, params, inputs, targets):
        if self.synapses_only:
            _check_synapses(problem, type(self).__name__)
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


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def _check_positive(who: str, name: str, value) -> None:
    if not (_is_number(value) and float(value) > 0):
        raise LearningError(f"{who} {name}={value!r} must be a positive number")


def _check_order(who: str, order) -> None:
    if not (_is_number(order) and 0 <= float(order) <= 1):
        raise LearningError(
            f"{who} order={order!r} is not a recognised contrast order: it must lie in [0, 1] "
            "(0 pointwise, 0.5 the seed's)"
        )
