"""The estimator registry: one table of the estimator names used in configs, validation sweeps
and on the command line, for transient and resistive problems."""

from __future__ import annotations

from collections.abc import Callable

from .. import resistive as rn
from .._learning.base import AbstractEstimator
from .._learning.estimators import EP, Autodiff, CoupledLearning, Replay
from .config import TaskError

#: Transient estimators by name: ``make(beta, eta, order)``. ``order`` is the order γ of the
#: loss ``J_γ`` whose gradient is estimated (0: the pointwise loss); ``ep_half`` fixes γ = ½
#: (the contrast of Kendall 2021).
TRANSIENT: dict[str, Callable[[float, float, float], AbstractEstimator]] = {
    "ep": lambda beta, eta, order: EP(beta=beta, order=order),
    "ep_symmetric": lambda beta, eta, order: EP(beta=beta, order=order, symmetric=True),
    "ep_half": lambda beta, eta, order: EP(beta=beta, order=0.5),
    "ep_capacitor": lambda beta, eta, order: EP(beta=beta, order=order, nudge="capacitor"),
    "replay": lambda beta, eta, order: Replay(order=order),
    "coupled": lambda beta, eta, order: CoupledLearning(eta=eta, order=order),
    "autodiff": lambda beta, eta, order: Autodiff(order=order),
}

#: Resistive-network estimators (`fracprop.resistive`) by name: ``make(beta, eta)``.
RESISTIVE: dict[str, Callable[[float, float], AbstractEstimator]] = {
    "ep": lambda beta, eta: rn.EP(beta=beta),
    "ep_symmetric": lambda beta, eta: rn.EP(beta=beta, symmetric=True),
    "ep_limit": lambda beta, eta: rn.EP(limit=True),
    "coupled": lambda beta, eta: rn.CoupledLearning(eta=eta),
    "coupled_symmetric": lambda beta, eta: rn.CoupledLearning(eta=eta, symmetric=True),
    "analytic": lambda beta, eta: rn.Analytic(),
    "autodiff": lambda beta, eta: rn.Autodiff(),
}

TRANSIENT_ESTIMATORS = tuple(TRANSIENT)
DC_ESTIMATORS = tuple(RESISTIVE)


def make_estimator(
    name: str,
    *,
    resistive: bool = False,
    beta: float = 1e-3,
    eta: float = 1e-3,
    order: float = 0.0,
    error: type[Exception] = TaskError,
) -> AbstractEstimator:
    """The estimator registered under ``name`` for transient (default) or resistive problems.

    **Raises** ``error`` (default `TaskError`) for a name that is not registered for that kind
    of problem, or an ``order`` given for a resistive problem.
    """
    table = RESISTIVE if resistive else TRANSIENT
    kind = "resistive" if resistive else "transient"
    if name not in table:
        raise error(
            f"unknown estimator {name!r}: it is not available for {kind} tasks; choose "
            f"from {', '.join(table)}"
        )
    if resistive:
        if order != 0.0:
            raise error("estimator.order applies to transient tasks only; remove it")
        return table[name](beta, eta)
    return table[name](beta, eta, order)


def transient_estimator(config) -> AbstractEstimator:
    """The transient estimator named by an `EstimatorConfig`."""
    return make_estimator(config.name, beta=config.beta, eta=config.eta, order=config.order)


def dc_estimator(config) -> AbstractEstimator:
    """The resistive-network estimator named by an `EstimatorConfig`."""
    return make_estimator(
        config.name, resistive=True, beta=config.beta, eta=config.eta, order=config.order
    )
