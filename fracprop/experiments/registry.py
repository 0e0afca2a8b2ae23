"""The estimator registry: estimator names in configs and on the command line."""

from __future__ import annotations

from .._learning.estimators import EP, Autodiff, CoupledLearning, Replay
from .config import TaskError

TRANSIENT_ESTIMATORS = ("ep", "ep_symmetric", "replay", "coupled", "autodiff")


def transient_estimator(config):
    """The transient estimator named by an `EstimatorConfig`."""
    name = config.name
    if name == "ep":
        return EP(beta=config.beta, order=config.order)
    if name == "ep_symmetric":
        return EP(beta=config.beta, order=config.order, symmetric=True)
    if name == "replay":
        return Replay(order=config.order)
    if name == "coupled":
        return CoupledLearning(eta=config.eta)
    if name == "autodiff":
        return Autodiff(order=config.order)
    raise TaskError(
        f"estimator {name!r} is not available for transient tasks; choose from "
        f"{', '.join(TRANSIENT_ESTIMATORS)}"
    )


DC_ESTIMATORS = (
    "ep",
    "ep_symmetric",
    "ep_limit",
    "coupled",
    "coupled_symmetric",
    "analytic",
    "autodiff",
)


def dc_estimator(config):
    """The resistive-network estimator (`fracprop.resistive`) named by an `EstimatorConfig`."""
    from .. import resistive as rn

    table = {
        "ep": lambda: rn.EP(beta=config.beta),
        "ep_symmetric": lambda: rn.EP(beta=config.beta, symmetric=True),
        "ep_limit": lambda: rn.EP(limit=True),
        "coupled": lambda: rn.CoupledLearning(eta=config.eta),
        "coupled_symmetric": lambda: rn.CoupledLearning(eta=config.eta, symmetric=True),
        "analytic": lambda: rn.Analytic(),
        "autodiff": lambda: rn.Autodiff(),
    }
    if config.name not in table:
        raise TaskError(
            f"estimator {config.name!r} is not available for resistive tasks; choose from "
            f"{', '.join(DC_ESTIMATORS)}"
        )
    if config.order != 0.0:
        raise TaskError("estimator.order applies to transient tasks only; remove it")
    return table[config.name]()
